// The model at the I/O edge: loads a YOLO ONNX file into onnxruntime-node, picks the best execution provider
// that really works (TensorRT → CUDA → CPU, as the pool asks), checks the model's shapes up front and turns a
// letterboxed frame into Detections in source pixels. A float model is given a uint8 input at load (uint8-input.ts),
// so ffmpeg's bytes go in as they are; the float path (chw.ts) stays for a model that cannot be rewritten.

import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import ort from "onnxruntime-node";
import { COCO_CLASSES, type Detections } from "../detections.ts";
import { createBatcher } from "./batcher.ts";
import { hwcToChw } from "./chw.ts";
import { type InputShape, letterboxParams } from "./letterbox.ts";
import type { ModelHealth } from "./model-health.ts";
import { nms } from "./nms.ts";
import { withInputShape } from "./rect-input.ts";
import { type InputForm, modelInput, prependPreprocessing, verifyUint8Input } from "./uint8-input.ts";
import { decodeYolov5, decodeYolov8, detectHead, type YoloHead } from "./yolo.ts";

export { hwcToChw } from "./chw.ts";
export type { InputForm } from "./uint8-input.ts";

export type Provider = "tensorrt" | "cuda" | "cpu";

export type DetectorOptions = {
  providers?: readonly Provider[];
  threads?: number;
  /** "yolov11" has the v8 head. When omitted, the head is read from the output shape. */
  format?: "yolov5" | "yolov8" | "yolov11";
  sha256?: string;
  /** The side the pool says the model takes; checked against the model's input. */
  inputSize?: number;
  /**
   * Feed the model frames of this size instead of its own (the pool's model.inputWidth and inputHeight): a square
   * YOLOv8/v11 export is rewritten at load for it (rect-input.ts). 640×384 fits 16:9 cameras with 40 % fewer pixels.
   */
  inputShape?: InputShape;
  classNames?: readonly string[];
  /** Let onnxruntime's threads spin between runs (its default). Off here: see loadDetector. */
  spin?: boolean;
  /** Largest batch across cameras for a model with a dynamic batch axis (default 8); 1 turns batching off. */
  maxBatch?: number;
  /** How long a run may wait for a full batch (batcher.ts); 0 runs at once. */
  maxBatchDelayMs?: number;
  /**
   * Give a float [N, 3, S, S] model a uint8 [N, S, S, 3] input at load, the scaling inside the model (default
   * true); false keeps the float model and converts frames in JS (chw.ts), for comparison.
   */
  preprocessInModel?: boolean;
  /** onnxruntime's inter-op pool (used only with `parallel`); 0 is its default. */
  interOpThreads?: number;
  /** Run independent graph branches in parallel (onnxruntime's "parallel" execution mode) instead of in order. */
  parallel?: boolean;
  /**
   * The model thread's nice value (threaded.ts), set before its session makes its pool threads, which inherit it.
   * Below the process's own needs CAP_SYS_NICE (not a non-root pod's); a refusal is noted, not fatal.
   */
  nice?: number;
  /** How long the model thread may answer nothing while frames wait before liveness fails (model-health.ts). */
  stallMs?: number;
};

export type DetectOptions = { minScore: number; classFilter?: Uint8Array | null; iouThreshold?: number };

/** What the model is, as checked at load. */
export type ModelInfo = {
  /** What a frame is letterboxed to. */
  readonly shape: InputShape;
  readonly head: YoloHead;
  readonly provider: Provider;
  readonly classNames: readonly string[];
  /** Why a preferred provider was not used, if one was not. */
  readonly providerNote: string | undefined;
  /** Frames one model run takes: 1 for a fixed-batch model, else the batch limit. */
  readonly maxBatch: number;
  /** Why a dynamic-batch model runs frames one by one, if it does. */
  readonly batchNote: string | undefined;
  /** One frame's output shape, [1, a, b]. */
  readonly outputDims: readonly number[];
  /** What a frame is fed as: ffmpeg's HWC bytes as they are, or CHW floats / 255 (chw.ts). */
  readonly input: InputForm;
  /** Why a float model's frames are converted in JS rather than inside the model, if they are. */
  readonly inputNote: string | undefined;
};

