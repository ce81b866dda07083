// One camera's rolling buffer: an ffmpeg segment muxer writes the original stream as short MPEG-TS segments and a
// CSV list into a scratch directory; this class reads the list as it grows, places segments on the wall clock
// (window.ts), deletes those older than the buffer, and restarts ffmpeg with capped exponential backoff when it
// dies or stalls. Each ffmpeg run writes its own list and file names (r<run>.csv, r<run>-NNNNNN.ts), so a restart
// never truncates what the previous run recorded: `kill -9` loses only the segment that was open (measured: it is
// left at 0 bytes, never listed) and the time until the new run delivers.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import {
  closeSync,
  type FSWatcher,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readSync,
  rmSync,
  unlinkSync,
  watch,
} from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import {
  type Credentials,
  classifyFfmpegError,
  filePath,
  isFileSource,
  redact,
  withCredentials,
} from "../../worker/ingest/source-url.ts";
import { parseSegmentList } from "./segments.ts";
import { type RecordedSegment, toWall, trustedObservation, type WallSegment } from "./window.ts";

export type RecorderSource = {
  url: string;
  credentials?: Credentials;
  transport?: "tcp" | "udp";
  /** A file:// source played at real time and looped, as `vigil up` plays its demo files. */
  realtimeFile?: boolean;
};

export type RecorderOptions = {
  /** The camera id, for logs and metrics. */
  id: string;
  /** A directory of its own; created and emptied by the recorder, removed by stop(). */
  dir: string;
  source: RecorderSource;
  segmentSeconds: number;
  bufferSeconds: number;
  log: Logger;
  /** Called after each finished segment (and after a run ends), so waiting clip requests can look again. */
  onChange?: () => void;
  onRestart?: () => void;
  ffmpegPath?: string;
  ffprobePath?: string;
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** No new segment for this long: ffmpeg is killed and restarted (a stream that stalls without closing). */
  stallMs?: number;
};

/**
 * copy: the stream goes to the segments as it is (H.264 and HEVC, which MPEG-TS and MP4 both carry).
 * encode: anything else (vtest.avi is MS-MPEG4, many cameras offer MJPEG) is re-encoded cheaply: libx264
 * ultrafast, zerolatency (no lookahead, no B-frames, so the encoder adds no delay to the segment clock) and a
 * keyframe every second, so a clip starts at most 1 s early.
 */
export type RecordMode = "copy" | "encode";
const COPYABLE = new Set(["h264", "hevc"]);
/** Failed reads of a copied segment's codec before the run is ended and the camera asked instead. */
const VERIFY_TRIES = 3;

export type RecorderState = "starting" | "recording" | "backoff" | "ended" | "stopped";

type Run = {
  run: number;
  proc: ChildProcess;
  list: string;
  offset: number;
  rest: string;
  produced: number;
  lastObservedMs: number | undefined;
  stderr: string;
  stalled: boolean;
  /** Its first segment's codec is being read (an unverified copy run: see startRun). */
  verifying: boolean;
  verifyFailures: number;
  /** Killed to start again re-encoding: its stream cannot be copied (not a failure). */
  switching: boolean;
  closed: Promise<void>;
};

/** Capped exponential backoff with ±20 % jitter, so cameras that failed together do not retry together. */
export function backoffMs(failures: number, minMs: number, maxMs: number, random = Math.random): number {
  return Math.min(maxMs, minMs * 2 ** failures) * (0.8 + random() * 0.4);
}

