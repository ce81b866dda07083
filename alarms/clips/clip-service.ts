// Replay clips on the worker: a recorder per camera with `spec.alarm` keeps a rolling buffer of segments, and a
// clip request waits until the post-roll is recorded, cuts [t − pre, t + post] from the buffer without
// re-encoding, checks it with ffprobe and puts it in the clip store; only then does it resolve. A clip that cannot
// be made (camera not recorded, window no longer in the buffer, a gap from a recorder restart, ffmpeg failed)
// rejects with a ClipError whose `result` names why; a short clip is never announced.
import { randomUUID } from "node:crypto";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { link, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "pino";
import { Counter, Histogram, type Registry } from "prom-client";
import type { Credentials } from "../../worker/ingest/source-url.ts";
import { parseCameraId } from "../../worker/publish/camera-id.ts";
import { cutClip } from "./cut.ts";
import { Recorder, type RecorderState, type RecordMode } from "./recorder.ts";
import { type ClipMeta, type ClipStore, clipMetaKey } from "./store.ts";
import {
  type ClipMargins,
  type ClipWindow,
  clipWindow,
  DEFAULT_MARGINS,
  newestStretch,
  planClip,
  shortenedPreRoll,
  type WallSegment,
} from "./window.ts";

export type ClipResult = "ok" | "not_recorded" | "invalid" | "gone" | "gap" | "timeout" | "failed" | "cancelled";

export class ClipError extends Error {
  /** Why no clip: the `result` label of vigil_alarm_clips_total. */
  readonly result: ClipResult;
  constructor(result: ClipResult, message: string) {
    super(message);
    this.name = "ClipError";
    this.result = result;
  }
}

export type ClipRequest = { key: string; cameraId: string; eventMs: number; preSeconds: number; postSeconds: number };
/**
 * A stored clip: where it starts on the wall clock, how long it is, and the pre-roll it holds (the one asked for,
 * or less for an alarm in the camera's first seconds: window.ts shortenedPreRoll).
 */
export type ClipMade = { startMs: number; durationS: number; preSeconds: number };

export type ClipServiceOptions = {
  store: ClipStore;
  scratchDir: string;
  log: Logger;
  registry: Registry;
  /** Segment length asked of ffmpeg (it cuts at the first keyframe after each multiple). Default 2. */
  segmentSeconds?: number;
  /** How much recording is kept: at least the longest pre-roll (120 s) plus a margin. Default 150. */
  bufferSeconds?: number;
  /** How far the cut window is widened at each end (window.ts explains the measured defaults). */
  margins?: ClipMargins;
  /** How long past the end of its post-roll a request waits for the segment that covers it. Default 60. */
  waitSeconds?: number;
  /** Cuts that run at once; the rest queue. Default 4. */
  maxConcurrentCuts?: number;
  ffmpegPath?: string;
  ffprobePath?: string;
  /** Recorder restart backoff, for tests. */
  backoffMinMs?: number;
};

export type CameraSource = {
  url: string;
  credentials?: Credentials;
  transport?: "tcp" | "udp";
  realtimeFile?: boolean;
};

export type RecorderStatus = {
  state: RecorderState;
  mode: RecordMode | undefined;
  pid: number | undefined;
  restarts: number;
  lastError: string | undefined;
  /** Finished segments in the buffer; the newest contiguous wall-clock span they cover (settled runs only). */
  segments: number;
  coveredFromMs: number | undefined;
  coveredToMs: number | undefined;
  /** The recorder's scratch directory (segments and lists). */
  dir: string;
};

export type ClipService = {
  addCamera(id: string, source: CameraSource): void;
  removeCamera(id: string): void;
  requestClip(req: ClipRequest): Promise<ClipMade>;
  stop(): Promise<void>;
  /** The camera's recorder, for health and tests; undefined when the camera is not recorded. */
  status(id: string): RecorderStatus | undefined;
};

type Pending = {
  req: ClipRequest;
  window: ClipWindow;
  /** The pre-roll the cut must hold: the request's, until the window is shortened to the recording's start. */
  preSeconds: number;
  deadlineMs: number;
  timer: NodeJS.Timeout | undefined;
  cutting: boolean;
  resolve: (v: ClipMade) => void;
  reject: (e: ClipError) => void;
};

type Camera = { id: string; key: string; recorder: Recorder; pending: Set<Pending> };

const metric = <T>(registry: Registry, name: string, make: () => T): T =>
  (registry.getSingleMetric(name) as T | undefined) ?? make();

/** The scratch root of this process; those of processes that are gone (a crash, kill -9) are removed. */
function scratchRoot(scratchDir: string): string {
  mkdirSync(scratchDir, { recursive: true });
  for (const name of readdirSync(scratchDir)) {
    const m = /^clips-(\d+)-[0-9a-f]+$/.exec(name);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ESRCH")
        rmSync(join(scratchDir, name), { recursive: true, force: true });
    }
  }
  const root = join(scratchDir, `clips-${process.pid}-${randomUUID().slice(0, 8)}`);
  mkdirSync(root, { recursive: true });
  return root;
}

