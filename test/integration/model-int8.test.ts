// The INT8 model (hack/onnx/int8.sh: onnxruntime's static quantizer, calibrated on vtest.avi) against the float
// model it came from, on real vtest.avi frames the calibration did not see, and two instances of it answering
// at once (worker/infer/instances.ts), as `npm run bench -- density` runs 24 cameras: square on vtest.avi, and at
// 640×384 (rect-input.ts) on its 1080p re-encoding, the density bench's shape.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModelInstances } from "../../worker/infer/instances.ts";
import type { Detector } from "../../worker/infer/session.ts";
import { loadThreadedDetector } from "../../worker/infer/threaded.ts";
import type { Frame } from "../../worker/ingest/ffmpeg-source.ts";
import { boxes, compareDetectors, matched } from "../setup/boxes.ts";
import { vtestFrames } from "../setup/frames.ts";
import { FIXTURES } from "../setup/services.ts";

const RECT = { width: 640, height: 384 };

describe("the INT8 model", () => {
  let float: Detector;
  let int8: Detector & { instances: number };
  let rect: Detector;
  let frames: Frame[];
  let wide: { square: Frame[]; rect: Frame[] };
  beforeAll(async () => {
    float = await loadThreadedDetector(join(FIXTURES, "yolov8n.onnx"), { threads: 1 });
    int8 = await loadModelInstances(join(FIXTURES, "yolov8n-int8.onnx"), { threads: 2 }, 2);
    rect = await loadThreadedDetector(join(FIXTURES, "yolov8n-int8.onnx"), { threads: 1, inputShape: RECT });
    // 1.3 fps: most frames fall between the every-25th frames (2.5 s at 10 fps) the calibration used.
    frames = await vtestFrames(12, 1.3);
    const [s, r] = await Promise.all([
      vtestFrames(8, 1.3, float.shape, "vtest-1080p.mkv"),
      vtestFrames(8, 1.3, RECT, "vtest-1080p.mkv"),
    ]);
    wide = { square: s, rect: r };
  }, 90_000);
  afterAll(async () => {
    await float?.close();
    await int8?.close();
    await rect?.close();
  });

  it("loads as the float model does: uint8 input rewritten in, the v8 head read from its output", () => {
    expect(int8.instances).toBe(2);
    expect(int8.input).toBe("uint8-nhwc");
    expect(int8.inputNote).toBeUndefined();
    expect(int8.head).toBe("yolov8");
    expect(int8.shape).toEqual({ width: 640, height: 640 });
  });

  it("finds the people the float model finds, on frames it was not calibrated on", { timeout: 60_000 }, async () => {
    expect(frames).toHaveLength(12);
    const opts = { minScore: 0.4, classFilter: float.classFilter(["person"]) };
    let ref = 0;
    let got = 0;
    let hit = 0;
    // All frames at once: the two instances share them.
    const quantized = await Promise.all(frames.map((f) => int8.detect(f.data, f.width, f.height, opts)));
    for (const [k, f] of frames.entries()) {
      const a = boxes((await float.detect(f.data, f.width, f.height, opts)).detections);
      const b = boxes((quantized[k] as (typeof quantized)[number]).detections);
      ref += a.length;
      got += b.length;
      hit += matched(a, b);
    }
    expect(ref).toBeGreaterThan(40); // vtest.avi has several walkers in every frame
    const recall = hit / ref;
    const precision = hit / got;
    console.info(
      `int8 against float: ${hit}/${ref} boxes matched (recall ${recall.toFixed(3)}), precision ${precision.toFixed(3)}`,
    );
    expect(recall).toBeGreaterThanOrEqual(0.9);
    expect(precision).toBeGreaterThanOrEqual(0.9);
  });

  it("at 640×384 on 1080p frames, finds the people the square float model finds, where it finds them", {
    timeout: 60_000,
  }, async () => {
    expect(rect.shape).toEqual(RECT);
    const opts = { minScore: 0.4, classFilter: float.classFilter(["person"]) };
    const { ref, got, ious, meanIou } = await compareDetectors(
      { detector: float, frames: wide.square },
      { detector: rect, frames: wide.rect },
      opts,
    );
    expect(ref).toBeGreaterThan(25);
    console.info(
      `int8 640×384 against float 640×640: ${ious.length}/${ref} matched, ${got} found, mean IoU ${meanIou.toFixed(3)}`,
    );
    expect(ious.length / ref).toBeGreaterThanOrEqual(0.9);
    expect(ious.length / got).toBeGreaterThanOrEqual(0.9);
    expect(meanIou).toBeGreaterThanOrEqual(0.9);
  });
});