export class Recorder {
  state: RecorderState = "starting";
  mode: RecordMode | undefined;
  /** Whether `mode` is known right for the stream (probed, or read from a copy run's first segment). */
  private modeVerified = false;
  /** Copy runs started before the codec was verified: their segments are not cut until it is. */
  private readonly unverifiedRuns = new Set<number>();
  lastError: string | undefined;
  restarts = 0;
  private readonly opts: Required<Omit<RecorderOptions, "onChange" | "onRestart" | "ffmpegPath" | "ffprobePath">> &
    RecorderOptions;
  private readonly secrets: string[];
  private readonly file: boolean;
  private segs: RecordedSegment[] = [];
  /** The first segment this recorder ever listed: where the camera's recording began. */
  private firstPath: string | undefined;
  private current: Run | undefined;
  private runNo = 0;
  private failures = 0;
  private stopped = false;
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private stall: NodeJS.Timeout | undefined;
  private readonly probes = new Set<ChildProcess>();

  constructor(opts: RecorderOptions) {
    this.opts = {
      backoffMinMs: 500,
      backoffMaxMs: 30_000,
      stallMs: Math.max(20_000, opts.segmentSeconds * 5000),
      ...opts,
    };
    const c = opts.source.credentials;
    this.secrets = c ? [c.password, c.username] : [];
    this.file = isFileSource(opts.source.url);
  }

  /** The URL for logs: credentials never appear. */
  get safeUrl(): string {
    return redact(this.opts.source.url, this.secrets);
  }

  get dir(): string {
    return this.opts.dir;
  }

  /** The running ffmpeg's pid (tests kill it). */
  get pid(): number | undefined {
    return this.current?.proc.pid;
  }

  start(): void {
    rmSync(this.opts.dir, { recursive: true, force: true }); // what a previous process left behind
    mkdirSync(this.opts.dir, { recursive: true });
    // inotify tells of each append to the list within a millisecond; the poll only backs it up (a dropped event).
    this.watcher = watch(this.opts.dir, (_event, name) => {
      if (this.current && name === `r${this.current.run}.csv`) this.readList(this.current);
    });
    this.watcher.on("error", () => undefined);
    this.poll = setInterval(() => {
      if (this.current) this.readList(this.current);
    }, 1000);
    this.poll.unref();
    void this.startRun();
  }

  /** Finished segments of every run still in the buffer, in the order they were listed. */
  segments(): readonly RecordedSegment[] {
    return this.segs;
  }

  /** Finished segments placed on the wall clock (those of runs whose clock has settled). */
  wallSegments(): WallSegment[] {
    // An unverified copy run's segments may hold a codec MP4 cannot carry: none is cut until its codec is read.
    const hidden = this.unverifiedRuns;
    return toWall(hidden.size ? this.segs.filter((s) => !hidden.has(s.run)) : this.segs);
  }

  /**
   * Where the camera's recording began on the wall clock, while the first segment it made is still in the buffer
   * and placed (among `wall`, this recorder's wallSegments()); undefined once it was pruned, or before it settles.
   */
  recordingBeganMs(wall: readonly WallSegment[]): number | undefined {
    return this.firstPath === undefined ? undefined : wall.find((s) => s.path === this.firstPath)?.startMs;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.state = "stopped";
    clearTimeout(this.retry);
    clearTimeout(this.stall);
    clearInterval(this.poll);
    this.watcher?.close();
    for (const p of this.probes) p.kill("SIGKILL");
    const run = this.current;
    if (run) {
      run.proc.kill("SIGKILL");
      await run.closed;
    }
    this.segs = [];
    rmSync(this.opts.dir, { recursive: true, force: true });
  }

