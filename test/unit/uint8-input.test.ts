// Preprocessing inside the model (worker/infer/uint8-input.ts) on the real YOLOv8n and its dynamic-batch twin:
// the rewritten model, fed ffmpeg's bytes of a real vtest.avi frame, gives the float model's outputs and the same
// detections; a dynamic batch stays dynamic; models it cannot rewrite are refused, saying why.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { bytesField, type Field, intField, writeMessage } from "../../worker/infer/onnx-wire.ts";
import { detectionsOf, loadModel } from "../../worker/infer/session.ts";
import { describeInput, modelInput, prependPreprocessing, verifyUint8Input } from "../../worker/infer/uint8-input.ts";
import { identityModel } from "../setup/onnx.ts";
import { FIXTURES } from "../setup/services.ts";

const MODEL = join(FIXTURES, "yolov8n.onnx");
const DYNAMIC = join(FIXTURES, "yolov8n-dynamic.onnx");
const dir = mkdtempSync(join(tmpdir(), "vigil-uint8-"));

/** Frame 100 of vtest.avi (768×576), letterboxed by ffmpeg to 640² rgb24 exactly as the worker's source does. */
function realFrame(): Uint8Array {
  return execFileSync(
    "ffmpeg",
    [
      ...["-loglevel", "error", "-i", join(FIXTURES, "vtest.avi"), "-vf"],
      "select=eq(n\\,100),scale=640:640:force_original_aspect_ratio=decrease:flags=bilinear,pad=640:640:(ow-iw)/2:(oh-ih)/2:color=0x727272",
      ...["-frames:v", "1", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"],
    ],
    { maxBuffer: 1 << 24 },
  );
}

/** x → Neg → y over float [1, 3, 4, 4]: a float model that a rewritten Identity cannot match. */
function negModel(): Uint8Array {
  const message = (num: number, fields: Field[]) => bytesField(num, writeMessage(fields));
  const info = (name: string) => [
    bytesField(1, name),
    message(2, [
      message(1, [
        intField(1, 1),
        message(
          2,
          [1, 3, 4, 4].map((d) => message(1, [intField(1, d)])),
        ),
      ]),
    ]),
  ];
  const graph = [
    message(1, [bytesField(1, "x"), bytesField(2, "y"), bytesField(4, "Neg")]),
    bytesField(2, "g"),
    message(11, info("x")),
    message(12, info("y")),
  ];
  return writeMessage([intField(1, 7), message(7, graph), message(8, [intField(2, 13)])]);
}

describe("a float YOLO model given a uint8 input", () => {
  const frame = realFrame();
  const original = readFileSync(MODEL);

  it("takes ffmpeg's bytes and gives the float model's outputs on a real frame", async () => {
    expect(frame.length).toBe(640 * 640 * 3);
    const rewritten = prependPreprocessing(original);
    expect(describeInput(modelInput(original))).toBe("float [1, 3, 640, 640]");
    expect(describeInput(modelInput(rewritten))).toBe("uint8 [1, 640, 640, 3]");
    const { maxDiff } = await verifyUint8Input(original, rewritten, { frame });
    expect(maxDiff).toBeLessThan(1e-3);
  });

  it("keeps a dynamic batch dynamic, and a batch of 2 gives each frame's own output", async () => {
    const dynamic = readFileSync(DYNAMIC);
    const rewritten = prependPreprocessing(dynamic);
    expect(describeInput(modelInput(rewritten))).toBe("uint8 [batch, 640, 640, 3]");
    await verifyUint8Input(dynamic, rewritten, { frame });
    const s = await ort.InferenceSession.create(rewritten);
    const other = frame.map((v) => 255 - v);
    const one = async (f: Uint8Array) =>
      (await s.run({ images: new ort.Tensor("uint8", f, [1, 640, 640, 3]) })).output0?.data as Float32Array;
    const both = new Uint8Array(2 * frame.length);
    both.set(frame);
    both.set(other, frame.length);
    const two = (await s.run({ images: new ort.Tensor("uint8", both, [2, 640, 640, 3]) })).output0
      ?.data as Float32Array;
    const [a, b] = [await one(frame), await one(other)];
    expect(two.length).toBe(2 * a.length);
    let diff = 0;
    for (let i = 0; i < a.length; i++)
      diff = Math.max(
        diff,
        Math.abs((two[i] as number) - (a[i] as number)),
        Math.abs((two[a.length + i] as number) - (b[i] as number)),
      );
    expect(diff).toBeLessThan(1e-3);
    await s.release();
  });

  it("is what the worker loads, with the same detections as the float path", async () => {
    const [u8, f32] = await Promise.all([
      loadModel(MODEL, { threads: 1 }),
      loadModel(MODEL, { threads: 1, preprocessInModel: false }),
    ]);
    try {
      expect([u8.input, u8.inputNote]).toEqual(["uint8-nhwc", undefined]);
      expect([f32.input, f32.inputNote]).toEqual(["float-nchw", "preprocessing in JS (preprocessInModel: false)"]);
      const chw = new Float32Array(3 * 640 * 640);
      const { hwcToChw } = await import("../../worker/infer/chw.ts");
      hwcToChw(frame, { width: 640, height: 640 }, chw);
      const opts = { minScore: 0.25 };
      const a = detectionsOf(u8, (await u8.infer([frame])).outputs[0] as Float32Array, 768, 576, opts);
      const b = detectionsOf(f32, (await f32.infer([chw])).outputs[0] as Float32Array, 768, 576, opts);
      expect(a.length).toBeGreaterThan(3); // vtest.avi's hall has several people in frame 100
      expect(Array.from(a.classId)).toEqual(Array.from(b.classId));
      const boxes = (d: typeof a) => Array.from(d.xyxy, (v) => Math.round(v * 10) / 10);
      expect(boxes(a)).toEqual(boxes(b));
      await expect(u8.infer([chw])).rejects.toThrow(/this model takes 1228800 \(uint8-nhwc\)/);
    } finally {
      await Promise.all([u8.close(), f32.close()]);
    }
  });

  it("loads a model that already takes uint8 as it is", async () => {
    const file = join(dir, "u8.onnx");
    writeFileSync(file, prependPreprocessing(original));
    const m = await loadModel(file, { threads: 1 });
    try {
      expect([m.input, m.inputNote, m.shape]).toEqual(["uint8-nhwc", undefined, { width: 640, height: 640 }]);
    } finally {
      await m.close();
    }
  });
});

describe("models the rewriter refuses", () => {
  it("says what is wrong with the input", () => {
    expect(() => prependPreprocessing(identityModel([1, 4, 64, 32]))).toThrow(
      "the model's input x is float [1, 4, 64, 32]; want float [N, 3, H, W]",
    );
    expect(() => prependPreprocessing(identityModel([1, 640, 640, 3]))).toThrow(/want float \[N, 3, H, W\]/);
    const u8 = prependPreprocessing(identityModel([1, 3, 8, 8]));
    expect(() => prependPreprocessing(u8)).toThrow("the model already takes uint8 [N, H, W, 3]");
    expect(() => prependPreprocessing(Buffer.from("not a model at all"))).toThrow(/not an ONNX model/);
  });

  it("a check against a model that computes something else fails, naming the value", async () => {
    await expect(verifyUint8Input(negModel(), prependPreprocessing(identityModel([1, 3, 4, 4])))).rejects.toThrow(
      /output y\[\d+\] is .*, the float model's is/,
    );
  });
});
