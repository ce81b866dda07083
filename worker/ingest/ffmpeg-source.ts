// One camera's frames: ffmpeg (via fluent-ffmpeg) decodes the stream, samples it at the camera's rate and
// letterboxes it to the model's input shape, so JS receives ready-sized RGB. A watchdog kills ffmpeg when
// no frame arrives for stallTimeoutMs and reconnects with capped exponential backoff and jitter (Frigate
// waits 20 s; we default to 5 s).
import type { ChildProcess } from "node:child_process";
import { setPriority } from "node:os";
import type { PassThrough } from "node:stream";
import ffmpeg, { type FfmpegCommand } from "fluent-ffmpeg";
import type { InputShape } from "../infer/letterbox.ts";
import type { ConnectGate } from "./connect-gate.ts";
import { type FrameClock, liveFrameTime } from "./frame-clock.ts";
import {
  type DecodeMode,
  decodeModeFor,
  gopSeconds,
  keyframeSampling,
  pushKeyTime,
  showinfoTime,
} from "./keyframe-decode.ts";
import {
  type Credentials,
  classifyFfmpegError,
  filePath,
  isFileSource,
  redact,
  withCredentials,
} from "./source-url.ts";

/** How much of a live stream ffmpeg reads before decoding starts (µs). */
const ANALYZE_US = 500_000;
/** The first frame of a connection may take this many stall timeouts. */
const FIRST_FRAME_FACTOR = 2;
/** Recycled frame buffers kept per source: a camera has at most two frames at the model and one waiting. */
const SPARE_FRAMES = 4;

export type SourceOptions = {
  url: string;
  credentials?: Credentials;
  transport?: "tcp" | "udp";
  hwaccel?: "none" | "cuda" | "vaapi" | "qsv";
  /** Frames per second to sample; every frame when omitted. */
  fps?: number;
  /** The model's input; frames arrive letterboxed to width×height RGB. */
  shape: InputShape;
  stallTimeoutMs?: number;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Read a file at its own pace and loop it, as a camera would (single-host demos). */
  realtime?: boolean;
  loop?: boolean;
  /** Give up after this many failed connections in a row (a one-off run); cameras retry for ever. */
  maxFailures?: number;
  ffmpegPath?: string;
  /**
   * Decode only keyframes when sampling needs no more (keyframe-decode.ts): live streams sampled at `fps` only.
   * On by default.
   */
  keyframeOnly?: boolean;
  /** ffmpeg's decoder threads (its -threads) for a live stream; 0 leaves ffmpeg's own choice. */
  decoderThreads?: number;
  /** The ffmpeg child's niceness (0 leaves it as the worker's), so the model's threads win the cores over decoders. */
  nice?: number;
  /** Shared by a worker's sources: how many may be connecting at once (connect-gate.ts); unlimited without. */
  connectGate?: ConnectGate;
};

export type Frame = {
  /** Letterboxed RGB, the model's width×height×3. */
  data: Buffer;
  /** Source frame size, for mapping boxes back. */
  width: number;
  height: number;
  timestampMs: number;
  seq: number;
};

export type SourceState = "connecting" | "streaming" | "stalled" | "backoff" | "ended" | "stopped";

export type SourceStats = {
  frames: number;
  reconnects: number;
  lastFrameAt: number;
  state: SourceState;
  lastError?: string;
  /** The stream's keyframe interval (s), once measured; kept across reconnects. */
  gopS?: number;
  /** How this connection decodes: every frame, or keyframes only. */
  decode: DecodeMode;
  /** Reconnects made only to change the decode mode (not counted in reconnects). */
  decodeSwitches: number;
};

export type SourceHandlers = {
  frame: (f: Frame) => void;
  state?: (s: SourceState, detail?: string) => void;
};