  private async startRun(): Promise<void> {
    if (this.stopped) return;
    this.state = "starting";
    const { source } = this.opts;
    const input = this.file ? filePath(source.url) : withCredentials(source.url, source.credentials);
    const inputOptions = ["-hide_banner", "-nostdin", "-nostats", "-loglevel", "error"];
    if (source.url.startsWith("rtsp"))
      inputOptions.push("-rtsp_transport", source.transport ?? "tcp", "-timeout", "5000000");
    if (this.file) inputOptions.push("-re", ...(source.realtimeFile ? ["-stream_loop", "-1"] : []));
    if (!this.mode && !this.file && this.runNo === 0) {
      // A network camera's first run copies at once, and its first segment's codec is read from the file
      // (verifyCodec). Probing over the network first started this ffmpeg 0.9–3.5 s after the worker's decoder
      // (assessment-e2e, from an idle host to 8 busy loops on its 2 cores), and with a 6 s probe the recording
      // began after a count rule's event 4 s into the stream: its clip was "gone" and the alarm dead-lettered.
      // H.264 and HEVC cameras no longer wait for a probe; any other codec costs one segment.
      this.mode = "copy";
    } else if (!this.mode) {
      let probed: { mode: RecordMode; codec: string };
      try {
        probed = await this.probeMode(input);
      } catch (err) {
        return this.runEnded(undefined, (err as Error).message);
      }
      if (this.stopped) return;
      this.settleMode(probed.mode, probed.codec);
    }
    const run = ++this.runNo;
    if (!this.modeVerified) this.unverifiedRuns.add(run);
    const list = join(this.opts.dir, `r${run}.csv`);
    const codec =
      this.mode === "copy"
        ? ["-c:v", "copy"]
        : [
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-pix_fmt",
            "yuv420p",
            "-force_key_frames",
            "expr:gte(t,n_forced*1)",
          ];
    const args = [
      ...inputOptions,
      "-i",
      input,
      "-map",
      "0:v:0",
      ...codec,
      "-f",
      "segment",
      "-segment_time",
      String(this.opts.segmentSeconds),
      "-segment_format",
      "mpegts",
      "-reset_timestamps",
      "1",
      "-segment_list",
      list,
      "-segment_list_type",
      "csv",
      join(this.opts.dir, `r${run}-%06d.ts`),
    ];
    const proc = spawn(this.opts.ffmpegPath ?? "ffmpeg", args, { stdio: ["ignore", "ignore", "pipe"] });
    let closedResolve: () => void = () => undefined;
    const r: Run = {
      run,
      proc,
      list,
      offset: 0,
      rest: "",
      produced: 0,
      lastObservedMs: undefined,
      stderr: "",
      stalled: false,
      verifying: false,
      verifyFailures: 0,
      switching: false,
      closed: new Promise((res) => {
        closedResolve = res;
      }),
    };
    this.current = r;
    this.opts.log.info(
      { camera: this.opts.id, run, mode: this.mode, args: redact(args.join(" "), this.secrets) },
      "clip recorder started",
    );
    proc.stderr?.on("data", (b: Buffer) => {
      r.stderr = `${r.stderr}${redact(b.toString(), this.secrets)}`.slice(-2000);
    });
    proc.on("error", () => undefined); // spawn failures end in "close" as well
    proc.on("close", (code, signal) => {
      closedResolve();
      if (this.current !== r) return;
      this.readList(r);
      this.dropUnlisted(r);
      this.current = undefined;
      clearTimeout(this.stall);
      if (r.switching) {
        // Replaced, not failed (verifyCodec, settleMode): its list goes, and the next run starts now.
        rmSync(r.list, { force: true });
        if (!this.stopped) void this.startRun();
        return;
      }
      const why = signal ? `killed by ${signal}` : `exited with code ${code}`;
      const error = r.stalled
        ? `no new segment for ${this.opts.stallMs / 1000} s (killed)`
        : r.stderr.trim()
          ? `${classifyFfmpegError(r.stderr)} (${why})`
          : why;
      // A copying run that never finished a segment may have met a codec it cannot copy: probe again next time.
      if (r.produced === 0 && this.mode === "copy") this.mode = undefined;
      this.runEnded(r, this.file && !source.realtimeFile && code === 0 ? undefined : error);
    });
    this.armStall();
  }

