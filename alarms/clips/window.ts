// Which recorded segments make the clip [t − pre, t + post], and where to cut them: a pure core, no I/O.
//
// Time. An alarm's event time is the wall-clock time at which the worker's decoder saw the frame; the recorder's
// segments carry times on ffmpeg's own timeline (seconds since that ffmpeg run began). Each run gets one offset,
// wall ms = media s × 1000 + offset, measured from when each segment appears in the CSV list: the segment muxer
// closes segment k (and appends its line) when the keyframe at its end time arrives, so
// observed_k − end_k = offset + latency_k with latency_k ≥ 0, and the minimum over recent segments is the offset
// plus the smallest latency. Measured with Debian's ffmpeg 5.1 on the GStreamer RTSP server (H.264, 10 fps, 1 s
// GOP), watching the list with inotify: after the first segment, observed − end stayed within 0–21 ms of its
// minimum (median 1 ms) over 10 runs of ~12 segments. The first segment of a run is observed ~600 ms late (ffmpeg
// is still probing the stream when its end keyframe arrives), and segments closed in a burst behind the probe are
// late too; both are left out of the estimate.
//
// The worker's decoder sees a frame later than the recorder's muxer does: decoding (frame threads add one frame of
// delay per extra thread), the fps filter and the pipe. Measured on the same stream with frames that carry their
// own number (grey levels), a frame's arrival at the worker's frame handler was 300 ms (1 thread, or -flags
// low_delay) to 400–500 ms (auto threads on 2 cores; max 620 ms at fps 5) after the recorder's mapped time of the
// same frame. So the clip's start is moved earlier by startMarginMs (default 1000 ms, that maximum plus headroom)
// and its end later by endMarginMs (default 200 ms: the observation latency, 21 ms at most, plus a frame at 10 fps,
// since the last packet kept is the one before the out point). A clip may therefore be up to
// one keyframe interval + startMargin + endMargin + one frame longer than pre + post (clipDurationBounds); it is
// never shorter, and clip-service checks that with ffprobe before it announces one.
import type { SegmentEntry } from "./segments.ts";

/** A finished segment of one recorder run, with the wall-clock time its line appeared in the list. */
export type RecordedSegment = SegmentEntry & { run: number; path: string; observedMs: number };

/** A finished segment placed on the wall clock. */
export type WallSegment = RecordedSegment & { startMs: number; endMs: number };

/** One run's clock: offsets (observed − end) of its recent trustworthy segments. */
export type RunClock = { seen: number; lastObservedMs: number | undefined; offsets: number[] };

export const newRunClock = (): RunClock => ({ seen: 0, lastObservedMs: undefined, offsets: [] });

/** How many recent segments the offset is the minimum over: ~64 s at 2 s segments, so slow clock drift follows. */
const RECENT = 32;

/** The clock after segment `entry` appeared in the list at `observedMs`. */
export function observeSegment(clock: RunClock, entry: SegmentEntry, observedMs: number): RunClock {
  const { seen, lastObservedMs } = clock;
  const next: RunClock = { seen: seen + 1, lastObservedMs: observedMs, offsets: clock.offsets };
  // The run's first segment closes while ffmpeg still probes; a segment that closed within half its length of the
  // previous one was queued behind something (the probe, a network stall) and is observed late as well.
  if (seen === 0) return next;
  const burst = lastObservedMs !== undefined && observedMs - lastObservedMs < 500 * (entry.endS - entry.startS);
  if (burst) return next;
  next.offsets = [...clock.offsets, observedMs - entry.endS * 1000].slice(-RECENT);
  return next;
}

/** The run's offset (wall ms − media s × 1000), or undefined until one trustworthy segment has been seen. */
export function runOffsetMs(clock: RunClock): number | undefined {
  return clock.offsets.length ? Math.min(...clock.offsets) : undefined;
}

/** Places the segments of runs whose clock has settled on the wall clock; the others are left out for now. */
export function toWall(segments: readonly RecordedSegment[], clocks: ReadonlyMap<number, RunClock>): WallSegment[] {
  const out: WallSegment[] = [];
  for (const s of segments) {
    const clock = clocks.get(s.run);
    const offset = clock && runOffsetMs(clock);
    if (offset === undefined) continue;
    out.push({ ...s, startMs: s.startS * 1000 + offset, endMs: s.endS * 1000 + offset });
  }
  return out.sort((a, b) => a.startMs - b.startMs);
}