export class FfmpegSource {
  readonly stats: SourceStats = {
    frames: 0,
    reconnects: 0,
    lastFrameAt: 0,
    state: "connecting",
    decode: "all",
    decodeSwitches: 0,
  };
  private readonly opts: Required<Omit<SourceOptions, "credentials" | "ffmpegPath" | "connectGate">> &
    Pick<SourceOptions, "credentials" | "ffmpegPath" | "connectGate">;
  private readonly handlers: SourceHandlers;
  /** The current connection's command; its child exists only once fluent-ffmpeg has spawned it (see connect). */
  private cmd: FfmpegCommand | undefined;
  private proc: ChildProcess | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  private size = { width: 0, height: 0 };
  private sourceFps = 0;
  /** Wall clock and frame count at this connection's first frame. */
  private epoch: FrameClock | undefined;
  private stderrTail = "";
  /** This connection's keyframe times (media seconds), from the showinfo branch of its filter graph. */
  private keyTimes: number[] = [];
  /** Frames per second this connection delivers: `fps`, or what keyframes-only sampling gives. */
  private sampleRate = 0;
  private ended: (() => void) | undefined;
  private out: PassThrough | undefined;
  private paused = false;
  /** This source's connect slot (opts.connectGate), held from spawning ffmpeg to the connection's first frame. */
  private slot: (() => void) | undefined;
  /** Counts connection attempts, so a slot granted to one that was superseded (stop, start) goes back. */
  private attempt = 0;
  /** Frame buffers the consumer handed back (recycle), filled again before new ones are allocated. */
  private spare: Buffer[] = [];
  /** One frame's bytes: letterboxed RGB at the model's shape. */
  private readonly frameBytes: number;
  readonly done: Promise<void>;

  constructor(opts: SourceOptions, handlers: SourceHandlers) {
    this.opts = {
      fps: 0,
      transport: "tcp",
      hwaccel: "none",
      stallTimeoutMs: 5000,
      backoffMinMs: 500,
      backoffMaxMs: 30_000,
      realtime: false,
      loop: false,
      maxFailures: Number.POSITIVE_INFINITY,
      keyframeOnly: true,
      decoderThreads: 1,
      nice: 0,
      ...opts,
    };
    this.handlers = handlers;
    this.frameBytes = this.opts.shape.width * this.opts.shape.height * 3;
    this.done = new Promise((r) => {
      this.ended = r;
    });
  }

  /** Where the operator and logs may see the URL: never with its credentials. */
  get safeUrl(): string {
    return redact(this.opts.url);
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.freeSlot();
    clearTimeout(this.retry);
    clearTimeout(this.watchdog);
    this.dropConnection();
    this.setState("stopped");
    this.ended?.();
  }

  private setState(s: SourceState, detail?: string): void {
    this.stats.state = s;
    this.handlers.state?.(s, detail);
  }

  /** Spawns ffmpeg once a connect slot is free (at once without a gate, or while this source holds one). */
  private connect(): void {
    if (this.stopped) return;
    const gate = this.opts.connectGate;
    if (!gate || this.slot) {
      this.spawn();
      return;
    }
    const attempt = ++this.attempt;
    clearTimeout(this.watchdog); // waiting for a slot is not a stall
    void gate.acquire().then((release) => {
      if (this.stopped || attempt !== this.attempt) return release();
      this.slot = release;
      this.spawn();
    });
  }

  private freeSlot(): void {
    this.slot?.();
    this.slot = undefined;
  }

  /**
   * Ends the current connection and forgets it: its child's late "error" or "end" then belongs to no connection
   * (closed() ignores it). Taken for the failure of a source started again, it scheduled a second connection beside
   * the one waiting at the gate: two ffmpegs for one camera. A child not spawned yet is killed on its "start" event
   * instead, as it is no longer this.cmd.
   */
  private dropConnection(): void {
    this.proc?.kill("SIGKILL");
    this.cmd = undefined;
    this.proc = undefined;
  }