/** A frame as the model takes it: HWC bytes for "uint8-nhwc", CHW floats for "float-nchw" (see frameInto). */
export type Frame = Uint8Array | Float32Array;

/** The session alone: frames in (see frameInto), raw YOLO outputs out. */
export type Model = ModelInfo & {
  /**
   * One model run over frames.length ≤ maxBatch frames; outputs[k] belongs to frames[k]. With `into`, the outputs
   * are written there (and returned), else each owns a fresh buffer.
   */
  infer(
    frames: readonly Frame[],
    into?: readonly Float32Array[],
  ): Promise<{ outputs: Float32Array[]; inferenceMs: number }>;
  /** The raw session call alone on a batch of frames (default 1, at most maxBatch), for benchmarks. */
  runRaw(batch?: number): Promise<number>;
  close(): Promise<void>;
};

export type Detector = Omit<ModelInfo, "outputDims"> & {
  /** Calls made while the model is busy run together as one batch (see batcher.ts) when maxBatch > 1. */
  detect(rgb: Uint8Array, srcW: number, srcH: number, opts: DetectOptions): Promise<DetectResult>;
  /** The raw session call alone on a batch of frames (default 1, at most maxBatch), for benchmarks. */
  runRaw(batch?: number): Promise<number>;
  classFilter(names: readonly string[]): Uint8Array;
  close(): Promise<void>;
  /** Whether the model can still run frames (a detector on its own thread: the thread alive and answering). */
  health?(): ModelHealth;
  /** Why the model thread's nice value could not be set (DetectorOptions.nice), if it could not. */
  readonly priorityNote?: string;
  /** Settles, with the reason, when the model can never run again (its thread ended). */
  readonly lost?: Promise<string>;
  /** Sessions of the model that run frames at once (instances.ts); 1 when omitted. */
  readonly instances?: number;
};

/** inferenceMs is the whole model run the frame was part of; batch is how many frames that run took. */
export type DetectResult = { detections: Detections; inferenceMs: number; batch: number };

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

/** A new buffer for one frame in the model's input form. */
export function frameBuffer(input: InputForm, shape: InputShape, shared = false): Frame {
  const n = 3 * shape.width * shape.height;
  if (input === "uint8-nhwc") return shared ? new Uint8Array(new SharedArrayBuffer(n)) : new Uint8Array(n);
  return shared ? new Float32Array(new SharedArrayBuffer(4 * n)) : new Float32Array(n);
}

/** ffmpeg's letterboxed HWC RGB bytes → the model's input, into a reused buffer from frameBuffer. */
export function frameInto(input: InputForm, rgb: Uint8Array, shape: InputShape, out: Frame): void {
  if (input === "float-nchw") hwcToChw(rgb, shape, out as Float32Array);
  else if (rgb.length !== out.length)
    throw new Error(`frame has ${rgb.length} bytes, expected ${out.length} (${shape.width}×${shape.height} RGB)`);
  else (out as Uint8Array).set(rgb);
}

/**
 * The bytes to load and what was done to them: a float model rewritten to take uint8 (unless opts say not to), or
 * the model as it is, with the reason it was not rewritten.
 */
function withUint8Input(bytes: Uint8Array, opts: DetectorOptions): { bytes: Uint8Array; note?: string } {
  let found: ReturnType<typeof modelInput>;
  try {
    found = modelInput(bytes);
  } catch {
    return { bytes }; // onnxruntime says what is wrong with it
  }
  if (found.form !== "float-nchw") return { bytes };
  if (opts.preprocessInModel === false) return { bytes, note: "preprocessing in JS (preprocessInModel: false)" };
  try {
    return { bytes: prependPreprocessing(bytes) };
  } catch (err) {
    return { bytes, note: `preprocessing in JS: the model could not be given a uint8 input (${firstLine(err)})` };
  }
}

const isSide = (d: number | string | undefined): d is number => typeof d === "number" && d > 0;

/**
 * The model for the pool's input shape (opts.inputShape): a square export rewritten for it (rect-input.ts), or the
 * model as it is when it already takes that shape or none was asked for. A shape it cannot take fails the load,
 * naming the pool's fields: the pool asked for it, and a silent square model would run slower than planned.
 */