export type ClipMargins = { startMarginMs: number; endMarginMs: number };
export const DEFAULT_MARGINS: ClipMargins = { startMarginMs: 1000, endMarginMs: 200 };

export type ClipRequestTimes = { eventMs: number; preSeconds: number; postSeconds: number };
export type ClipWindow = { fromMs: number; toMs: number };

/** The wall-clock span to cut: the requested [t − pre, t + post], widened by the margins. */
export function clipWindow(req: ClipRequestTimes, m: ClipMargins = DEFAULT_MARGINS): ClipWindow {
  return {
    fromMs: req.eventMs - req.preSeconds * 1000 - m.startMarginMs,
    toMs: req.eventMs + req.postSeconds * 1000 + m.endMarginMs,
  };
}

/** The durations a correct clip may have: never under pre + post; over it by at most a GOP, the margins and a frame. */
export function clipDurationBounds(
  req: Pick<ClipRequestTimes, "preSeconds" | "postSeconds">,
  keyframeIntervalS: number,
  frameS: number,
  m: ClipMargins = DEFAULT_MARGINS,
): { minS: number; maxS: number } {
  const minS = req.preSeconds + req.postSeconds;
  return { minS, maxS: minS + keyframeIntervalS + (m.startMarginMs + m.endMarginMs) / 1000 + frameS };
}

export type ClipPlan =
  | {
      kind: "ready";
      segments: WallSegment[];
      /** Seconds into the first segment where the window starts (cut.ts backs off to the keyframe at or before). */
      inS: number;
      /** Seconds into the last segment where the window ends. */
      outS: number;
    }
  | { kind: "wait"; reason: string }
  | { kind: "gone"; reason: string }
  | { kind: "gap"; reason: string };

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Plans the cut of `w` from the finished segments (sorted by start, as toWall returns them):
 * - wait: no finished segment reaches the window's end yet (the post-roll is still being recorded);
 * - gone: the oldest segment in the buffer starts after the window does (deleted, or never recorded);
 * - gap: the window spans a hole in the recording (ffmpeg restarted, or its timeline jumped by over toleranceMs);
 * - ready: the segments, contiguous and covering the window, and the cut points inside the first and last.
 */
export function planClip(segments: readonly WallSegment[], w: ClipWindow, toleranceMs = 250): ClipPlan {
  const last = segments.at(-1);
  if (!last || last.endMs < w.toMs) return { kind: "wait", reason: `no finished segment reaches ${iso(w.toMs)} yet` };
  const first = segments[0] as WallSegment;
  if (first.startMs > w.fromMs)
    return {
      kind: "gone",
      reason: `the buffer no longer covers the window start ${iso(w.fromMs)}: its oldest segment starts at ${iso(first.startMs)}`,
    };
  const chosen = segments.filter((s) => s.endMs > w.fromMs && s.startMs < w.toMs);
  const head = chosen[0];
  const tail = chosen.at(-1);
  if (!head || !tail || head.startMs > w.fromMs || tail.endMs < w.toMs)
    return { kind: "gap", reason: `the recording has a gap inside ${iso(w.fromMs)} – ${iso(w.toMs)}` };
  for (let i = 1; i < chosen.length; i++) {
    const a = chosen[i - 1] as WallSegment;
    const b = chosen[i] as WallSegment;
    if (a.run !== b.run || Math.abs(b.startMs - a.endMs) > toleranceMs)
      return {
        kind: "gap",
        reason: `the recording has a gap from ${iso(a.endMs)} to ${iso(b.startMs)}${a.run !== b.run ? " (the recorder restarted)" : ""}`,
      };
  }
  return {
    kind: "ready",
    segments: chosen,
    inS: (w.fromMs - head.startMs) / 1000,
    outS: (w.toMs - tail.startMs) / 1000,
  };
}

/** The last keyframe time at or before t (all in one file's timestamps), or undefined when t precedes them all. */
export function keyframeAtOrBefore(keyframes: readonly number[], t: number): number | undefined {
  let best: number | undefined;
  // A hair of slack: ffprobe prints six decimals, so a keyframe exactly at t may print a microsecond late.
  for (const k of keyframes) if (k <= t + 1e-6 && (best === undefined || k > best)) best = k;
  return best;
}