  private spawn(): void {
    this.dropConnection(); // one child per source: a running one is replaced, not left decoding beside the new one
    const { shape, fps } = this.opts;
    const file = isFileSource(this.opts.url);
    const input = file ? filePath(this.opts.url) : withCredentials(this.opts.url, this.opts.credentials);
    const secrets = this.opts.credentials ? [this.opts.credentials.password, this.opts.credentials.username] : [];
    const inputOptions = ["-nostdin", "-fflags", "+discardcorrupt"];
    if (this.opts.url.startsWith("rtsp"))
      inputOptions.push("-rtsp_transport", this.opts.transport, "-timeout", String(this.opts.stallTimeoutMs * 1000));
    // A stream's codec, size and rate are known from its first half second (H.264's SPS comes with the SDP or the
    // first keyframe); ffmpeg's default reads 5 s or 5 MB first. Measured on the test RTSP server (vtest.avi as
    // H.264, fps=1 sampling): connect to first frame 2.9 s by default, 1.0 s with this.
    if (!file) inputOptions.push("-analyzeduration", String(ANALYZE_US));
    if (this.opts.hwaccel !== "none") inputOptions.push("-hwaccel", this.opts.hwaccel);
    if (file && this.opts.realtime) inputOptions.push("-re");
    if (file && this.opts.loop) inputOptions.push("-stream_loop", "-1");
    // Keyframe detection and keyframe-only decoding are for live streams sampled below their frame rate: a file
    // would restart from its beginning when the decode mode changes.
    const watchKeys = !file && fps > 0 && this.opts.keyframeOnly;
    const mode = watchKeys ? decodeModeFor(this.stats.gopS, fps) : "all";
    this.stats.decode = mode;
    this.keyTimes = [];
    // Keyframes only, each decoded frame is an I-frame that no later decoded frame refers to, so its deblocking
    // filter changes only the pixels the model sees, and not a reference that errors would drift from. Measured
    // on the 1080p fixture (AMD EPYC): 2.3 ms of a keyframe's 26 ms saved, with the same boxes on 80 keyframes
    // (455 of 455 matched at IoU 0.5, mean IoU 0.994). Every-frame decoding keeps the filter.
    if (mode === "keyframes") inputOptions.push("-skip_frame", "nokey", "-skip_loop_filter", "all");
    // Keyframes only: take the keyframe nearest each sample time as it comes (keyframeSampling), stamped at the
    // rate that gives. Else ffmpeg's fps filter.
    const keys = mode === "keyframes" ? keyframeSampling(this.stats.gopS ?? 1 / fps, fps) : undefined;
    this.sampleRate = keys ? keys.rate : fps;
    const sample = keys
      ? `select='isnan(prev_selected_t)+gte(t-prev_selected_t,${keys.minGapS.toFixed(3)})'`
      : `fps=${fps}`;
    // Live streams only: a file is read as fast as it decodes, where frame threads do help.
    if (!file && this.opts.decoderThreads > 0) inputOptions.push("-threads", String(this.opts.decoderThreads));
    const frameBytes = this.frameBytes;
    this.epoch = undefined;
    let pending = this.frameBuffer();
    let filled = 0;
    this.stderrTail = "";
    this.setState("connecting");

    const cmd = ffmpeg(input)
      .inputOptions(inputOptions)
      .noAudio()
      // fps first, so only sampled frames are scaled; then fit (bilinear, as Ultralytics' letterbox resizes, and
      // a third cheaper than ffmpeg's default bicubic) and pad with Ultralytics' grey (114). The fit stays in
      // 4:2:0 YUV and the RGB conversion runs after it at the small size, unscaled: swscale's SIMD yuv→rgb path,
      // where scaling and converting in one step take its generic one. Measured on 1080p keyframes at 640×384:
      // 1.6 ms less a frame (29.7 → 28.1 ms with decoding), the same boxes (455 of 455, mean IoU 0.992).
      .videoFilters([
        // A side branch sees the keyframes only (select=key) and logs their times (showinfo, once per GOP, no
        // checksums); the main branch samples as before.
        ...(watchKeys ? [`split[main][keys];[keys]select=key,showinfo=checksum=0,nullsink;[main]${sample}`] : []),
        ...(fps > 0 && !watchKeys ? [`fps=${fps}`] : []),
        `scale=${shape.width}:${shape.height}:force_original_aspect_ratio=decrease:flags=bilinear`,
        "format=yuv420p",
        "format=rgb24",
        `pad=${shape.width}:${shape.height}:(ow-iw)/2:(oh-ih)/2:color=0x727272`,
      ])
      // A select (keyframes only) keeps the stream's 25 fps as the output's rate, and ffmpeg would repeat each
      // frame taken to fill it: pass the frames through as they are.
      .outputOptions(["-pix_fmt", "rgb24", "-f", "rawvideo", "-nostats", ...(keys ? ["-fps_mode", "passthrough"] : [])])
      .on("codecData", (data: { video_details?: string[] }) => {
        const details = (data.video_details ?? []).join(" ");
        const m = details.match(/\b(\d{2,5})x(\d{2,5})\b/);
        if (m) this.size = { width: Number(m[1]), height: Number(m[2]) };
        const rate = details.match(/\b(\d+(?:\.\d+)?) (?:fps|tbr)\b/);
        if (rate) this.sourceFps = Number(rate[1]);
      })
      .on("stderr", (line: string) => {
        if (line.includes("showinfo")) {
          const t = showinfoTime(line);
          if (t !== undefined) this.keyframe(cmd, t);
          return; // not in the tail: its lines would push out the errors that classify a failure
        }
        this.stderrTail = `${this.stderrTail}\n${redact(line, secrets)}`.slice(-2000);
      })
      .on("error", () => this.closed(cmd, file, true))
      .on("end", () => this.closed(cmd, file, false));
    if (this.opts.ffmpegPath) cmd.setFfmpegPath(this.opts.ffmpegPath);
    // With no destination, pipe() returns the PassThrough carrying ffmpeg's stdout.
    const out = cmd.pipe() as PassThrough;
    this.out = out;
    if (this.paused) out.pause();
    // fluent-ffmpeg spawns the child asynchronously, after checking ffmpeg's capabilities (the first time it
    // runs ffmpeg -formats, -codecs, -encoders: measured 81 orphans out of ~150 streams started and stopped in a
    // tight loop), and exposes it only through its untyped ffmpegProc field, set just before "start". A source
    // stopped, or a connection replaced, in that window must still end the child, or it decodes forever.
    this.cmd = cmd;
    cmd.on("start", () => {
      const proc = (cmd as unknown as { ffmpegProc?: ChildProcess }).ffmpegProc;
      if (this.stopped || this.cmd !== cmd) return void proc?.kill("SIGKILL");
      this.proc = proc;
      if (proc?.pid && this.opts.nice)
        try {
          setPriority(proc.pid, this.opts.nice);
        } catch {
          // not allowed here (a container without the capability to lower it back is fine: raising needs none)
        }
    });
    this.armWatchdog();
    out.on("data", (chunk: Buffer) => {
      // Output still in the pipe after stop() (or from a replaced connection) is no frame of this camera's: it
      // would re-arm the watchdog and reach the pipeline.
      if (this.stopped || this.cmd !== cmd) return;
      let off = 0;
      while (off < chunk.length) {
        const n = Math.min(frameBytes - filled, chunk.length - off);
        chunk.copy(pending, filled, off, off + n);
        filled += n;
        off += n;
        if (filled === frameBytes) {
          this.emitFrame(pending, file);
          pending = this.frameBuffer();
          filled = 0;
        }
      }
    });
    out.on("error", () => undefined);
  }

