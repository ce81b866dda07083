// Which recorded segments make the clip [t − pre, t + post], and where to cut them: a pure core, no I/O.
//
// Time. An alarm's event time is the wall-clock time at which the worker's decoder saw the frame; segments carry
// times on ffmpeg's own timeline (seconds since that ffmpeg run began). The recorder notes the wall-clock time at
// which each segment's line appears in the CSV list (inotify): the segment muxer closes segment k, and appends its
// line, when the keyframe at its end arrives, so observed_k − end_k = offset + latency_k, latency_k ≥ 0, and the
// smallest value over a segment and its next few is its offset (toWall).
// Measured with Debian's ffmpeg 5.1 on the GStreamer RTSP server (H.264, 10 fps, 1 s GOP), 8 runs of 8–12
// segments: after a run's first segment, observed − end stayed within 0–21 ms of its minimum (mostly 0–1 ms); the
// first is observed ~600 ms late (ffmpeg still probes the stream when its end keyframe arrives).
// Not tried, by design: -use_wallclock_as_timestamps would stamp packets by arrival, but it replaces the stream's own
// timestamps (B-frame order, and the bursty arrival bends every frame's duration), and -strftime names files only
// to the second; the list's own timing needs neither.
//
// The worker's decoder sees a frame later than the recorder's muxer does: decoding (frame threads hold one frame
// per extra thread), the fps filter and the pipe. Measured with frames that carry their own number (grey levels;
// test/integration/clips.test.ts does the same check), a frame reached the worker's frame handler 300 ms
// (-threads 1 or -flags low_delay) to 400–500 ms (FfmpegSource as it is, auto threads on 2 cores; at most 620 ms)
// after the recorder's time for it. So the cut starts startMarginMs (1000 ms: that maximum with headroom) early
// and ends endMarginMs (500 ms) late: 200 ms (the 21 ms of observation latency plus a frame at 10 fps, as the out
// point drops the packet at it) was not enough in the worker's end-to-end runs, where 9 of ~70 cuts ended ~60 ms
// before t + post and were refused by clip-service's whole-window check (a lost clip); 500 ms leaves 300 ms more. In the integration test the decoder saw a clip's first frame 1.4–1.5 s before t − pre
// and its last 0.5–0.6 s after t + post. A clip is thus never shorter than pre + post and at most a keyframe
// interval + 1.5 s + a frame longer (clipDurationBounds); clip-service checks the first with ffprobe.
import type { SegmentEntry } from "./segments.ts";

/**
 * A finished segment of one recorder run, with the wall-clock time its line appeared in the list, and whether that
 * time can be trusted as "its end keyframe just arrived" (trustedObservation).
 */
export type RecordedSegment = SegmentEntry & { run: number; path: string; observedMs: number; trusted: boolean };

/** A finished segment placed on the wall clock. */
export type WallSegment = RecordedSegment & { startMs: number; endMs: number };

/**
 * Whether a segment's observation time is its end keyframe's arrival (plus milliseconds): not for a run's first
 * segment, which closes while ffmpeg still probes the stream, nor for one that closed within half its length of
 * the previous one (queued behind the probe or a network stall, so observed late).
 */
export function trustedObservation(
  previousObservedMs: number | undefined,
  entry: SegmentEntry,
  observedMs: number,
): boolean {
  if (previousObservedMs === undefined) return false;
  return observedMs - previousObservedMs >= 500 * (entry.endS - entry.startS);
}

/** How many later segments of the run a segment's offset may also take its minimum over. */
const LOOK_AHEAD = 3;

/**
 * Places segments on the wall clock. A segment's offset (wall ms − media s × 1000) is the smallest
 * observed − end among the trusted observations of itself and the next LOOK_AHEAD segments of its run: local, so
 * a stream whose delay steps (the test RTSP server pauses its shared stream ~4 s whenever a client joins; a camera
 * that falls behind after a network stall) is placed right on both sides of the step, and the step shows as a gap
 * instead of misplacing the segments after it; and "the next ones", so a segment observed late (the first of a
 * run) still gets the prompt offset of its successors. A segment with no trusted observation among those is left
 * out until one comes.
 */