function resized(path: string, bytes: Uint8Array, opts: DetectorOptions): Uint8Array {
  const want = opts.inputShape;
  if (!want) return bytes;
  let found: ReturnType<typeof modelInput>;
  try {
    found = modelInput(bytes);
  } catch {
    return bytes; // onnxruntime says what is wrong with it
  }
  const [, a, b, c] = found.dims;
  const [h, w] = found.form === "uint8-nhwc" ? [a, b] : [b, c];
  // Checked first: a model already at the asked shape must still be the size the pool says it is.
  if (opts.inputSize && (h !== opts.inputSize || w !== opts.inputSize))
    throw new ModelError(`model ${path}: the pool says model.inputSize ${opts.inputSize}, the model takes ${w}×${h}`);
  if (h === want.height && w === want.width) return bytes;
  const asked = `model.inputWidth × inputHeight ${want.width}×${want.height}`;
  try {
    return withInputShape(bytes, want);
  } catch (err) {
    throw new ModelError(`model ${path}: ${asked}: ${firstLine(err)}`);
  }
}

/** Loads and checks a YOLO model (see the top of this file). */
export async function loadModel(path: string, opts: DetectorOptions = {}): Promise<Model> {
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
  let providerNotes: string[] = [];
  const base = resized(path, bytes, opts);
  const rewrite = withUint8Input(base, opts);
  let inputNote = rewrite.note;
  let loaded = rewrite.bytes;
  for (let attempt = 0; attempt < 2 && !session; attempt++) {
    providerNotes = [];
    try {
      ({ session, provider } = await createSession(loaded, wanted, available, opts, providerNotes));
    } catch (err) {
      if (loaded === base) throw new ModelError(`model ${path}: ${(err as Error).message}`);
      inputNote = `preprocessing in JS: the model with a uint8 input does not load (${firstLine(err)})`;
      loaded = base;
      continue;
    }
    if (loaded === base) break;
    // The rewritten model must give the float model's outputs on the same frame, or the float model is used.
    try {
      await verifyUint8Input(base, session, { threads: opts.threads });
    } catch (err) {
      inputNote = `preprocessing in JS: the model with a uint8 input gives other outputs (${firstLine(err)})`;
      await session.release();
      session = undefined;
      loaded = base;
    }
  }
  if (!session) throw new ModelError(`model ${path}: no execution provider could load it`);

  const s = session;
  const inputName = s.inputNames[0];
  const outputName = s.outputNames[0];
  const meta = (s as unknown as { inputMetadata?: { type?: string; shape?: readonly (number | string)[] }[] })
    .inputMetadata?.[0];
  const shape = meta?.shape ?? [];
  // A model may come with a uint8 HWC input already (ours, written by hack/onnx/uint8-input.ts, or the user's).
  const input: InputForm = meta?.type === "uint8" ? "uint8-nhwc" : "float-nchw";
  const [channels, height, width] =
    input === "uint8-nhwc" ? [shape[3], shape[1], shape[2]] : [shape[1], shape[2], shape[3]];
  if (!inputName || !outputName || shape.length !== 4 || channels !== 3 || !isSide(width) || !isSide(height))
    throw new ModelError(
      input === "uint8-nhwc"
        ? `model ${path}: a uint8 input must be [batch, H, W, 3], got [${shape.join(", ")}]`
        : `model ${path}: input must be [batch, 3, H, W], got [${shape.join(", ")}]`,
    );
  if (meta?.type && meta.type !== "uint8" && meta.type !== "float32")
    throw new ModelError(`model ${path}: input must be float32 (or uint8 HWC), got ${meta.type}`);
  const frameShape: InputShape = { width, height };
  if (opts.inputSize && !opts.inputShape && (opts.inputSize !== width || opts.inputSize !== height))
    throw new ModelError(
      `model ${path}: the pool says model.inputSize ${opts.inputSize}, the model takes ${width}×${height}`,
    );
  const chw = 3 * width * height;
  // A symbolic (or -1) first dimension is a dynamic batch axis; a fixed one must be 1 (we feed one frame).
  const dynamicBatch = typeof shape[0] === "string" || (typeof shape[0] === "number" && shape[0] < 0);
  if (!dynamicBatch && shape[0] !== 1)
    throw new ModelError(`model ${path}: its batch is fixed at ${shape[0]}; export it with batch 1 or a dynamic batch`);

  // Input tensors per batch size, over one reused buffer: the session reads the frames where we wrote them.
  const dims = (n: number) => (input === "uint8-nhwc" ? [n, height, width, 3] : [n, 3, height, width]);
  const tensorOf = (data: Frame, n: number) =>
    data instanceof Uint8Array ? new ort.Tensor("uint8", data, dims(n)) : new ort.Tensor("float32", data, dims(n));
  const grow = (n: number): Frame => (input === "uint8-nhwc" ? new Uint8Array(n * chw) : new Float32Array(n * chw));
  let batchInput = grow(1);
  const tensors = new Map<number, ort.Tensor>();
  const tensorFor = (n: number) => {
    let t = tensors.get(n);
    if (!t) {
      if (batchInput.length < n * chw) {
        batchInput = grow(n);
        tensors.clear();
      }
      t = tensorOf(batchInput.subarray(0, n * chw), n);
      tensors.set(n, t);
    }
    return t;
  };
  const run = async (n: number) => (await s.run({ [inputName]: tensorFor(n) }))[outputName] as ort.Tensor;

  // One warm-up run: reads the output shape (so a wrong-shaped model fails here, not on the first camera).
  const probe = await run(1);
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

  let maxBatch = dynamicBatch ? Math.max(1, opts.maxBatch ?? 8) : 1;
  let batchNote: string | undefined;
  // An exporter can leave the batch pinned inside the graph (a Reshape to [1, …]) though the input says dynamic,
  // and a provider can refuse large batches (memory, TensorRT profiles): find out now, with warm-up runs at the
  // largest batch and at 2, and batch less, or not at all, saying why.
  for (const n of maxBatch > 2 ? [maxBatch, 2] : maxBatch === 2 ? [2] : []) {
    try {
      const out = await run(n);
      if (out.dims[0] !== n) throw new Error(`output batch ${out.dims[0]} for an input batch of ${n}`);
      if (n !== maxBatch) batchNote = `${batchNote}; batching at most 2`;
      maxBatch = n;
      break;
    } catch (err) {
      batchNote = `a batch of ${n} fails (${firstLine(err)})`;
      maxBatch = 1;
    }
  }
  if (maxBatch === 1 && batchNote) batchNote = `batching off: the batch axis is dynamic but ${batchNote}`;
  else if (batchNote) batchNote = `batching reduced: ${batchNote}`;
  const outputDims = [1, ...probe.dims.slice(1)];
  const perFrameOut = probe.dims.slice(1).reduce((a, b) => a * b, 1);

  return {
    shape: frameShape,
    head,
    provider,
    classNames,
    maxBatch,
    outputDims,
    providerNote: providerNotes.length ? providerNotes.join("; ") : undefined,
    batchNote,
    input,
    inputNote,
    async infer(frames, into) {
      if (frames.length < 1 || frames.length > maxBatch)
        throw new Error(`a batch of ${frames.length} frames; this model takes 1 to ${maxBatch}`);
      if (into && into.length !== frames.length) throw new Error("one output buffer per frame");
      let tensor: ort.Tensor;
      for (const f of frames)
        if (f.length !== chw || f instanceof Uint8Array !== (input === "uint8-nhwc"))
          throw new Error(`a frame of ${f.length} ${f.constructor.name} values; this model takes ${chw} (${input})`);
      if (frames.length === 1) tensor = tensorOf(frames[0] as Frame, 1);
      else {
        tensor = tensorFor(frames.length); // first: it may grow the input buffer
        frames.forEach((f, k) => {
          batchInput.set(f as Uint8Array & Float32Array, k * chw);
        });
      }
      // A single frame's output goes straight into its buffer (a pre-allocated fetch); a batch's is copied apart.
      const direct =
        into?.length === 1
          ? { [outputName]: new ort.Tensor("float32", into[0] as Float32Array, outputDims) }
          : undefined;
      const t0 = performance.now();
      const out = (await (direct ? s.run({ [inputName]: tensor }, direct) : s.run({ [inputName]: tensor })))[
        outputName
      ] as ort.Tensor;
      const inferenceMs = performance.now() - t0;
      if (direct) return { outputs: [into?.[0] as Float32Array], inferenceMs };
      const data = out.data as Float32Array;
      if (into) {
        into.forEach((o, k) => {
          o.set(data.subarray(k * perFrameOut, (k + 1) * perFrameOut));
        });
        return { outputs: [...into], inferenceMs };
      }
      const outputs =
        frames.length === 1 ? [data] : frames.map((_, k) => data.slice(k * perFrameOut, (k + 1) * perFrameOut));
      return { outputs, inferenceMs };
    },
    async runRaw(batch = 1) {
      const t0 = performance.now();
      await run(Math.min(batch, maxBatch));
      return performance.now() - t0;
    },
    async close() {
      await s.release();
    },
  };
}

