// Rect inference (worker/infer/rect-input.ts, DetectorPool model.inputWidth × inputHeight) against the square
// model on real frames, each decoded by the worker's own FfmpegSource at its model's shape: 4:3 vtest.avi at
// 640×480 (no grey bars at all) and its 16:9 1080p H.264 re-encoding at 640×384. The same people, in the same
// places, in source pixels.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InputShape } from "../../worker/infer/letterbox.ts";
import type { Detector } from "../../worker/infer/session.ts";
import { loadThreadedDetector } from "../../worker/infer/threaded.ts";
import type { Frame } from "../../worker/ingest/ffmpeg-source.ts";
import { compareDetectors } from "../setup/boxes.ts";
import { vtestFrames } from "../setup/frames.ts";
import { FIXTURES } from "../setup/services.ts";

const MODEL = join(FIXTURES, "yolov8n.onnx");

describe.each([
  { file: "vtest.avi", shape: { width: 640, height: 480 } },
  { file: "vtest-1080p.mkv", shape: { width: 640, height: 384 } },
] as { file: string; shape: InputShape }[])(
  "rect inference on $file at $shape.width×$shape.height",
  ({ file, shape }) => {
    let square: Detector;
    let rect: Detector;
    let squareFrames: Frame[];
    let rectFrames: Frame[];
    beforeAll(async () => {
      [square, rect] = await Promise.all([
        loadThreadedDetector(MODEL, { threads: 1 }),
        loadThreadedDetector(MODEL, { threads: 1, inputShape: shape }),
      ]);
      [squareFrames, rectFrames] = await Promise.all([
        vtestFrames(8, 1.3, square.shape, file),
        vtestFrames(8, 1.3, shape, file),
      ]);
    }, 90_000);
    afterAll(async () => {
      await square?.close();
      await rect?.close();
    });

    it("loads at the pool's shape, with uint8 input", () => {
      expect([rect.shape, rect.input, rect.inputNote]).toEqual([shape, "uint8-nhwc", undefined]);
      expect(rectFrames[0]?.data.length).toBe(shape.width * shape.height * 3);
    });

    it("finds the people the square model finds, where it finds them", { timeout: 60_000 }, async () => {
      const opts = { minScore: 0.4, classFilter: square.classFilter(["person"]) };
      for (const [k, f] of squareFrames.entries()) {
        const r = rectFrames[k] as Frame;
        expect([r.width, r.height, r.timestampMs]).toEqual([f.width, f.height, f.timestampMs]);
      }
      const { ref, got, ious, meanIou } = await compareDetectors(
        { detector: square, frames: squareFrames },
        { detector: rect, frames: rectFrames },
        opts,
      );
      expect(ref).toBeGreaterThan(25); // vtest.avi has several walkers in every frame
      const recall = ious.length / ref;
      const precision = ious.length / got;
      console.info(
        `${file} ${shape.width}×${shape.height} against 640×640: ${ious.length}/${ref} matched (recall ${recall.toFixed(3)}), precision ${precision.toFixed(3)}, mean IoU ${meanIou.toFixed(3)}`,
      );
      expect(recall).toBeGreaterThanOrEqual(0.9);
      expect(precision).toBeGreaterThanOrEqual(0.9);
      // Boxes mapped back through the wrong letterbox (a square's padding) would be shifted by 40–128 px.
      expect(meanIou).toBeGreaterThanOrEqual(0.9);
    });
  },
);