  /** A keyframe at media time `t` on connection `cmd`: once the GOP is known, decode the way it calls for. */
  private keyframe(cmd: FfmpegCommand, t: number): void {
    if (this.stopped || cmd !== this.cmd) return;
    this.keyTimes = pushKeyTime(this.keyTimes, t);
    const gop = gopSeconds(this.keyTimes);
    if (gop === undefined) return;
    this.stats.gopS = gop;
    if (decodeModeFor(gop, this.opts.fps) === this.stats.decode) return;
    // ffmpeg cannot change its decoder's skip_frame while running: a new connection, at once, without backoff.
    // Measured (RTSP, 1080p): about a second without frames, once per camera start or GOP change. Not through the
    // connect gate: the stream is up, and queued behind cameras still connecting it would go without frames for
    // as long as they take (8 s and a stall measured, 24 cameras on 2 cores).
    this.stats.decodeSwitches++;
    this.spawn();
  }

  private emitFrame(data: Buffer, file: boolean): void {
    const seq = this.stats.frames++;
    this.stats.lastFrameAt = Date.now();
    if (this.slot) this.freeSlot();
    if (this.stats.state !== "streaming") this.setState("streaming");
    this.failures = 0;
    this.armWatchdog();
    // Files: media time (they decode faster than real time). Live streams sampled by the fps filter: a steady
    // clock never ahead of arrival (frame-clock.ts). Unsampled live streams: arrival time.
    const rate = this.sampleRate || this.sourceFps || 25;
    let timestampMs = this.stats.lastFrameAt;
    if (file && !this.opts.realtime) timestampMs = Math.round((seq * 1000) / rate);
    else if (this.opts.fps > 0) {
      const t = liveFrameTime(this.epoch, seq, this.stats.lastFrameAt, rate);
      this.epoch = t.clock;
      timestampMs = t.timestampMs;
    }
    this.handlers.frame({ data, width: this.size.width, height: this.size.height, timestampMs, seq });
  }

