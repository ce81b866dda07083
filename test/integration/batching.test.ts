// Batching across cameras on the real model: YOLOv8n with a dynamic batch axis (hack/onnx/dynamic-batch.ts, made by
// hack/fixtures.sh) against the fixed-batch original, on real vtest.avi frames; then a real worker with several
// cameras batching them, seen on a real Redis.
import type { ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { makeBatchDynamic } from "../../hack/onnx/dynamic-batch.ts";
import { parseMessage as parseProto, writeMessage } from "../../hack/onnx/wire.ts";
import { COCO_CLASSES } from "../../worker/detections.ts";
import type { Detector } from "../../worker/infer/session.ts";
import { loadThreadedDetector } from "../../worker/infer/threaded.ts";
import type { StatsMessage } from "../../worker/publish/messages.ts";
import { vtestFrames } from "../setup/frames.ts";
import { cameraManifest, metricValue } from "../setup/operator-env.ts";
import { FIXTURES, type Service, startRedis, startWorker, subscribeStats, waitFor } from "../setup/services.ts";

const VIDEO = join(FIXTURES, "vtest.avi");

const framesOf = (n: number) => vtestFrames(n, 2);

describe("batching across cameras", () => {
  let fixed: Detector;
  let dynamic: Detector;
  beforeAll(async () => {
    fixed = await loadThreadedDetector(join(FIXTURES, "yolov8n.onnx"), { threads: 2 });
    dynamic = await loadThreadedDetector(join(FIXTURES, "yolov8n-dynamic.onnx"), { threads: 2, maxBatch: 4 });
  }, 60_000);
  afterAll(async () => {
    await fixed?.close();
    await dynamic?.close();
  });

  it("rewrites only the batch: the model's bytes read and written back are the same bytes", () => {
    const original = readFileSync(join(FIXTURES, "yolov8n.onnx"));
    expect(Buffer.from(writeMessage(parseProto(original))).equals(original)).toBe(true);
    const { reshapes } = makeBatchDynamic(original);
    expect(reshapes).toBe(3); // the head's [1, 144, -1] (shared by three Reshapes), [1, 4, 16, 8400], [1, 4, 8400]
    expect(() => makeBatchDynamic(Buffer.from("not a model"))).toThrow();
  });

  it("tells a dynamic batch axis from a fixed one", () => {
    expect(fixed.maxBatch).toBe(1);
    expect(dynamic.maxBatch).toBe(4);
    expect(dynamic.batchNote).toBeUndefined();
    expect(dynamic.head).toBe("yolov8");
  });

  it("finds in one batched run what separate runs find on each frame", { timeout: 60_000 }, async () => {
    const frames = await framesOf(4);
    const opts = { minScore: 0.5, classFilter: dynamic.classFilter(["person"]) };
    const alone = [];
    for (const f of frames) alone.push(await fixed.detect(f.data, f.width, f.height, opts));
    // Four cameras' frames arriving together.
    const together = await Promise.all(frames.map((f) => dynamic.detect(f.data, f.width, f.height, opts)));
    // The first may start alone (the model was idle); the others meet while it runs.
    const batches = together.map((r) => r.batch);
    expect(Math.max(...batches)).toBeGreaterThan(1);
    expect(batches.every((b) => b >= 1 && b <= 4)).toBe(true);
    expect(alone.map((r) => r.batch)).toEqual([1, 1, 1, 1]);
    for (let k = 0; k < frames.length; k++) {
      const a = (alone[k] as (typeof alone)[number]).detections;
      const b = (together[k] as (typeof together)[number]).detections;
      expect(a.length).toBeGreaterThanOrEqual(2); // vtest.avi has people in every frame
      expect(b.length).toBe(a.length);
      for (let i = 0; i < a.length; i++) {
        expect(COCO_CLASSES[b.classId[i] as number]).toBe("person");
        expect(Math.abs((b.score[i] as number) - (a.score[i] as number))).toBeLessThan(1e-3);
        for (let c = 0; c < 4; c++)
          expect(Math.abs((b.xyxy[i * 4 + c] as number) - (a.xyxy[i * 4 + c] as number))).toBeLessThan(0.5);
      }
    }
  });

  it("runs frames one by one, and says why, when the graph still pins the batch", { timeout: 30_000 }, async () => {
    const file = join(tmpdir(), `vigil-pinned-${process.pid}.onnx`);
    writeFileSync(file, makeBatchDynamic(readFileSync(join(FIXTURES, "yolov8n.onnx")), { inputsOnly: true }).model);
    const pinned = await loadThreadedDetector(file, { threads: 1 });
    try {
      expect(pinned.maxBatch).toBe(1);
      expect(pinned.batchNote).toMatch(/batching off: the batch axis is dynamic but a batch of 2 fails/);
    } finally {
      await pinned.close();
    }
  });

  it("runs a frame that comes alone at once, as a batch of one", async () => {
    const [f] = await framesOf(1);
    if (!f) throw new Error("no frame");
    const r = await dynamic.detect(f.data, f.width, f.height, { minScore: 0.5 });
    expect(r.batch).toBe(1);
    expect(r.detections.length).toBeGreaterThan(0);
  });
});

describe("a worker batching its cameras", () => {
  let redis: Service;
  let worker: ChildProcess;
  let sub: Redis;
  let port: number;
  const stats: StatsMessage[] = [];
  const logs: string[] = [];
  const CAMERAS = ["door", "hall", "yard"];

  beforeAll(async () => {
    redis = await startRedis();
    sub = await subscribeStats(redis.port, stats);
    const file = join(tmpdir(), `vigil-batching-${process.pid}.yaml`);
    writeFileSync(
      file,
      CAMERAS.map((name) =>
        stringify(
          cameraManifest(name, "local", {
            source: { url: `file://${VIDEO}` },
            // Every sampled frame goes to the model: the gate would thin them out and hide the batching.
            detection: { targetFps: 10, motionGate: { enabled: false } },
          }),
        ),
      ).join("---\n"),
    );
    ({ proc: worker, port } = await startWorker(
      ["--cameras", file],
      redis.port,
      {
        VIGIL_MODEL_URI: join(FIXTURES, "yolov8n-dynamic.onnx"),
        VIGIL_MAX_BATCH: "4",
        // Rect inference (model.inputWidth × inputHeight) on the batch-capable model: vtest.avi is 4:3.
        VIGIL_MODEL_INPUT_WIDTH: "640",
        VIGIL_MODEL_INPUT_HEIGHT: "480",
        // A run waits up to 400 ms for a full batch: three cameras at 10 fps bring four frames within ~130 ms,
        // so batches fill however fast the model is (without the window, only a model slower than the frames
        // batches: true of this CPU, not of a GPU).
        VIGIL_MAX_BATCH_DELAY_MS: "400",
        VIGIL_THREADS: "2",
        VIGIL_REALTIME_FILES: "true",
      },
      logs,
    ));
  }, 60_000);

  afterAll(async () => {
    worker?.kill("SIGTERM");
    sub?.disconnect();
    await redis?.stop();
  });

  it("puts several cameras' frames in one model run, and says so in stats and metrics", {
    timeout: 60_000,
  }, async () => {
    const metrics = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    await waitFor(
      "60 inferences",
      async () => (metricValue(await metrics(), "vigil_inference_batch_size_count") ?? 0) >= 60,
      45_000,
    ).catch((err) => {
      throw new Error(`${(err as Error).message}\n${logs.join("").slice(-3000)}`);
    });
    const text = await metrics();
    const count = metricValue(text, "vigil_inference_batch_size_count") ?? 0;
    const sum = metricValue(text, "vigil_inference_batch_size_sum") ?? 0;
    // Each run waited for a full batch of four (or 400 ms, which three cameras at 10 fps never leave empty).
    expect(sum / count).toBeGreaterThan(3);
    expect(sum / count).toBeLessThanOrEqual(4); // VIGIL_MAX_BATCH
    expect(metricValue(text, "vigil_inference_batch_size_bucket", 'le="4"')).toBe(count);
    expect(logs.join("")).toMatch(/"maxBatch":4/);
    expect(logs.join("")).toMatch(/"shape":\{"width":640,"height":480\}/);
    const batched = stats.filter((s) => (s.data.batch_size ?? 0) > 1);
    const ids = CAMERAS.map((name) => `default/${name}`); // no namespace in the manifests: "default"
    expect(new Set(batched.map((s) => s.camera_id))).toEqual(new Set(ids));
    for (const id of ids) {
      const last = stats.filter((s) => s.camera_id === id).at(-1);
      expect(last?.data.persons).toBeGreaterThan(0);
    }
  });
});