  /** Asks ffprobe for the first video stream's codec: copy what MP4 carries, re-encode the rest. */
  private probeMode(input: string): Promise<{ mode: RecordMode; codec: string }> {
    const { source } = this.opts;
    const args = [
      "-hide_banner",
      "-loglevel",
      "error",
      ...(source.url.startsWith("rtsp") ? ["-rtsp_transport", source.transport ?? "tcp", "-timeout", "5000000"] : []),
      // The codec is in the RTSP session description: 0.1 s of analysis answers in 0.56 s instead of 2.9 s.
      "-analyzeduration",
      "100000",
      "-probesize",
      "100000",
    ];
    return new Promise((resolve, reject) => {
      this.probeCodec(args, input, (err, codec, stderr) => {
        if (err || !codec) {
          const text = redact(stderr, this.secrets);
          return reject(new Error(text.trim() ? classifyFfmpegError(text) : "no video stream"));
        }
        resolve({ mode: COPYABLE.has(codec) ? "copy" : "encode", codec });
      });
    });
  }

  /**
   * Reads the codec of an unverified copy run's first segment (a local file: ~0.1 s), also for a run that has died
   * meanwhile. H.264 or HEVC: the copied segments count. Anything else: they go, and recording goes on re-encoded
   * (a copy run still going is killed and replaced at once). A probe that fails is tried on the next segment;
   * after VERIFY_TRIES failures the run is ended, and the next one asks the camera (probeMode).
   */
  private verifyCodec(r: Run, path: string): void {
    r.verifying = true;
    this.probeCodec(["-v", "error"], path, (err, codec) => {
      if (this.stopped || !this.unverifiedRuns.has(r.run)) return;
      if (err) {
        r.verifying = false;
        r.verifyFailures++;
        this.opts.log.warn(
          { camera: this.opts.id, run: r.run, err: err.message, tries: r.verifyFailures },
          "clip recorder: could not read the codec of a copied segment",
        );
        if (r.verifyFailures >= VERIFY_TRIES && this.current === r) {
          this.lastError = `could not read the codec of ${VERIFY_TRIES} copied segments: ${err.message}`;
          this.mode = undefined;
          r.switching = true;
          r.proc.kill("SIGKILL");
        }
        return;
      }
      this.settleMode(COPYABLE.has(codec) ? "copy" : "encode", codec || "none (no video stream MPEG-TS knows)");
    });
  }

  /**
   * The stream's mode is known (from a copied segment or the camera): copied segments count, or are deleted; a copy
   * run still going on a stream that must be re-encoded is replaced at once.
   */
  private settleMode(mode: RecordMode, codec: string): void {
    this.mode = mode;
    this.modeVerified = true;
    const copied = this.unverifiedRuns;
    if (mode === "copy") {
      copied.clear();
      this.opts.onChange?.();
      return;
    }
    this.opts.log.info(
      { camera: this.opts.id, codec },
      "clip recorder: the stream cannot be copied into MP4; recording it re-encoded",
    );
    for (const s of this.segs) if (copied.has(s.run)) rmSync(s.path, { force: true });
    this.segs = this.segs.filter((s) => !copied.has(s.run));
    for (const run of copied)
      if (run !== this.current?.run) rmSync(join(this.opts.dir, `r${run}.csv`), { force: true });
    if (this.firstPath && !this.segs.some((s) => s.path === this.firstPath)) this.firstPath = undefined;
    const r = this.current;
    if (r && copied.has(r.run)) {
      r.switching = true;
      r.proc.kill("SIGKILL");
    }
    copied.clear();
    this.opts.onChange?.();
  }

  /** ffprobe's name for the first video stream's codec ("" when none); every probe still running is killed by stop(). */
  private probeCodec(args: string[], input: string, done: (err: Error | null, codec: string, stderr: string) => void) {
    const select = ["-select_streams", "v:0", "-show_entries", "stream=codec_name", "-of", "csv=p=0"];
    const ffprobe = this.opts.ffprobePath ?? "ffprobe";
    const p = execFile(ffprobe, [...args, ...select, input], { timeout: 20_000 }, (err, stdout, stderr) => {
      this.probes.delete(p);
      done(err, String(stdout).trim().split(/\s+/)[0] ?? "", String(stderr));
    });
    this.probes.add(p);
  }

