import { describe, expect, it } from "vitest";
import { type FrameClock, liveFrameTime } from "../../worker/ingest/frame-clock.ts";

/** Stamps a run of (seq, arrival) pairs at `fps`, as FfmpegSource does. */
function stamp(arrivals: number[], fps: number): number[] {
  let clock: FrameClock | undefined;
  return arrivals.map((a, seq) => {
    const r = liveFrameTime(clock, seq, a, fps);
    clock = r.clock;
    return r.timestampMs;
  });
}

describe("liveFrameTime", () => {
  it("smooths jittery arrivals onto the frame rate", () => {
    // 10 fps, arrivals late by 0–40 ms: stamps are exactly 100 ms apart from the first.
    expect(stamp([1000, 1130, 1210, 1340, 1400], 10)).toEqual([1000, 1100, 1200, 1300, 1400]);
  });

  it("never stamps a frame later than it arrived, even after a burst of buffered frames", () => {
    // A connection's first 22 frames arrive at once (buffered 2.2 s), then one every 100 ms.
    const arrivals = [...Array(22).fill(5000), ...Array.from({ length: 10 }, (_, i) => 5100 + i * 100)];
    const stamps = stamp(arrivals, 10);
    for (let i = 0; i < stamps.length; i++) expect(stamps[i]).toBeLessThanOrEqual(arrivals[i] as number);
    // Once frames come steadily, stamps are their arrival times, not 2.2 s ahead.
    expect(stamps.slice(-3)).toEqual(arrivals.slice(-3));
    // And never go backwards.
    for (let i = 1; i < stamps.length; i++) expect(stamps[i]).toBeGreaterThanOrEqual(stamps[i - 1] as number);
  });

  it("re-anchors when the stream is slower than the frame rate, so the clock does not drift behind", () => {
    // Frames every 150 ms at a nominal 10 fps: a steady clock would fall 50 ms behind per frame.
    const arrivals = Array.from({ length: 60 }, (_, i) => 10_000 + i * 150);
    const stamps = stamp(arrivals, 10);
    const lag = Math.max(...stamps.map((s, i) => (arrivals[i] as number) - s));
    expect(lag).toBeLessThanOrEqual(1000);
  });
});
