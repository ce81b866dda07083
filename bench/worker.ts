// The worker's throughput against the model alone: raw onnxruntime fps (same model, same threads, same run),
// then the whole pipeline (ffmpeg decode + letterbox → tensor → model → decode + NMS → tracker → rules →
// Redis publish) on 1 and on N cameras reading vtest.avi, the motion gate's skip rate, latency and RSS. The model
// takes uint8 frames (preprocessing inside it, worker/infer/uint8-input.ts), raw fps included; `float_path` is the
// same on the float model fed by the JS conversion, for comparison. Model time idle is the bare session call alone;
// under load, the mean model run during the N-camera pipeline.
// Levers, by environment: BENCH_THREADS (intra-op), BENCH_INTER_OP, BENCH_PARALLEL=1, BENCH_SPIN=1,
// BENCH_MODEL_NICE (the model thread's nice; below 0 needs root), BENCH_MAIN_NICE (the main thread's, inherited by
// the ffmpeg children it spawns; needs no privilege), BENCH_FLOAT=0 (skip the float path), BENCH_BATCHED=0,
// BENCH_INPUT=640x480 (rect inference, worker/infer/rect-input.ts: vtest.avi is 4:3, so no grey bars at all).
// VIGIL_HEAP_GROWING_PERCENT as the worker reads it (worker/heap-growth.ts; 0 = V8's own, for comparison).
// BENCH_ROUNDS (default 5) and BENCH_FRAMES (per camera and run, default 100) size the measurement.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { PerformanceObserver, constants as perfConstants } from "node:perf_hooks";
import pino from "pino";
import { Registry } from "prom-client";
import { cameraDetectionSpec } from "../operator/api/camera-detection.ts";
import { workerEnv } from "../operator/api/worker-env.ts";
import { ROOT } from "../test/setup/operator-env.ts";
import { startRedis } from "../test/setup/services.ts";
import { createCameraProcessor } from "../worker/camera.ts";
import { growHeapInLargerSteps } from "../worker/heap-growth.ts";
import { setThreadNice } from "../worker/infer/priority.ts";
import { schedulerForModel } from "../worker/infer/scheduler.ts";
import type { Detector, DetectorOptions } from "../worker/infer/session.ts";
import { loadThreadedDetector } from "../worker/infer/threaded.ts";
import { FfmpegSource } from "../worker/ingest/ffmpeg-source.ts";
import { MESSAGE_VERSION } from "../worker/publish/messages.ts";
import { type Bus, createRedisBus } from "../worker/publish/redis-bus.ts";

const FRAMES_PER_CAMERA = Number(process.env.BENCH_FRAMES ?? 100);
/** Rounds of (model alone, pipeline on 1 and on N cameras, model alone); odd, so a median is one round's. */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CAMERAS = Number(process.env.BENCH_CAMERAS ?? 4);
const THREADS = Number(process.env.BENCH_THREADS ?? 2);
const env = process.env;
const INPUT = /^(\d+)x(\d+)$/.exec(env.BENCH_INPUT ?? "");
if (env.BENCH_INPUT && !INPUT) throw new Error(`BENCH_INPUT=${env.BENCH_INPUT}: want WIDTHxHEIGHT, say 640x480`);
const OPTS: DetectorOptions = {
  threads: THREADS,
  ...(INPUT ? { inputShape: { width: Number(INPUT[1]), height: Number(INPUT[2]) } } : {}),
  ...(env.BENCH_INTER_OP ? { interOpThreads: Number(env.BENCH_INTER_OP) } : {}),
  ...(env.BENCH_PARALLEL === "1" ? { parallel: true } : {}),
  ...(env.BENCH_SPIN === "1" ? { spin: true } : {}),
  ...(env.BENCH_MODEL_NICE ? { nice: Number(env.BENCH_MODEL_NICE) } : {}),
};

const HEAP_GROWING_PERCENT = workerEnv.shape.VIGIL_HEAP_GROWING_PERCENT.parse(env.VIGIL_HEAP_GROWING_PERCENT);

const VTEST = join(ROOT, ".cache", "fixtures", "vtest.avi");
const STILL = join(ROOT, ".cache", "fixtures", "still.mkv");