  private runEnded(r: Run | undefined, error: string | undefined): void {
    if (this.stopped) return;
    if (r && r.produced > 0) this.failures = 0;
    if (error === undefined) {
      // A file played once (not looped) has ended: nothing to record any more.
      this.state = "ended";
      this.opts.log.info({ camera: this.opts.id }, "clip recorder: the file ended");
      this.opts.onChange?.();
      return;
    }
    this.lastError = error;
    const delay = backoffMs(this.failures++, this.opts.backoffMinMs, this.opts.backoffMaxMs);
    this.state = "backoff";
    this.restarts++;
    this.opts.onRestart?.();
    this.opts.log.warn(
      { camera: this.opts.id, url: this.safeUrl, run: r?.run, error, retryInMs: Math.round(delay) },
      "clip recorder stopped; restarting",
    );
    this.opts.onChange?.();
    this.retry = setTimeout(() => void this.startRun(), delay);
  }

  private armStall(): void {
    clearTimeout(this.stall);
    this.stall = setTimeout(() => {
      const r = this.current;
      if (!r) return;
      r.stalled = true;
      r.proc.kill("SIGKILL");
    }, this.opts.stallMs);
    this.stall.unref();
  }

  /** Reads what ffmpeg appended to the run's list since the last read; each new line is a finished segment. */
  private readList(r: Run): void {
    const observedMs = Date.now();
    let text: string;
    try {
      const fd = openSync(r.list, "r");
      try {
        const size = fstatSync(fd).size;
        if (size <= r.offset) return;
        const buf = Buffer.alloc(size - r.offset);
        readSync(fd, buf, 0, buf.length, r.offset);
        r.offset = size;
        text = r.rest + buf.toString("utf8");
      } finally {
        closeSync(fd);
      }
    } catch {
      return; // ffmpeg has not created the list yet
    }
    const parsed = parseSegmentList(text);
    r.rest = parsed.rest;
    for (const m of parsed.malformed)
      this.opts.log.warn({ camera: this.opts.id, line: m }, "clip recorder: malformed segment list line");
    if (!parsed.entries.length) return;
    for (const e of parsed.entries) {
      const trusted = trustedObservation(r.lastObservedMs, e, observedMs);
      r.lastObservedMs = observedMs;
      const path = join(this.opts.dir, e.file);
      this.firstPath ??= path;
      this.segs.push({ ...e, run: r.run, path, observedMs, trusted });
      r.produced++;
      if (!this.modeVerified && !r.verifying && !r.switching) this.verifyCodec(r, path);
    }
    this.failures = 0;
    this.state = "recording";
    this.armStall();
    this.prune(observedMs);
    this.opts.onChange?.();
  }

  /** Deletes segments older than the buffer, and the lists of runs with nothing left. */
  private prune(nowMs: number): void {
    const keepFrom = nowMs - this.opts.bufferSeconds * 1000;
    while (this.segs.length && (this.segs[0] as RecordedSegment).observedMs < keepFrom) {
      const s = this.segs.shift() as RecordedSegment;
      rmSync(s.path, { force: true });
      if (s.run !== this.current?.run && !this.segs.some((o) => o.run === s.run))
        rmSync(join(this.opts.dir, `r${s.run}.csv`), { force: true });
    }
  }

  /** After a run ends: its open segment (never listed, unreadable after kill -9) is deleted. */
  private dropUnlisted(r: Run): void {
    const listed = new Set(this.segs.filter((s) => s.run === r.run).map((s) => s.file));
    const mine = new RegExp(`^r${r.run}-\\d+\\.ts$`);
    let names: string[] = [];
    try {
      names = readdirSync(this.opts.dir);
    } catch {
      return;
    }
    for (const n of names)
      if (mine.test(n) && !listed.has(n))
        try {
          unlinkSync(join(this.opts.dir, n));
        } catch {
          // already gone
        }
  }
}
