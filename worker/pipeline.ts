// The worker's cameras on one model: per camera an ffmpeg source, the shared fair inference scheduler, the
// camera processor (gate → model → tracker → rules) and the bus. A failing camera never affects another.
import type { Logger } from "pino";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { CameraDetectionSpec } from "../operator/api/camera-detection.ts";
import type { AlarmStage } from "./alarms.ts";
import type { AssessmentStage } from "./assessment/stage.ts";
import { createCameraProcessor, type FrameResult } from "./camera.ts";
import { emptyDetections } from "./detections.ts";
import { schedulerForModel } from "./infer/scheduler.ts";
import type { Detector } from "./infer/session.ts";
import { createConnectGate } from "./ingest/connect-gate.ts";
import { FfmpegSource, type Frame, type SourceOptions, type SourceStats } from "./ingest/ffmpeg-source.ts";
import { type Credentials, redact } from "./ingest/source-url.ts";
import { renderAnnotated } from "./publish/annotate.ts";
import { type EventMessage, MESSAGE_VERSION, type StatsMessage } from "./publish/messages.ts";
import type { Bus } from "./publish/redis-bus.ts";
import type { RuleEvent } from "./rules/engine.ts";

/** `id` is the camera id, `<namespace>/<name>` (publish/camera-id.ts): on the bus, in metrics and in event ids. */
export type CameraConfig = { id: string; spec: CameraDetectionSpec; credentials?: Credentials };

export type PipelineOptions = {
  detector: Detector;
  bus: Bus;
  registry: Registry;
  log: Logger;
  stallTimeoutMs?: number;
  /** Largest frame rate of annotated video per camera, and only while someone watches. */
  videoFps?: number;
  /** File sources play in real time and loop, as cameras (single-host demos, tests). */
  realtimeFiles?: boolean;
  /** How many streams may be connecting at once (ingest/connect-gate.ts); unlimited when absent or 0. */
  connectLimit?: number;
  /** The decoders' settings (SourceOptions); the source's defaults where absent. */
  decode?: Pick<SourceOptions, "keyframeOnly" | "decoderThreads" | "nice">;
  /** Each camera's stream stats and processed fps, once a second (the Kubernetes health report). */
  onStats?: (cameraId: string, stats: SourceStats, fps: number) => void;
  /** Turns events of cameras with spec.alarm into alarms (worker/alarms.ts); absent, none are raised. */
  alarms?: AlarmStage;
  /** Turns events (and periodic samples) of cameras with spec.assessment into tasks (worker/assessment/); absent, none. */
  assessments?: AssessmentStage;
};

type CameraRuntime = {
  config: CameraConfig;
  processor: ReturnType<typeof createCameraProcessor>;
  source: FfmpegSource;
  window: { frames: number; inferences: number; inferenceMs: number; batched: number; since: number };
  last?: FrameResult;
  lastVideoAt: number;
  /** When this camera was (re)started here: its stream's age until the first frame arrives. */
  addedAt: number;
  statsTimer: NodeJS.Timeout;
  error?: string;
};