/** A still scene (vtest's first frame for 20 s at 10 fps), where the motion gate should skip nearly everything. */
function makeStillClip(): void {
  execFileSync("ffmpeg", [
    "-loglevel",
    "error",
    "-y",
    "-i",
    VTEST,
    "-frames:v",
    "1",
    "-f",
    "image2",
    "-c:v",
    "png",
    `${STILL}.png`,
  ]);
  execFileSync("ffmpeg", [
    "-loglevel",
    "error",
    "-y",
    "-loop",
    "1",
    "-i",
    `${STILL}.png`,
    "-t",
    "20",
    "-r",
    "10",
    "-c:v",
    "libx264",
    "-pix_fmt",
    "yuv420p",
    STILL,
  ]);
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};
const r2 = (v: number) => Math.round(v * 100) / 100;

/** Mean ms of the bare session call alone (nothing else running), on batches of `batch` frames. */
async function rawMs(detector: Detector, runs = 60, batch = 1): Promise<number> {
  for (let i = 0; i < 5; i++) await detector.runRaw(batch);
  let total = 0;
  for (let i = 0; i < runs; i++) total += await detector.runRaw(batch);
  return total / runs;
}
/** Frames per second of the bare session call, on batches of `batch` frames. */
const rawFps = async (detector: Detector, runs = 60, batch = 1) =>
  (1000 * batch) / (await rawMs(detector, runs, batch));
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** N cameras on one model through the real pipeline pieces; returns total processed fps and latencies. */
async function pipeline(detector: Detector, bus: Bus, cameras: number, motionGate: boolean, video = VTEST) {
  const spec = cameraDetectionSpec.parse({
    source: { url: `file://${video}` },
    poolRef: { name: "bench" },
    detection: { targetFps: 10, motionGate: { enabled: motionGate } },
    zones: [
      {
        name: "all",
        polygon: [
          [0, 0],
          [1, 0],
          [1, 1],
          [0, 1],
        ],
      },
    ],
    rules: [{ name: "dwell", dwell: { zone: "all", seconds: 5 } }],
  });
  const scheduler = schedulerForModel(detector.maxBatch);
  const latencies: number[] = [];
  const modelMs: number[] = [];
  let batched = 0;
  let processed = 0;
  let frames = 0;
  let skipped = 0;
  let firstAt = 0;
  let lastAt = 0;
  // The main thread's full GCs (mark-compact) while the pipeline runs; worker/heap-growth.ts says why they count.
  let fullGcs = 0;
  const gcs = new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      if ((e as { detail?: { kind?: number } }).detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) fullGcs++;
  });
  gcs.observe({ entryTypes: ["gc"] });
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: cameras }, async (_, c) => {
      const cam = createCameraProcessor(spec, detector);
      const id = `bench/cam-${c}`;
      let seen = 0;
      const source: FfmpegSource = new FfmpegSource(
        { url: spec.source.url, shape: detector.shape },
        {
          frame: (frame) => {
            const arrived = performance.now();
            firstAt ||= arrived;
            frames++;
            if (++seen >= FRAMES_PER_CAMERA) source.stop();
            if (!cam.wantsInference(frame)) {
              skipped++;
              source.recycle(frame.data);
              return;
            }
            // A file decodes faster than real time: keep one frame decoded ahead of the model, no more.
            scheduler.submit(id, {
              dropped: () => {
                throw new Error("a file frame was dropped");
              },
              run: async () => {
                source.setPaused(false);
                const r = await cam.infer(frame);
                source.recycle(frame.data); // as the worker does when no event or video took the frame
                bus.publishStats({
                  v: MESSAGE_VERSION,
                  type: "stats",
                  camera_id: id,
                  timestamp: new Date().toISOString(),
                  data: {
                    fps: 0,
                    persons: r.detections.length,
                    inference_ms: r.inferenceMs,
                    skipped_frames: 0,
                    reconnects: 0,
                    provider: detector.provider,
                    frames: seen,
                    last_frame_age_ms: 0,
                    stream: "streaming",
                  },
                });
                processed++;
                batched += r.batch;
                modelMs.push(r.inferenceMs);
                lastAt = performance.now();
                latencies.push(lastAt - arrived);
              },
            });
            if (scheduler.pending(id)) source.setPaused(true);
          },
        },
      );
      source.start();
      await source.done;
    }),
  );
  await scheduler.idle();
  gcs.disconnect();
  // Throughput from the first frame to the last result (counting one result fewer, so never above the truth):
  // ffmpeg's start (its first run checks its codecs: 200–400 ms measured, 80–100 ms for later runs) is no part of
  // it, and is reported as startupMs.
  return {
    fps: processed > 1 ? (processed - 1) / ((lastAt - firstAt) / 1000) : 0,
    startupMs: firstAt - t0,
    frames,
    processed,
    skipped,
    latencies,
    meanBatch: batched / processed,
    modelMs: mean(modelMs),
    fullGcs,
  };
}

