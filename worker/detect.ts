// `vigil detect`: the worker's pipeline once over a file, image or stream, printing each processed frame.
// For trying a model on a clip, and our end-to-end check.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parse } from "yaml";
import { cameraDetection, cameraDetectionSpec } from "../operator/api/camera-detection.ts";
import { createCameraProcessor } from "./camera.ts";
import { schedulerForModel } from "./infer/scheduler.ts";
import type { Provider } from "./infer/session.ts";
import { loadThreadedDetector } from "./infer/threaded.ts";
import { FfmpegSource, type Frame } from "./ingest/ffmpeg-source.ts";
import { isFileSource, redact } from "./ingest/source-url.ts";

const USAGE = `usage: vigil detect --source <file|image|url> [options]

  --model PATH        YOLO ONNX model (default .cache/fixtures/yolov8n.onnx)
  --camera FILE       a CameraDetection YAML: its detection settings, zones and rules apply
  --max-frames N      stop after N processed frames
  --fps N             sample N frames per second (default: every frame)
  --min-score S       minimum confidence (default 0.5, or the camera's)
  --classes a,b       classes to keep (default person, or the camera's)
  --motion-gate       skip frames without motion, as a camera would
  --providers p,q     execution providers in order (tensorrt, cuda, cpu; default cpu)
  --json              one JSON object per processed frame
`;

const OPTIONS = {
  source: { type: "string" },
  model: { type: "string" },
  camera: { type: "string" },
  "max-frames": { type: "string" },
  fps: { type: "string" },
  "min-score": { type: "string" },
  classes: { type: "string" },
  "motion-gate": { type: "boolean" },
  providers: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;
type DetectFlags = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>["values"] & { source: string };

export async function runDetect(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: OPTIONS });
  if (values.help || !values.source) {
    process[values.help ? "stdout" : "stderr"].write(USAGE);
    return values.help ? 0 : 2;
  }
  const fromCamera = values.camera ? cameraDetection.parse(parse(readFileSync(values.camera, "utf8"))).spec : undefined;
  const spec = cameraDetectionSpec.parse({
    ...(fromCamera ?? {}),
    source: { url: "file:///dev/null" },
    poolRef: { name: "detect" },
    detection: {
      ...(fromCamera?.detection ?? {}),
      ...(values["min-score"] ? { minScore: Number(values["min-score"]) } : {}),
      ...(values.classes ? { classes: values.classes.split(",") } : {}),
    },
  });
  const detector = await loadThreadedDetector(values.model ?? join(".cache", "fixtures", "yolov8n.onnx"), {
    providers: (values.providers?.split(",") as Provider[] | undefined) ?? ["cpu"],
  });
  try {
    return await detectWith(detector, spec, { ...values, source: values.source });
  } finally {
    await detector.close();
  }
}

async function detectWith(
  detector: Awaited<ReturnType<typeof loadThreadedDetector>>,
  spec: ReturnType<typeof cameraDetectionSpec.parse>,
  values: DetectFlags,
): Promise<number> {
  const camera = createCameraProcessor(spec, detector, {
    motionGate: values["motion-gate"] ?? false,
    confirmFrames: 1,
  });
  const maxFrames = values["max-frames"] ? Number(values["max-frames"]) : Number.POSITIVE_INFINITY;
  const names = detector.classNames;
  let started = 0; // frames sent to the model: two may be in flight, so --max-frames counts them here
  let processed = 0;
  let failure: unknown;

  const handle = async (frame: Frame) => {
    if (started >= maxFrames || !camera.wantsInference(frame)) return;
    started++;
    const r = await camera.infer(frame);
    processed++;
    const detections = Array.from({ length: r.detections.length }, (_, i) => ({
      class: names[r.detections.classId[i] as number] ?? String(r.detections.classId[i]),
      score: round(r.detections.score[i] as number, 3),
      box: Array.from(r.detections.xyxy.subarray(i * 4, i * 4 + 4), (v) => round(v, 1)),
      track_id: r.detections.trackId[i],
    }));
    if (values.json)
      process.stdout.write(`${JSON.stringify({ frame: r.seq, timestamp: r.timestampMs, detections })}\n`);
    else {
      const events = r.events.length ? `, events: ${r.events.map((e) => e.rule).join(", ")}` : "";
      const t = (r.timestampMs / 1000).toFixed(2);
      process.stdout.write(
        `frame ${r.seq} t=${t}s ${detections.length} detections, ${r.inferenceMs.toFixed(1)} ms${events}\n`,
      );
    }
    if (processed >= maxFrames) source.stop();
  };
  const fail = (err: unknown) => {
    failure = err;
    source.stop();
  };
  // A file waits for the model (it never piles frames up in memory); a live stream does not wait: its newest
  // frame replaces one still waiting, as in the worker.
  const live = !isFileSource(values.source);
  const scheduler = schedulerForModel(detector.maxBatch);
  const source: FfmpegSource = new FfmpegSource(
    {
      url: values.source,
      shape: detector.shape,
      ...(values.fps ? { fps: Number(values.fps) } : {}),
      stallTimeoutMs: 10_000,
      maxFailures: 3,
    },
    {
      frame: (frame: Frame) => {
        if (live) return scheduler.submit("detect", { run: () => handle(frame).catch(fail), dropped: () => undefined });
        // A file waits for the model: two frames in flight (one running, one queued at the model thread), one
        // decoded and waiting, and ffmpeg paused until a slot frees. Decoding overlaps inference, memory stays flat.
        scheduler.submit("detect", {
          run: () => {
            source.setPaused(false);
            return handle(frame).catch(fail);
          },
          dropped: () => fail(new Error("internal: a file frame was dropped")),
        });
        if (scheduler.pending("detect")) source.setPaused(true);
      },
    },
  );
  if (!values.json)
    process.stderr.write(
      `model: ${detector.head} ${detector.shape.width}×${detector.shape.height} on ${detector.provider}; source: ${redact(values.source)}\n`,
    );
  source.start();
  await source.done;
  await scheduler.idle();
  if (failure) throw failure;
  if (processed === 0 && source.stats.lastError)
    throw new Error(`source ${redact(values.source)}: ${source.stats.lastError}`);
  return 0;
}

const round = (v: number, digits: number) => Math.round(v * 10 ** digits) / 10 ** digits;