export function createPipeline(opts: PipelineOptions) {
  const { detector, bus, registry, log } = opts;
  const scheduler = schedulerForModel(detector.maxBatch, detector.instances);
  const cameras = new Map<string, CameraRuntime>();
  const connectGate = opts.connectLimit ? createConnectGate(opts.connectLimit) : undefined;
  const registers = [registry];
  const frames = new Counter({ name: "vigil_frames_total", help: "Frames decoded", labelNames: ["camera"], registers });
  const inferred = new Counter({
    name: "vigil_inferences_total",
    help: "Frames run through the model",
    labelNames: ["camera"],
    registers,
  });
  const skipped = new Counter({
    name: "vigil_frames_skipped_total",
    help: "Frames the motion gate skipped",
    labelNames: ["camera"],
    registers,
  });
  const droppedFrames = new Counter({
    name: "vigil_frames_dropped_total",
    help: "Frames replaced by a newer one before inference",
    labelNames: ["camera"],
    registers,
  });
  const reconnects = new Gauge({
    name: "vigil_stream_reconnects",
    help: "Stream reconnects",
    labelNames: ["camera"],
    registers,
  });
  const events = new Counter({
    name: "vigil_events_total",
    help: "Rule events",
    labelNames: ["camera", "rule"],
    registers,
  });
  const latency = new Histogram({
    name: "vigil_inference_seconds",
    help: "Time of the model run each frame was part of (a batch's run counts for each of its frames)",
    buckets: [0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5],
    registers,
  });
  // Read at scrape time (no per-frame cost) for the cameras this worker serves now: a camera moved away leaves no
  // stale series behind, so "no frame for N s" (the chart's VigilStreamStalled) is about cameras still expected here.
  new Gauge({
    name: "vigil_stream_last_frame_timestamp_seconds",
    help: "Unix time of the camera's last decoded frame (of its start on this worker, before the first frame)",
    labelNames: ["camera"],
    registers,
    collect() {
      this.reset();
      for (const [camera, rt] of cameras) this.set({ camera }, (rt.source.stats.lastFrameAt || rt.addedAt) / 1000);
    },
  });
  const batchSize = new Histogram({
    name: "vigil_inference_batch_size",
    help: "Frames per model run, observed per frame (cameras batched together)",
    buckets: [1, 2, 4, 8, 16, 32],
    registers,
  });

  function publishStats(rt: CameraRuntime): void {
    const now = Date.now();
    const w = rt.window;
    const seconds = Math.max(0.001, (now - w.since) / 1000);
    const last = rt.last;
    const perClass: Record<string, number> = {};
    if (last)
      for (let i = 0; i < last.detections.length; i++) {
        const name = detector.classNames[last.detections.classId[i] as number] ?? "unknown";
        perClass[name] = (perClass[name] ?? 0) + 1;
      }
    const model = detector.health?.();
    const msg: StatsMessage = {
      v: MESSAGE_VERSION,
      type: "stats",
      camera_id: rt.config.id,
      timestamp: new Date(now).toISOString(),
      data: {
        ...perClass,
        fps: Math.round((w.frames / seconds) * 100) / 100,
        persons: perClass.person ?? 0,
        inference_ms: w.inferences ? Math.round((w.inferenceMs / w.inferences) * 100) / 100 : 0,
        skipped_frames: rt.processor.gate?.stats.skipped ?? 0,
        reconnects: rt.source.stats.reconnects,
        provider: detector.provider,
        ...(w.inferences ? { batch_size: Math.round((w.batched / w.inferences) * 100) / 100 } : {}),
        frames: rt.source.stats.frames,
        last_frame_age_ms: rt.source.stats.lastFrameAt ? now - rt.source.stats.lastFrameAt : null,
        stream: rt.source.stats.state,
        ...(rt.source.stats.state !== "streaming" && rt.source.stats.lastError
          ? { error: rt.source.stats.lastError }
          : {}),
        ...(model && !model.ok ? { model_error: model.reason } : {}),
      },
    };
    bus.publishStats(msg);
    opts.onStats?.(rt.config.id, rt.source.stats, msg.data.fps);
    rt.window = { frames: 0, inferences: 0, inferenceMs: 0, batched: 0, since: now };
  }

  /**
   * `drawn`: the detections to draw on an alarm's snapshot, this frame's or, on a still frame, the last ones (nothing
   * moved since, so their boxes still fit). True when the frame went to a snapshot or an assessment, which may read
   * its buffer later: it must not be recycled then.
   */
  function publishEvents(
    rt: CameraRuntime,
    list: RuleEvent[],
    frame: Frame,
    drawn: Pick<FrameResult, "detections" | "width" | "height"> | undefined,
  ): boolean {
    const assessments = rt.config.spec.assessment ? opts.assessments : undefined;
    if (list.length === 0 && !assessments) return false;
    const shown = drawn ?? { detections: emptyDetections(), width: frame.width, height: frame.height };
    // What a task's images and crops are cut from: the letterboxed frame, and the detections drawn on it.
    const image = { letterboxed: frame.data, shape: detector.shape, width: shown.width, height: shown.height };
    const view = { ...shown, classNames: detector.classNames };
    const render = () =>
      renderAnnotated(frame.data, detector.shape, shown, rt.config.spec.zones, detector.classNames, SNAPSHOT_QUALITY);
    // The snapshot and clip an alarm raised from an assessment's answer will name (worker/alarms.ts evidence).
    const alarmStage = opts.alarms;
    const keep = alarmStage ? (id: string, ms: number) => alarmStage.evidence(rt.config, id, ms, render) : undefined;
    for (const e of list) {
      events.inc({ camera: rt.config.id, rule: e.rule });
      const msg: EventMessage = {
        v: MESSAGE_VERSION,
        type: "event",
        id: `${rt.config.id}:${e.id}`,
        camera_id: rt.config.id,
        timestamp: new Date(e.timestampMs).toISOString(),
        rule: e.rule,
        kind: e.kind,
        severity: e.severity,
        track_id: e.trackId,
        zone: e.zone ?? null,
        box: e.box ? [e.box[0], e.box[1], e.box[2], e.box[3]] : null,
        snapshot_key: null,
        detail: e.detail,
      };
      const alarms = opts.alarms;
      if (!alarms?.wants(rt.config.spec, e)) {
        bus.publishEvent(msg);
        assessments?.event(rt.config, msg.id, e, null, image, view, keep);
        continue;
      }
      // An alarm: the bus event waits for its snapshot (an encode and a write, ~10–30 ms) so both carry its key.
      void alarms.raise(rt.config, msg.id, e, render).then((key) => {
        bus.publishEvent({ ...msg, snapshot_key: key });
        assessments?.event(rt.config, msg.id, e, key, image, view);
      });
    }
    if (drawn) assessments?.frame(rt.config, frame.timestampMs, image, view, keep);
    return true;
  }

  function add(config: CameraConfig): void {
    // Not remove(): the clip recorder keeps running (and its buffer and pending clips stay) across an update
    // that leaves the camera's source alone.
    stopCamera(config.id);
    const id = config.id;
    let processor: ReturnType<typeof createCameraProcessor>;
    try {
      processor = createCameraProcessor(config.spec, detector);
    } catch (err) {
      log.error({ camera: id, err: (err as Error).message }, "camera config rejected");
      opts.alarms?.removeCamera(id);
      opts.assessments?.removeCamera(id);
      return;
    }
    const spec = config.spec;
    // Every series of the camera from its start, at 0: rate() and increase() then count its first frame and event
    // (a counter first seen at 1 has no earlier sample to rise from), and dashboards show 0 rather than nothing.
    for (const counter of [frames, inferred, skipped, droppedFrames]) counter.inc({ camera: id }, 0);
    for (const r of spec.rules) events.inc({ camera: id, rule: r.name }, 0);
    reconnects.set({ camera: id }, 0);
    const rt: CameraRuntime = {
      config,
      processor,
      window: { frames: 0, inferences: 0, inferenceMs: 0, batched: 0, since: Date.now() },
      lastVideoAt: 0,
      addedAt: Date.now(),
      statsTimer: setInterval(() => publishStats(rt), 1000),
      source: new FfmpegSource(
        {
          url: spec.source.url,
          ...(config.credentials ? { credentials: config.credentials } : {}),
          transport: spec.source.transport,
          hwaccel: spec.source.hwaccel,
          fps: spec.detection.targetFps,
          shape: detector.shape,
          stallTimeoutMs: opts.stallTimeoutMs ?? 5000,
          realtime: opts.realtimeFiles ?? false,
          loop: opts.realtimeFiles ?? false,
          ...opts.decode,
          ...(connectGate ? { connectGate } : {}),
        },
        {
          frame: (frame) => onFrame(rt, frame),
          state: (state, detail) => {
            reconnects.set({ camera: id }, rt.source.stats.reconnects);
            if (state !== "streaming") log.warn({ camera: id, state, detail }, "stream state");
            else log.info({ camera: id, source: redact(spec.source.url) }, "streaming");
          },
        },
      ),
    };
    rt.statsTimer.unref();
    cameras.set(id, rt);
    rt.source.start();
    opts.alarms?.addCamera(config);
    opts.assessments?.addCamera(config);
  }

  function onFrame(rt: CameraRuntime, frame: Frame): void {
    const id = rt.config.id;
    const processor = rt.processor;
    frames.inc({ camera: id });
    rt.window.frames++;
    if (!processor.wantsInference(frame)) {
      skipped.inc({ camera: id });
      if (!publishEvents(rt, processor.still(frame), frame, rt.last)) rt.source.recycle(frame.data);
      return;
    }
    // Nothing else holds the frame once its job is dropped or done, unless an event, an assessment or the video
    // took it: its buffer then goes back to the source for a later frame (ffmpeg-source.ts recycle).
    scheduler.submit(id, {
      dropped: () => {
        droppedFrames.inc({ camera: id });
        rt.source.recycle(frame.data);
      },
      run: async () => {
        if (cameras.get(id) !== rt) return; // removed, or replaced by an updated camera meanwhile
        let kept = false;
        try {
          const r = await processor.infer(frame);
          rt.last = r;
          rt.window.inferences++;
          rt.window.inferenceMs += r.inferenceMs;
          rt.window.batched += r.batch;
          inferred.inc({ camera: id });
          latency.observe(r.inferenceMs / 1000);
          batchSize.observe(r.batch);
          kept = publishEvents(rt, r.events, frame, r);
          kept = maybeVideo(rt, frame, r) || kept;
        } catch (err) {
          log.error({ camera: id, err: (err as Error).message }, "inference failed");
        } finally {
          if (!kept) rt.source.recycle(frame.data);
        }
      },
    });
  }

  /** True when the frame is being encoded for the video (its buffer read later). */
  function maybeVideo(rt: CameraRuntime, frame: Frame, r: FrameResult): boolean {
    const now = Date.now();
    if (now - rt.lastVideoAt < 1000 / (opts.videoFps ?? 5) || !bus.hasViewers(rt.config.id)) return false;
    rt.lastVideoAt = now;
    // Encoding runs off the detection path (libvips threads); a slow encode only delays this frame.
    renderAnnotated(frame.data, detector.shape, r, rt.config.spec.zones, detector.classNames)
      .then((jpeg) => bus.publishFrame(rt.config.id, jpeg))
      .catch((err) => log.warn({ camera: rt.config.id, err: (err as Error).message }, "frame annotation failed"));
    return true;
  }

  function stopCamera(id: string): void {
    const rt = cameras.get(id);
    if (!rt) return;
    cameras.delete(id);
    clearInterval(rt.statsTimer);
    rt.source.stop();
  }

  function remove(id: string): void {
    stopCamera(id);
    opts.alarms?.removeCamera(id);
    opts.assessments?.removeCamera(id);
  }

  return {
    add,
    remove,
    cameras: () => [...cameras.keys()],
    sourceStats: (id: string) => cameras.get(id)?.source.stats,
    scheduler,
    async stop() {
      for (const id of [...cameras.keys()]) remove(id);
      await scheduler.idle();
    },
  };
}
export type Pipeline = ReturnType<typeof createPipeline>;

/** Snapshots are kept and sent to people: a little better than live view's 70 (~48 KB at 640×480 on vtest.avi, measured). */
const SNAPSHOT_QUALITY = 80;