export function toWall(segments: readonly RecordedSegment[]): WallSegment[] {
  const byRun = new Map<number, RecordedSegment[]>();
  for (const s of segments) {
    const list = byRun.get(s.run) ?? [];
    list.push(s);
    byRun.set(s.run, list);
  }
  const out: WallSegment[] = [];
  for (const list of byRun.values()) {
    list.sort((a, b) => a.startS - b.startS);
    list.forEach((s, i) => {
      let offset: number | undefined;
      for (const o of list.slice(i, i + 1 + LOOK_AHEAD))
        if (o.trusted) offset = Math.min(offset ?? Number.POSITIVE_INFINITY, o.observedMs - o.endS * 1000);
      if (offset !== undefined) out.push({ ...s, startMs: s.startS * 1000 + offset, endMs: s.endS * 1000 + offset });
    });
  }
  return out.sort((a, b) => a.startMs - b.startMs);
}

export type ClipMargins = { startMarginMs: number; endMarginMs: number };
export const DEFAULT_MARGINS: ClipMargins = { startMarginMs: 1000, endMarginMs: 500 };

export type ClipRequestTimes = { eventMs: number; preSeconds: number; postSeconds: number };
export type ClipWindow = { fromMs: number; toMs: number };

/** The wall-clock span to cut: the requested [t − pre, t + post], widened by the margins. */
export function clipWindow(req: ClipRequestTimes, m: ClipMargins = DEFAULT_MARGINS): ClipWindow {
  return {
    fromMs: req.eventMs - req.preSeconds * 1000 - m.startMarginMs,
    toMs: req.eventMs + req.postSeconds * 1000 + m.endMarginMs,
  };
}

/**
 * The window of an alarm in a camera's first seconds, whose pre-roll reaches back before the recording began: the
 * clip starts where the recording does, with the pre-roll it really has, instead of no clip at all ("gone"), as
 * an NVR shows what it has. Only when nothing was lost: `recordingBeganMs` is the start of the first segment the
 * recorder ever made, known while that segment is still in the buffer (a window the buffer has dropped stays gone,
 * and one across a restart stays a gap, planClip). The shortened pre-roll keeps the margin that covers the decoder's
 * lag behind the recorder: pre' = t − margin − began, so the cut window is [t − pre' − margin, t + post + margin],
 * the same shape as clipWindow's. A recording that began less than that margin before t (a rule that fires on the
 * decoder's first frames: the recorder starts beside the decoder, recorder.ts) gets pre' = 0 and the clip from
 * where the recording began: its first frame is within the decoder's lag (0.3–0.62 s measured) after the event's
 * own, and the post-roll is whole. Once the recording began after t, there is none ("gone").
 */
export function shortenedPreRoll(
  req: ClipRequestTimes,
  recordingBeganMs: number | undefined,
  m: ClipMargins = DEFAULT_MARGINS,
): { preSeconds: number; window: ClipWindow } | undefined {
  if (recordingBeganMs === undefined) return undefined;
  const w = clipWindow(req, m);
  if (recordingBeganMs <= w.fromMs || recordingBeganMs > req.eventMs) return undefined;
  const preMs = Math.max(0, req.eventMs - m.startMarginMs - recordingBeganMs);
  // Rounded down to 0.1 s: a hair shorter than the recording holds, never longer.
  return { preSeconds: Math.floor(preMs / 100) / 10, window: { fromMs: recordingBeganMs, toMs: w.toMs } };
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
/** How far apart two segments of a run may be on the wall clock and still join (rounding, jitter of observations). */
export const CONTIGUITY_MS = 250;

const joins = (a: WallSegment, b: WallSegment, toleranceMs: number) =>
  a.run === b.run && Math.abs(b.startMs - a.endMs) <= toleranceMs;

/** The newest contiguous stretch of recording (what a clip can be cut from now), or undefined when there is none. */
export function newestStretch(
  segments: readonly WallSegment[],
  toleranceMs = CONTIGUITY_MS,
): { fromMs: number; toMs: number } | undefined {
  let i = segments.length - 1;
  const last = segments[i];
  if (!last) return undefined;
  while (i > 0 && joins(segments[i - 1] as WallSegment, segments[i] as WallSegment, toleranceMs)) i--;
  return { fromMs: (segments[i] as WallSegment).startMs, toMs: last.endMs };
}

export function planClip(segments: readonly WallSegment[], w: ClipWindow, toleranceMs = CONTIGUITY_MS): ClipPlan {
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
    if (!joins(a, b, toleranceMs))
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