type Round = {
  idleMs: number;
  one: Awaited<ReturnType<typeof pipeline>>;
  many: Awaited<ReturnType<typeof pipeline>>;
  ratio: number;
  ratioN: number;
};

/** The pipeline on 1 and on N cameras, between two runs of the model alone; ratios to the pair's mean speed. */
async function round(detector: Detector, bus: Bus): Promise<Round> {
  const before = await rawMs(detector, 30);
  const one = await pipeline(detector, bus, 1, false);
  const many = await pipeline(detector, bus, CAMERAS, false);
  const idleMs = (before + (await rawMs(detector, 30))) / 2;
  return { idleMs, one, many, ratio: (one.fps * idleMs) / 1000, ratioN: (many.fps * idleMs) / 1000 };
}

const median = (xs: number[]) => pct(xs, 50);
/** The round whose 1-camera ratio is the median: its fps, latencies and model times are the ones reported. */
const medianRound = (rounds: Round[]) => {
  const m = median(rounds.map((r) => r.ratio));
  return rounds.find((r) => r.ratio === m) ?? (rounds[0] as Round);
};

export async function benchWorker() {
  if (HEAP_GROWING_PERCENT > 0) growHeapInLargerSteps(HEAP_GROWING_PERCENT);
  execFileSync("bash", [join(ROOT, "hack", "fixtures.sh")], { stdio: "inherit" });
  const detector = await loadThreadedDetector(join(ROOT, ".cache", "fixtures", "yolov8n.onnx"), OPTS);
  // After the model thread made its pool threads, so only this thread and the ffmpeg children it spawns get it.
  const mainNiceNote = env.BENCH_MAIN_NICE ? setThreadNice(Number(env.BENCH_MAIN_NICE)) : undefined;
  const redis = await startRedis();
  const bus = createRedisBus(`redis://127.0.0.1:${redis.port}`, new Registry(), pino({ level: "silent" }));
  await new Promise((r) => setTimeout(r, 300));
  try {
    // The model's speed drifts on a shared host (runs of the same build here: 64–74 ms at 2 threads within minutes,
    // single-round ratios 0.82–1.02), so each round brackets its pipeline runs with the model alone, and the
    // ratios are the rounds' medians.
    const rounds: Round[] = [];
    for (let r = 0; r < ROUNDS; r++) rounds.push(await round(detector, bus));
    const mid = medianRound(rounds);
    const { one, many, idleMs: modelMsIdle } = mid;
    const rawFpsMean = 1000 / modelMsIdle;
    const gated = await pipeline(detector, bus, 1, true);
    makeStillClip();
    const still = await pipeline(detector, bus, 1, true, STILL);
    const rssMb = Number(/VmHWM:\s+(\d+)/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? 0) / 1024;
    await detector.close();
    const floatPath = env.BENCH_FLOAT === "0" ? undefined : await floatRun(bus);
    const batching = env.BENCH_BATCHED === "0" ? undefined : await batchedRun(bus);
    return {
      bench: "worker",
      model: `yolov8n ${detector.shape.width}×${detector.shape.height}`,
      provider: detector.provider,
      input: detector.input,
      threads: THREADS,
      options: {
        ...OPTS,
        mainNice: env.BENCH_MAIN_NICE ? Number(env.BENCH_MAIN_NICE) : undefined,
        heapGrowingPercent: HEAP_GROWING_PERCENT,
      },
      notes: [detector.inputNote, detector.priorityNote, mainNiceNote].filter(Boolean),
      load_average_1m: r2(loadavg()[0] ?? 0),
      raw_fps: r2(rawFpsMean),
      pipeline_fps: r2(one.fps),
      ratio: r2(mid.ratio),
      cameras: CAMERAS,
      pipeline_fps_n_cameras: r2(many.fps),
      ratio_n_cameras: r2(median(rounds.map((r) => r.ratioN))),
      rounds: rounds.map((r) => ({ model_ms_idle: r2(r.idleMs), ratio: r2(r.ratio), ratio_n_cameras: r2(r.ratioN) })),
      model_ms_idle: r2(modelMsIdle),
      model_ms_loaded_1_camera: r2(one.modelMs),
      model_ms_loaded: r2(many.modelMs),
      model_loaded_over_idle: r2(many.modelMs / modelMsIdle),
      full_gcs_per_100_frames: r2((100 * one.fullGcs) / Math.max(1, one.frames)),
      full_gcs_per_100_frames_n_cameras: r2((100 * many.fullGcs) / Math.max(1, many.frames)),
      startup_ms: r2(one.startupMs),
      latency_ms_p50: r2(pct(one.latencies, 50)),
      latency_ms_p95: r2(pct(one.latencies, 95)),
      latency_ms_p95_n_cameras: r2(pct(many.latencies, 95)),
      motion_gate_skip_rate: r2(gated.skipped / Math.max(1, gated.frames)),
      motion_gate_skip_rate_still_scene: r2(still.skipped / Math.max(1, still.frames)),
      frames_per_camera: FRAMES_PER_CAMERA,
      worker_peak_rss_mb: r2(rssMb),
      float_path: floatPath,
      batching,
      goal: { ratio: 0.9, model_loaded_over_idle: 1.3 },
    };
  } finally {
    await bus.close();
    await redis.stop();
    await detector.close();
  }
}