  /**
   * Hands a frame's buffer back once nothing holds it any more: the next frame is decoded into it, instead of into
   * a new one. A frame not handed back is simply garbage collected. Each new 1.2 MB frame counted against V8's heap
   * limit and brought its next full GC closer (worker/heap-growth.ts): recycled at 1 camera, paired on an AMD EPYC
   * host, V8's helper threads went 4.2 → 2.7 % of a core and the main thread 3.8 → 3.2 %.
   */
  recycle(data: Buffer): void {
    if (data.length !== this.frameBytes || this.spare.length >= SPARE_FRAMES || this.spare.includes(data)) return;
    this.spare.push(data);
  }

  private frameBuffer(): Buffer {
    return this.spare.pop() ?? Buffer.allocUnsafe(this.frameBytes);
  }

  /**
   * Back-pressure for files: a file decodes faster than inference, so the consumer pauses reading instead of
   * buffering frames. Live streams are never paused (the consumer drops stale frames instead).
   */
  setPaused(paused: boolean): void {
    if (paused === this.paused) return;
    this.paused = paused;
    if (paused) {
      clearTimeout(this.watchdog);
      this.out?.pause();
    } else {
      this.out?.resume();
      this.armWatchdog();
    }
  }

  private armWatchdog(): void {
    clearTimeout(this.watchdog);
    if (this.paused) return;
    // A connection's first frame gets twice as long: opening the session, probing the stream and sampling its first
    // frame took 2.0-2.3 s alone and up to 5.5 s on a busy node (the fleet e2e, as a camera moved in), where a 5 s
    // allowance killed working connections and their reconnects cost 2.5-3.4 s more.
    const ms =
      this.stats.state === "connecting" ? FIRST_FRAME_FACTOR * this.opts.stallTimeoutMs : this.opts.stallTimeoutMs;
    this.watchdog = setTimeout(() => {
      this.stats.lastError = `no frame for ${ms} ms`;
      this.setState("stalled", this.stats.lastError);
      this.proc?.kill("SIGKILL"); // "error" follows and schedules the reconnect
    }, ms);
    this.watchdog.unref();
  }

  private closed(cmd: FfmpegCommand, file: boolean, failed: boolean): void {
    if (cmd !== this.cmd) return; // a replaced connection's child, killed on its start: nothing to retry
    this.freeSlot(); // a failing camera waits out its backoff without holding up the others
    clearTimeout(this.watchdog);
    this.proc = undefined;
    if (this.stopped) return;
    // A keyframes-only connection that ended before its GOP was measured again says nothing about the GOP now
    // (a camera reconfigured to a long GOP stalls here): the next one decodes every frame until it knows.
    if (this.stats.decode === "keyframes" && gopSeconds(this.keyTimes) === undefined) this.stats.gopS = undefined;
    if (failed && this.stats.state !== "stalled") this.stats.lastError = classifyFfmpegError(this.stderrTail);
    // A file that ended, or that cannot be read at all, will not get better by retrying.
    if (file && (!failed || this.stats.frames === 0) && !this.opts.loop) {
      this.setState("ended", failed ? this.stats.lastError : undefined);
      this.ended?.();
      return;
    }
    if (this.failures + 1 >= this.opts.maxFailures) {
      this.setState("ended", this.stats.lastError);
      this.ended?.();
      return;
    }
    const delay = Math.min(this.opts.backoffMaxMs, this.opts.backoffMinMs * 2 ** this.failures++);
    const jittered = delay * (0.8 + Math.random() * 0.4);
    this.setState("backoff", this.stats.lastError);
    this.retry = setTimeout(() => {
      this.stats.reconnects++;
      this.connect();
    }, jittered);
  }

  /** The last ffmpeg messages, credentials removed. */
  lastStderr(): string {
    return this.stderrTail;
  }
}
