// The model at the I/O edge: loads a YOLO ONNX file into onnxruntime-node, picks the best execution provider
// that really works (TensorRT → CUDA → CPU, as the pool asks), checks the model's shapes up front and turns a
// letterboxed frame into Detections in source pixels.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import ort from "onnxruntime-node";
import { COCO_CLASSES, type Detections } from "../detections.ts";
import { letterboxParams } from "./letterbox.ts";
import { nms } from "./nms.ts";
import { decodeYolov5, decodeYolov8, detectHead, type YoloHead } from "./yolo.ts";

export type Provider = "tensorrt" | "cuda" | "cpu";

export type DetectorOptions = {
  providers?: readonly Provider[];
  threads?: number;
  /** "yolov11" has the v8 head. When omitted, the head is read from the output shape. */
  format?: "yolov5" | "yolov8" | "yolov11";
  sha256?: string;
  classNames?: readonly string[];
};

export type DetectOptions = { minScore: number; classFilter?: Uint8Array | null; iouThreshold?: number };

export type Detector = {
  readonly size: number;
  readonly head: YoloHead;
  readonly provider: Provider;
  readonly classNames: readonly string[];
  /** Why a preferred provider was not used, if one was not. */
  readonly providerNote: string | undefined;
  detect(
    rgb: Uint8Array,
    srcW: number,
    srcH: number,
    opts: DetectOptions,
  ): Promise<{ detections: Detections; inferenceMs: number }>;
  /** The raw session call alone, for benchmarks. */
  runRaw(): Promise<number>;
  classFilter(names: readonly string[]): Uint8Array;
  close(): Promise<void>;
};

export class ModelError extends Error {}

/** 1 for each of the model's classes named in `names`: the decoders' per-class keep mask. */
export function classFilterOf(classNames: readonly string[], names: readonly string[]): Uint8Array {
  const f = new Uint8Array(classNames.length);
  for (const n of names) {
    const i = classNames.indexOf(n);
    if (i >= 0) f[i] = 1;
  }
  return f;
}

/** HWC uint8 RGB (already letterboxed by ffmpeg) → NCHW float32 / 255, into a reused buffer. */
export function hwcToChw(rgb: Uint8Array, size: number, out: Float32Array): void {
  const plane = size * size;
  if (rgb.length !== plane * 3)
    throw new Error(`frame has ${rgb.length} bytes, expected ${plane * 3} (${size}×${size} RGB)`);
  for (let i = 0, p = 0; i < plane; i++, p += 3) {
    out[i] = (rgb[p] as number) / 255;
    out[plane + i] = (rgb[p + 1] as number) / 255;
    out[2 * plane + i] = (rgb[p + 2] as number) / 255;
  }
}

export async function loadDetector(path: string, opts: DetectorOptions = {}): Promise<Detector> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new ModelError(`model ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (opts.sha256) {
    const actual = createHash("sha256").update(bytes).digest("hex");
    if (actual !== opts.sha256)
      throw new ModelError(`model ${path}: sha256 is ${actual}, the pool expects ${opts.sha256}`);
  }
  const wanted = opts.providers?.length ? opts.providers : (["cpu"] as const);
  const available = new Set(ort.listSupportedBackends().map((b) => b.name));
  let session: ort.InferenceSession | undefined;
  let provider: Provider = "cpu";
  const notes: string[] = [];
  for (const p of [...wanted, "cpu" as const]) {
    if (p !== "cpu" && !available.has(p)) {
      notes.push(`${p}: not in this onnxruntime build`);
      continue;
    }
    try {
      session = await ort.InferenceSession.create(bytes, {
        executionProviders: [p],
        intraOpNumThreads: opts.threads ?? 0,
        graphOptimizationLevel: "all",
      });
      provider = p;
      break;
    } catch (err) {
      if (p === "cpu") throw new ModelError(`model ${path}: not a loadable ONNX model (${firstLine(err)})`);
      notes.push(`${p}: ${firstLine(err)}`);
    }
  }
  if (!session) throw new ModelError(`model ${path}: no execution provider could load it`);

  const inputName = session.inputNames[0];
  const outputName = session.outputNames[0];
  const meta = (session as unknown as { inputMetadata?: { shape?: readonly (number | string)[] }[] })
    .inputMetadata?.[0];
  const shape = meta?.shape ?? [];
  const side = shape[3];
  if (
    !inputName ||
    !outputName ||
    shape.length !== 4 ||
    shape[1] !== 3 ||
    typeof side !== "number" ||
    shape[2] !== side
  )
    throw new ModelError(`model ${path}: input must be [batch, 3, S, S] (a square image), got [${shape.join(", ")}]`);
  const size = side;

  const input = new Float32Array(3 * size * size);
  const tensor = new ort.Tensor("float32", input, [1, 3, size, size]);
  // One warm-up run: reads the output shape (so a wrong-shaped model fails here, not on the first camera).
  const probe = (await session.run({ [inputName]: tensor }))[outputName];
  if (!probe) throw new ModelError(`model ${path}: no output ${outputName}`);
  let head: YoloHead;
  try {
    head = detectHead(probe.dims);
  } catch (err) {
    throw new ModelError(`model ${path}: ${(err as Error).message}`);
  }
  if (opts.format && (opts.format === "yolov5") !== (head === "yolov5"))
    throw new ModelError(
      `model ${path}: the pool says ${opts.format}, but the output shape [${probe.dims.join(", ")}] is a ${head} head`,
    );
  const nc = head === "yolov8" ? (probe.dims[1] as number) - 4 : (probe.dims[2] as number) - 5;
  const classNames = opts.classNames ?? (nc === COCO_CLASSES.length ? COCO_CLASSES : []);
  if (classNames.length !== nc)
    throw new ModelError(
      `model ${path}: it predicts ${nc} classes but ${classNames.length} class names are known; set model.classNames`,
    );
  const decode = head === "yolov8" ? decodeYolov8 : decodeYolov5;
  const s = session;

  return {
    size,
    head,
    provider,
    classNames,
    providerNote: notes.length ? notes.join("; ") : undefined,
    classFilter: (names) => classFilterOf(classNames, names),
    async detect(rgb, srcW, srcH, o) {
      hwcToChw(rgb, size, input);
      const t0 = performance.now();
      const out = (await s.run({ [inputName]: tensor }))[outputName] as ort.Tensor;
      const inferenceMs = performance.now() - t0;
      const lb = letterboxParams(srcW, srcH, size);
      const candidates = decode(
        out.data as Float32Array,
        out.dims,
        { minScore: o.minScore, classFilter: o.classFilter ?? null },
        lb,
        srcW,
        srcH,
      );
      return { detections: nms(candidates, { iouThreshold: o.iouThreshold ?? 0.45 }), inferenceMs };
    },
    async runRaw() {
      const t0 = performance.now();
      await s.run({ [inputName]: tensor });
      return performance.now() - t0;
    },
    async close() {
      await s.release();
    },
  };
}

const firstLine = (err: unknown) => String(err instanceof Error ? err.message : err).split("\n")[0];