/** The float model fed by the JS conversion (chw.ts), as before preprocessing moved into the model. */
async function floatRun(bus: Bus) {
  const detector = await loadThreadedDetector(join(ROOT, ".cache", "fixtures", "yolov8n.onnx"), {
    ...OPTS,
    preprocessInModel: false,
  });
  try {
    const idleMs = await rawMs(detector, 30);
    const one = await pipeline(detector, bus, 1, false);
    const many = await pipeline(detector, bus, CAMERAS, false);
    const rawFpsF = (1000 / idleMs + (await rawFps(detector, 30))) / 2;
    return {
      input: detector.input,
      raw_fps: r2(rawFpsF),
      pipeline_fps: r2(one.fps),
      ratio: r2(one.fps / rawFpsF),
      pipeline_fps_n_cameras: r2(many.fps),
      model_ms_idle: r2(idleMs),
      model_ms_loaded: r2(many.modelMs),
    };
  } finally {
    await detector.close();
  }
}

/** The same N cameras on the model's dynamic-batch twin: raw fps at batch N, and the pipeline batching them. */
async function batchedRun(bus: Bus) {
  const detector = await loadThreadedDetector(join(ROOT, ".cache", "fixtures", "yolov8n-dynamic.onnx"), {
    ...OPTS,
    maxBatch: CAMERAS,
  });
  try {
    const raw1 = await rawFps(detector, 30, 1);
    const rawN = await rawFps(detector, Math.ceil(60 / CAMERAS), CAMERAS);
    const many = await pipeline(detector, bus, CAMERAS, false);
    return {
      model: `yolov8n ${detector.shape.width}×${detector.shape.height}, dynamic batch`,
      max_batch: detector.maxBatch,
      raw_fps_batch_1: r2(raw1),
      raw_fps_batch_n: r2(rawN),
      pipeline_fps_n_cameras: r2(many.fps),
      ratio_n_cameras: r2(many.fps / rawN),
      mean_batch: r2(many.meanBatch),
      model_ms_loaded: r2(many.modelMs),
      latency_ms_p95_n_cameras: r2(pct(many.latencies, 95)),
    };
  } finally {
    await detector.close();
  }
}