export function createClipService(opts: ClipServiceOptions): ClipService {
  const segmentSeconds = opts.segmentSeconds ?? 2;
  const bufferSeconds = opts.bufferSeconds ?? 150;
  const margins = opts.margins ?? DEFAULT_MARGINS;
  const waitMs = (opts.waitSeconds ?? 60) * 1000;
  const maxCuts = opts.maxConcurrentCuts ?? 4;
  const { log, store } = opts;
  const root = scratchRoot(opts.scratchDir);
  const cutsDir = join(root, "cuts");

  const lag = metric(
    opts.registry,
    "vigil_alarm_clip_lag_seconds",
    () =>
      new Histogram({
        name: "vigil_alarm_clip_lag_seconds",
        help: "Time from the end of a clip's post-roll to the clip being in the store",
        buckets: [0.25, 0.5, 1, 2, 3, 4, 6, 10, 20, 60],
        registers: [opts.registry],
      }),
  );
  const shortPreRolls = metric(
    opts.registry,
    "vigil_alarm_clip_pre_roll_shortened_total",
    () =>
      new Counter({
        name: "vigil_alarm_clip_pre_roll_shortened_total",
        help: "Replay clips cut with less pre-roll than asked, since the camera's recording began after t − pre",
        registers: [opts.registry],
      }),
  );
  const clips = metric(
    opts.registry,
    "vigil_alarm_clips_total",
    () =>
      new Counter({
        name: "vigil_alarm_clips_total",
        help: "Replay clip requests by result (ok, not_recorded, invalid, gone, gap, timeout, failed, cancelled)",
        labelNames: ["result"],
        registers: [opts.registry],
      }),
  );
  const restarts = metric(
    opts.registry,
    "vigil_clip_recorder_restarts_total",
    () =>
      new Counter({
        name: "vigil_clip_recorder_restarts_total",
        help: "Restarts of a camera's clip recorder (ffmpeg died, stalled or could not connect)",
        labelNames: ["camera"],
        registers: [opts.registry],
      }),
  );

  const cameras = new Map<string, Camera>();
  const sources = new Map<string, string>();
  const stopping = new Set<Promise<void>>();
  const inFlight = new Set<Promise<void>>();
  const queue: (() => void)[] = [];
  let running = 0;
  let instance = 0;
  let stopped = false;

  const settle = (cam: Camera | undefined, p: Pending, err: ClipError | undefined, value?: ClipMade) => {
    cam?.pending.delete(p);
    clearTimeout(p.timer);
    clips.inc({ result: err ? err.result : "ok" });
    if (err) {
      log.warn({ camera: p.req.cameraId, key: p.req.key, result: err.result, reason: err.message }, "no replay clip");
      p.reject(err);
    } else if (value) p.resolve(value);
  };

  function evaluate(cam: Camera): void {
    if (!cam.pending.size) return;
    const segments = cam.recorder.wallSegments();
    const now = Date.now();
    for (const p of [...cam.pending]) {
      if (p.cutting) continue;
      let plan = planClip(segments, p.window);
      if (plan.kind === "gone") {
        // An alarm in the camera's first seconds: cut from where the recording began, with the pre-roll it has.
        const short = shortenedPreRoll(p.req, cam.recorder.recordingBeganMs(segments), margins);
        if (short) {
          plan = planClip(segments, short.window); // ready, or a gap when the recorder restarted since it began
          p.window = short.window;
          p.preSeconds = short.preSeconds;
        }
      }
      if (plan.kind === "ready") {
        p.cutting = true;
        clearTimeout(p.timer);
        schedule(() => cut(cam, p, plan.segments, plan.inS, plan.outS));
      } else if (plan.kind === "gone" || plan.kind === "gap")
        settle(cam, p, new ClipError(plan.kind, `clip ${p.req.key}: ${plan.reason}`));
      else if (cam.recorder.state === "ended")
        settle(
          cam,
          p,
          new ClipError("gone", `clip ${p.req.key}: the camera's file ended before the post-roll was recorded`),
        );
      else if (now >= p.deadlineMs) {
        const why = cam.recorder.lastError ? ` (recorder: ${cam.recorder.lastError})` : "";
        settle(
          cam,
          p,
          new ClipError(
            "timeout",
            `clip ${p.req.key}: ${plan.reason} after waiting ${waitMs / 1000} s past the post-roll${why}`,
          ),
        );
      }
    }
  }

  /** Runs a cut now or when one of the maxCuts slots frees. */
  function schedule(job: () => Promise<void>): void {
    const go = () => {
      running++;
      const done = job().finally(() => {
        running--;
        inFlight.delete(done);
        queue.shift()?.();
      });
      inFlight.add(done);
    };
    if (running < maxCuts) go();
    else queue.push(go);
  }

  async function cut(cam: Camera, p: Pending, segments: WallSegment[], inS: number, outS: number): Promise<void> {
    const { req } = p;
    if (!cam.pending.has(p)) return; // settled meanwhile
    if (stopped) return settle(cam, p, new ClipError("cancelled", `clip ${req.key}: the clip service is stopped`));
    const job = join(cutsDir, randomUUID());
    try {
      await mkdir(job, { recursive: true });
      // Hard links: the recorder may delete a segment from its buffer while it is being cut, and the link keeps
      // the file (same filesystem, no copy).
      const linked = [];
      for (const [i, s] of segments.entries()) {
        const path = join(job, `${i}.ts`);
        try {
          await link(s.path, path);
        } catch {
          throw new ClipError("gone", `clip ${req.key}: a segment left the buffer before it was cut`);
        }
        linked.push({ path, startS: s.startS, endS: s.endS });
      }
      const out = join(job, "clip.mp4");
      const r = await cutClip({
        segments: linked,
        inS,
        outS,
        outFile: out,
        minDurationS: p.preSeconds + req.postSeconds,
        ffmpegPath: opts.ffmpegPath,
        ffprobePath: opts.ffprobePath,
      }).catch((err: Error) => {
        throw new ClipError("failed", `clip ${req.key}: ${err.message}`);
      });
      const head = segments[0] as WallSegment;
      const startMs = Math.round(head.startMs + r.startOffsetS * 1000);
      const endMs = startMs + r.durationS * 1000;
      // In the recorder's wall clock, the clip must hold the whole requested window, not only be long enough.
      if (startMs > req.eventMs - p.preSeconds * 1000 || endMs < req.eventMs + req.postSeconds * 1000)
        throw new ClipError(
          "failed",
          `clip ${req.key}: the cut clip spans ${new Date(startMs).toISOString()} + ${r.durationS} s, not the whole window`,
        );
      // Its real start and length first, so whoever finds the clip finds them too (store.ts ClipMeta).
      const meta: ClipMeta = { start_ms: startMs, duration_s: r.durationS };
      await store.put(clipMetaKey(req.key), { bytes: Buffer.from(JSON.stringify(meta)) }, "application/json");
      await store.put(req.key, { file: out }, "video/mp4").catch((err: Error) => {
        throw new ClipError("failed", `clip ${req.key}: the clip store refused it: ${err.message}`);
      });
      lag.observe(Math.max(0, (Date.now() - (req.eventMs + req.postSeconds * 1000)) / 1000));
      const shortened = p.preSeconds < req.preSeconds;
      if (shortened) shortPreRolls.inc();
      log.info(
        {
          camera: req.cameraId,
          key: req.key,
          startMs,
          durationS: r.durationS,
          codec: r.codec,
          ...(shortened ? { preSeconds: p.preSeconds, askedPreSeconds: req.preSeconds } : {}),
        },
        shortened
          ? "replay clip stored, its pre-roll shortened: the recording began after t − pre"
          : "replay clip stored",
      );
      settle(cam, p, undefined, { startMs, durationS: r.durationS, preSeconds: p.preSeconds });
    } catch (err) {
      settle(
        cam,
        p,
        err instanceof ClipError ? err : new ClipError("failed", `clip ${req.key}: ${(err as Error).message}`),
      );
    } finally {
      await rm(job, { recursive: true, force: true });
    }
  }

  function dirName(id: string): string {
    const { namespace, name } = parseCameraId(id);
    // ns and name hold no '_' (DNS-1123), so ns_name is unambiguous; the counter keeps a camera added again
    // apart from the recorder still being removed.
    return `${namespace}_${name.slice(0, 150)}-${++instance}`;
  }

  function removeCamera(id: string): void {
    const cam = cameras.get(id);
    if (!cam) return;
    cameras.delete(id);
    sources.delete(id);
    for (const p of [...cam.pending])
      if (!p.cutting)
        settle(cam, p, new ClipError("cancelled", `clip ${p.req.key}: camera ${id} is no longer recorded`));
    const done = cam.recorder.stop().finally(() => stopping.delete(done));
    stopping.add(done);
  }

  async function request(req: ClipRequest): Promise<ClipMade> {
    const cam = cameras.get(req.cameraId);
    const fail = (result: ClipResult, message: string) => {
      clips.inc({ result });
      log.warn({ camera: req.cameraId, key: req.key, result, reason: message }, "no replay clip");
      return Promise.reject(new ClipError(result, message));
    };
    if (stopped) return fail("cancelled", `clip ${req.key}: the clip service is stopped`);
    if (!cam) return fail("not_recorded", `clip ${req.key}: camera ${req.cameraId} is not recorded`);
    const bad = [
      !Number.isFinite(req.eventMs) && "eventMs must be a finite number of milliseconds",
      !(req.preSeconds >= 0) && "preSeconds must be ≥ 0",
      !(req.postSeconds >= 0) && "postSeconds must be ≥ 0",
      !(req.preSeconds + req.postSeconds > 0) && "preSeconds + postSeconds must be > 0",
    ].find(Boolean);
    if (bad) return fail("invalid", `clip ${req.key}: ${bad}`);
    const window = clipWindow(req, margins);
    if (window.toMs - window.fromMs > (bufferSeconds - 2 * segmentSeconds) * 1000)
      return fail(
        "invalid",
        `clip ${req.key}: ${req.preSeconds} + ${req.postSeconds} s does not fit the ${bufferSeconds} s buffer`,
      );
    // The store refuses a malformed key now rather than after the post-roll (stat validates it).
    try {
      await store.stat(req.key);
    } catch (err) {
      return fail("invalid", `clip ${req.key}: ${(err as Error).message}`);
    }
    return new Promise((resolve, reject) => {
      const p: Pending = {
        req,
        window,
        preSeconds: req.preSeconds,
        deadlineMs: req.eventMs + req.postSeconds * 1000 + waitMs,
        timer: undefined,
        cutting: false,
        resolve,
        reject,
      };
      p.timer = setTimeout(() => evaluate(cam), Math.max(0, p.deadlineMs - Date.now()) + 10);
      p.timer.unref();
      cam.pending.add(p);
      evaluate(cam);
    });
  }

  const byKey = new Map<string, Promise<ClipMade>>();

  return {
    addCamera(id, source) {
      if (stopped) throw new Error("the clip service is stopped");
      const fingerprint = JSON.stringify([source.url, source.credentials, source.transport, source.realtimeFile]);
      if (sources.get(id) === fingerprint) return;
      removeCamera(id);
      const key = dirName(id);
      const recorder = new Recorder({
        id,
        dir: join(root, key),
        source: { ...source },
        segmentSeconds,
        bufferSeconds,
        log,
        ffmpegPath: opts.ffmpegPath,
        ffprobePath: opts.ffprobePath,
        ...(opts.backoffMinMs ? { backoffMinMs: opts.backoffMinMs } : {}),
        onChange: () => evaluate(cam),
        onRestart: () => restarts.inc({ camera: id }),
      });
      const cam: Camera = { id, key, recorder, pending: new Set() };
      cameras.set(id, cam);
      sources.set(id, fingerprint);
      cam.recorder.start();
    },

    removeCamera,

    requestClip(req) {
      // The same clip asked for again while the first request waits (a redelivered event): one cut, one answer.
      const same = byKey.get(req.key);
      if (same) return same;
      const answer = request(req);
      byKey.set(req.key, answer);
      const forget = () => {
        if (byKey.get(req.key) === answer) byKey.delete(req.key);
      };
      answer.then(forget, forget);
      return answer;
    },

    async stop() {
      stopped = true;
      for (const id of [...cameras.keys()]) removeCamera(id);
      await Promise.all([...inFlight]);
      await Promise.all([...stopping]);
      rmSync(root, { recursive: true, force: true });
    },

    status(id) {
      const cam = cameras.get(id);
      if (!cam) return undefined;
      const r = cam.recorder;
      const wall = r.wallSegments();
      const stretch = newestStretch(wall);
      return {
        state: r.state,
        mode: r.mode,
        pid: r.pid,
        restarts: r.restarts,
        lastError: r.lastError,
        segments: r.segments().length,
        coveredFromMs: stretch?.fromMs,
        coveredToMs: stretch?.toMs,
        dir: r.dir,
      };
    },
  };
}
