// Rectangular input (worker/infer/rect-input.ts): the anchor layout Ultralytics exports, checked on a hand-made
// grid; the real YOLOv8n rewritten for 640×384 and run on onnxruntime; models it cannot rewrite refused, saying why.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { anchorCount, anchorsFor, shapeProblem, withInputShape } from "../../worker/infer/rect-input.ts";
import { loadModel } from "../../worker/infer/session.ts";
import { modelInput, prependPreprocessing } from "../../worker/infer/uint8-input.ts";
import { identityModel } from "../setup/onnx.ts";
import { FIXTURES } from "../setup/services.ts";

const MODEL = join(FIXTURES, "yolov8n.onnx");

describe("anchors", () => {
  it("counts one per grid cell of strides 8, 16 and 32", () => {
    expect(anchorCount({ width: 640, height: 640 })).toBe(8400);
    expect(anchorCount({ width: 640, height: 480 })).toBe(4800 + 1200 + 300);
    expect(anchorCount({ width: 640, height: 384 })).toBe(3840 + 960 + 240);
  });

  it("lays cells out row-major per stride, x row then y row, as make_anchors does", () => {
    // 64×32: stride 8 is 8×4 cells (0–31), stride 16 is 4×2 (32–39), stride 32 is 2×1 (40–41).
    const { points, strides } = anchorsFor({ width: 64, height: 32 });
    const n = 42;
    expect(points).toHaveLength(2 * n);
    const at = (k: number) => [points[k], points[n + k], strides[k]];
    expect(at(0)).toEqual([0.5, 0.5, 8]);
    expect(at(1)).toEqual([1.5, 0.5, 8]);
    expect(at(8)).toEqual([0.5, 1.5, 8]); // the second row starts after 8 cells across
    expect(at(31)).toEqual([7.5, 3.5, 8]);
    expect(at(32)).toEqual([0.5, 0.5, 16]);
    expect(at(39)).toEqual([3.5, 1.5, 16]);
    expect(at(40)).toEqual([0.5, 0.5, 32]);
    expect(at(41)).toEqual([1.5, 0.5, 32]);
  });

  it("wants each side a multiple of 32", () => {
    expect(shapeProblem({ width: 640, height: 384 })).toBeUndefined();
    expect(shapeProblem({ width: 640, height: 360 })).toMatch(/height 360 must be a positive multiple of 32/);
    expect(shapeProblem({ width: 0, height: 384 })).toMatch(/width 0/);
  });
});

describe("withInputShape on the real YOLOv8n", () => {
  const original = readFileSync(MODEL);

  it("takes [1, 3, 384, 640] and gives one row per anchor of that size", async () => {
    const rect = withInputShape(original, { width: 640, height: 384 });
    expect(modelInput(rect).dims).toEqual([1, 3, 384, 640]);
    const s = await ort.InferenceSession.create(rect, { intraOpNumThreads: 1 });
    try {
      const frame = new Float32Array(3 * 384 * 640).fill(114 / 255);
      const out = (await s.run({ [s.inputNames[0] as string]: new ort.Tensor("float32", frame, [1, 3, 384, 640]) }))[
        s.outputNames[0] as string
      ] as ort.Tensor;
      expect(out.dims).toEqual([1, 84, 5040]);
      // Box centres come out of the anchors × strides: on a grey frame every centre lies inside the frame, which
      // the square anchors (y up to 640) would break for the bottom rows.
      const d = out.data as Float32Array;
      let maxY = 0;
      for (let i = 0; i < 5040; i++) maxY = Math.max(maxY, d[5040 + i] as number);
      expect(maxY).toBeGreaterThan(300);
      expect(maxY).toBeLessThan(384 + 16);
    } finally {
      await s.release();
    }
  });

  it("returns the model as it is for its own size", () => {
    expect(withInputShape(original, { width: 640, height: 640 })).toBe(original);
  });

  it("refuses what it cannot rewrite, saying why", () => {
    expect(() => withInputShape(original, { width: 640, height: 360 })).toThrow(/height 360 .* multiple of 32/);
    expect(() => withInputShape(prependPreprocessing(original), { width: 640, height: 384 })).toThrow(
      /not a square float \[N, 3, S, S\]/,
    );
    // A model with no YOLO head: nothing to regenerate, so no claim that it now takes 640×384.
    expect(() => withInputShape(identityModel([1, 3, 64, 64]), { width: 64, height: 32 })).toThrow(
      /not a YOLOv8\/v11 head .*found 0 anchor and 0 stride constants/,
    );
  });

  it("fails a load the pool asked a shape of that the model cannot take, naming the pool's fields", async () => {
    await expect(loadModel(MODEL, { threads: 1, inputShape: { width: 640, height: 360 } })).rejects.toThrow(
      /model.inputWidth × inputHeight 640×360: input height 360 must be a positive multiple of 32/,
    );
    await expect(
      loadModel(MODEL, { threads: 1, inputSize: 320, inputShape: { width: 640, height: 384 } }),
    ).rejects.toThrow(/the pool says model.inputSize 320, the model takes 640×640/);
  });

  it("loads with uint8 input at the asked shape", async () => {
    const m = await loadModel(MODEL, { threads: 1, inputShape: { width: 640, height: 384 } });
    try {
      expect([m.shape, m.input, m.inputNote, m.outputDims]).toEqual([
        { width: 640, height: 384 },
        "uint8-nhwc",
        undefined,
        [1, 84, 5040],
      ]);
      await expect(m.infer([new Uint8Array(640 * 640 * 3)])).rejects.toThrow(/this model takes 737280/);
    } finally {
      await m.close();
    }
  });
});