/** A frame's raw output → Detections in source pixels: decode the head, filter classes, NMS. */
export function detectionsOf(
  model: Pick<ModelInfo, "head" | "shape" | "outputDims">,
  output: Float32Array,
  srcW: number,
  srcH: number,
  o: DetectOptions,
): Detections {
  const decode = model.head === "yolov8" ? decodeYolov8 : decodeYolov5;
  const candidates = decode(
    output,
    model.outputDims,
    { minScore: o.minScore, classFilter: o.classFilter ?? null },
    letterboxParams(srcW, srcH, model.shape),
    srcW,
    srcH,
  );
  return nms(candidates, { iouThreshold: o.iouThreshold ?? 0.45 });
}

/** The model in this thread, with dynamic batching of concurrent calls. */
export async function loadDetector(path: string, opts: DetectorOptions = {}): Promise<Detector> {
  const model = await loadModel(path, opts);
  const batcher = createBatcher(model.maxBatch, (frames: Frame[]) => model.infer(frames).then(spread));
  const { outputDims: _, infer: __, ...info } = model;
  return {
    ...info,
    classFilter: (names) => classFilterOf(model.classNames, names),
    async detect(rgb, srcW, srcH, o) {
      const frame = frameBuffer(model.input, model.shape);
      frameInto(model.input, rgb, model.shape, frame);
      const r = await batcher.submit(frame);
      return { detections: detectionsOf(model, r.output, srcW, srcH, o), inferenceMs: r.inferenceMs, batch: r.batch };
    },
  };
}

