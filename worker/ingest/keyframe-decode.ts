// Whether a live stream may be decoded keyframes only (`-skip_frame nokey`). At 1 detection per second a 1080p
// 25 fps camera with a 1 s GOP needs one frame in 25; decoding the other 24 cost 73 ms CPU per stream-second, against
// 22 ms for keyframes only (FACTS.md). That holds only when there is a keyframe at least as often as a sample is
// wanted, so the GOP is measured from the keyframes the stream really carries (their media times, in seconds), on
// every connection: a camera whose GOP is unknown, long, or changed after a reconnect is decoded in full.
export type DecodeMode = "all" | "keyframes";

/** How many keyframe times are kept: the GOP is the median of the intervals between them. */
export const KEY_HISTORY = 5;
/** Intervals needed before a GOP is believed: three, so that the median ignores one odd interval (a client joining
 * mid-GOP, the test server restarting its file 0.2 s in). */
export const MIN_INTERVALS = 3;
/**
 * A GOP a little over the sample period still passes: RTP clocks and encoders' keyframe spacing jitter by a few
 * frames' worth; beyond this the fps filter would repeat a frame too often.
 */
export const GOP_TOLERANCE = 0.05;

/**
 * The keyframe times with `t` added, at most KEY_HISTORY of them. A time that does not go forward (the stream's clock
 * was reset: a new connection, a server restarting its file) starts a new history.
 */
export function pushKeyTime(times: readonly number[], t: number): number[] {
  const last = times.at(-1);
  if (last !== undefined && !(t > last)) return [t];
  return [...times, t].slice(-KEY_HISTORY);
}

/**
 * The stream's keyframe interval in seconds, or undefined while fewer than MIN_INTERVALS intervals are known. The
 * median, so that one keyframe lost on the way does not flip the decision.
 */
export function gopSeconds(times: readonly number[]): number | undefined {
  if (times.length < MIN_INTERVALS + 1) return undefined;
  const gaps = times
    .slice(1)
    .map((t, i) => t - (times[i] ?? t))
    .sort((a, b) => a - b);
  const mid = gaps.length >> 1;
  return gaps.length % 2 ? gaps[mid] : ((gaps[mid - 1] ?? 0) + (gaps[mid] ?? 0)) / 2;
}

/**
 * Keyframes only when sampling at `fps` needs no more than one frame per GOP; every frame when the GOP is unknown
 * or longer, or when every frame is wanted (fps 0).
 */
export function decodeModeFor(gopS: number | undefined, fps: number): DecodeMode {
  if (gopS === undefined || !(fps > 0) || !(gopS > 0)) return "all";
  return gopS <= (1 + GOP_TOLERANCE) / fps ? "keyframes" : "all";
}

/** A showinfo line's frame time (seconds), or undefined for its other lines. */
export function showinfoTime(line: string): number | undefined {
  if (!line.includes("showinfo")) return undefined;
  const m = /\bpts_time:(-?\d+(?:\.\d+)?)/.exec(line);
  return m ? Number(m[1]) : undefined;
}

/**
 * How a keyframes-only connection samples: every `stride`-th keyframe, at `rate` frames per second, never fewer
 * than `fps` (the stride rounds down; 0.05 absorbs a measured GOP a hair over an exact fraction of the period). ffmpeg's fps filter would also do it, but it holds each frame until the next one arrives to
 * choose between them: a whole GOP (1 s) of latency when only keyframes are decoded, against 40 ms with every frame.
 * A select on the time since the last frame taken decides at once: a frame is taken when at least `minGapS`
 * (stride − ½ GOPs) has passed.
 */
export function keyframeSampling(gopS: number, fps: number): { stride: number; minGapS: number; rate: number } {
  const stride = Math.max(1, Math.floor(1 / (fps * gopS) + 0.05));
  return { stride, minGapS: (stride - 0.5) * gopS, rate: 1 / (stride * gopS) };
}