/** One batched run's result per frame, for the batcher. */
const spread = (r: { outputs: Float32Array[]; inferenceMs: number }) =>
  r.outputs.map((output) => ({ output, inferenceMs: r.inferenceMs, batch: r.outputs.length }));

const firstLine = (err: unknown) => String(err instanceof Error ? err.message : err).split("\n")[0];

/** Loads the session on the first of the wanted providers that works, CPU last; notes why others were skipped. */
async function createSession(
  bytes: Uint8Array,
  wanted: readonly Provider[],
  available: Set<string>,
  opts: DetectorOptions,
  providerNotes: string[],
): Promise<{ session: ort.InferenceSession; provider: Provider }> {
  for (const p of [...wanted, "cpu" as const]) {
    if (p !== "cpu" && !available.has(p)) {
      providerNotes.push(`${p}: not in this onnxruntime build`);
      continue;
    }
    try {
      const session = await ort.InferenceSession.create(bytes, {
        executionProviders: [p],
        intraOpNumThreads: opts.threads ?? 0,
        interOpNumThreads: opts.interOpThreads ?? 0,
        executionMode: opts.parallel ? "parallel" : "sequential",
        graphOptimizationLevel: "all",
        // onnxruntime's pool threads spin for a while after each run, waiting for more work. Measured on 2 cores
        // (YOLOv8n, one camera): spinning makes a frame ~5 % faster and costs ~10 % more CPU, CPU that a worker's
        // other cameras need for decoding. Off by default; `spin` turns it back on.
        ...(opts.spin ? {} : { extra: { session: { intra_op: { allow_spinning: "0" } } } }),
      });
      return { session, provider: p };
    } catch (err) {
      if (p === "cpu") throw new Error(`not a loadable ONNX model (${firstLine(err)})`);
      providerNotes.push(`${p}: ${firstLine(err)}`);
    }
  }
  throw new Error("no execution provider could load it");
}
