import { describe, expect, it } from "vitest";
import { concatScript, parsePackets } from "../../alarms/clips/cut.ts";
import { backoffMs } from "../../alarms/clips/recorder.ts";
import {
  clipDurationBounds,
  clipWindow,
  keyframeAtOrBefore,
  newestStretch,
  planClip,
  shortenedPreRoll,
  toWall,
  trustedObservation,
  type WallSegment,
} from "../../alarms/clips/window.ts";

const T0 = 1_800_000_000_000;

/** Segments of one run every `len` seconds from media time `from`, placed at wall T0 + offset. */
function run(n: number, opts: { run?: number; from?: number; len?: number; offsetMs?: number } = {}): WallSegment[] {
  const { run = 1, from = 0, len = 2, offsetMs = 0 } = opts;
  return Array.from({ length: n }, (_, i) => {
    const startS = from + i * len;
    const endS = startS + len;
    return {
      file: `r${run}-${i}.ts`,
      path: `/scratch/r${run}-${i}.ts`,
      run,
      startS,
      endS,
      observedMs: T0 + offsetMs + endS * 1000,
      trusted: true,
      startMs: T0 + offsetMs + startS * 1000,
      endMs: T0 + offsetMs + endS * 1000,
    };
  });
}

describe("placing segments on the wall clock", () => {
  const seg = (run: number, i: number, startS: number, endS: number, observedMs: number, trusted = true) => ({
    file: `r${run}-${i}.ts`,
    path: `/s/r${run}-${i}.ts`,
    run,
    startS,
    endS,
    observedMs,
    trusted,
  });

  it("trusts an observation unless it is the run's first or closed in a burst behind the previous one", () => {
    const e = { file: "x.ts", startS: 2, endS: 4 };
    expect(trustedObservation(undefined, e, T0)).toBe(false);
    expect(trustedObservation(T0, e, T0 + 2000)).toBe(true);
    expect(trustedObservation(T0, e, T0 + 1000)).toBe(true); // half its length after: a late previous one
    expect(trustedObservation(T0, e, T0 + 50)).toBe(false);
  });

  it("takes each segment's offset from its own and the next trusted observations", () => {
    // Measured shape: the first segment observed ~600 ms late (ffmpeg still probing), the rest within ms.
    const wall = toWall([
      seg(1, 0, 0, 2.9, T0 + 2900 + 600, false),
      seg(1, 1, 2.9, 4.9, T0 + 4900 + 3),
      seg(1, 2, 4.9, 6.9, T0 + 6900 + 1),
      seg(1, 3, 6.9, 8.9, T0 + 8900 + 21),
      seg(1, 4, 8.9, 10.9, T0 + 10_900 + 5),
      seg(1, 5, 10.9, 12.9, T0 + 12_900 + 4),
    ]);
    expect(wall.map((s) => s.startMs - T0)).toEqual([1, 2901, 4901, 6904, 8904, 10_904]);
    // The newest segment has only its own observation: a few ms late at most, which endMarginMs covers.
    expect(wall.at(-1)!.endMs - T0).toBe(12_904);
  });

  it("leaves out what has no trusted observation yet, and sorts runs by wall time", () => {
    const wall = toWall([
      seg(2, 0, 0, 2, T0 + 30_000, false), // a new run's first segment, alone: not placed yet
      seg(1, 0, 10, 12, T0 + 12_000),
      seg(1, 1, 12, 14, T0 + 14_005),
    ]);
    expect(wall.map((s) => [s.file, s.startMs - T0])).toEqual([
      ["r1-0.ts", 10_000],
      ["r1-1.ts", 12_005],
    ]);
  });

  it("follows a step in the stream's delay, which then shows as a gap instead of misplaced segments", () => {
    // The stream pauses 4 s after segment 2 (the test RTSP server does when a client joins): from then on every
    // segment is observed 4 s later than its media time says.
    const segs = [0, 1, 2, 3, 4, 5, 6, 7].map((i) =>
      seg(1, i, 2 * i, 2 * i + 2, T0 + (2 * i + 2) * 1000 + (i >= 3 ? 4000 : 0)),
    );
    const wall = toWall(segs);
    expect(wall.map((s) => s.startMs - T0)).toEqual([0, 2000, 4000, 10_000, 12_000, 14_000, 16_000, 18_000]);
    expect(planClip(wall, { fromMs: T0 + 5000, toMs: T0 + 11_000 }).kind).toBe("gap");
    expect(planClip(wall, { fromMs: T0 + 10_500, toMs: T0 + 17_000 }).kind).toBe("ready");
  });
});

describe("the clip window", () => {
  it("widens [t − pre, t + post] by the margins", () => {
    const w = clipWindow({ eventMs: T0, preSeconds: 4, postSeconds: 4 }, { startMarginMs: 1000, endMarginMs: 200 });
    expect(w).toEqual({ fromMs: T0 - 5000, toMs: T0 + 4200 });
  });

  it("bounds a clip's duration: never under pre + post, over it by at most a GOP, the margins and a frame", () => {
    const b = clipDurationBounds({ preSeconds: 4, postSeconds: 4 }, 1, 0.1, { startMarginMs: 1000, endMarginMs: 200 });
    expect(b.minS).toBe(8);
    expect(b.maxS).toBeCloseTo(10.3, 9);
  });

  it("cuts inside the first and last segments it needs", () => {
    const segs = run(10); // wall T0 … T0+20 s
    const plan = planClip(segs, { fromMs: T0 + 3500, toMs: T0 + 9200 });
    expect(plan.kind).toBe("ready");
    if (plan.kind !== "ready") return;
    expect(plan.segments.map((s) => s.file)).toEqual(["r1-1.ts", "r1-2.ts", "r1-3.ts", "r1-4.ts"]);
    expect(plan.inS).toBeCloseTo(1.5, 9);
    expect(plan.outS).toBeCloseTo(1.2, 9);
  });

  it("does not take a segment that only touches the window", () => {
    const plan = planClip(run(10), { fromMs: T0 + 4000, toMs: T0 + 8000 });
    expect(plan.kind === "ready" && plan.segments.map((s) => s.file)).toEqual(["r1-2.ts", "r1-3.ts"]);
  });

  it("waits while the post-roll is still being recorded", () => {
    const plan = planClip(run(5), { fromMs: T0 + 3000, toMs: T0 + 10_001 });
    expect(plan).toEqual({ kind: "wait", reason: expect.stringMatching(/no finished segment reaches/) });
    expect(planClip([], { fromMs: T0, toMs: T0 + 1 }).kind).toBe("wait");
  });

  it("is gone once the buffer no longer reaches back to its start", () => {
    const plan = planClip(run(5, { from: 10 }), { fromMs: T0 + 9999, toMs: T0 + 14_000 });
    expect(plan.kind).toBe("gone");
    expect(plan.kind === "gone" && plan.reason).toMatch(/buffer no longer covers the window start/);
  });

  it("cuts an alarm in the camera's first seconds from where the recording began, with the pre-roll it has", () => {
    const m = { startMarginMs: 1000, endMarginMs: 500 };
    // Recording began at T0; the event 3.5 s later asks for 10 s of pre-roll.
    const req = { eventMs: T0 + 3500, preSeconds: 10, postSeconds: 2 };
    const short = shortenedPreRoll(req, T0, m);
    expect(short).toEqual({ preSeconds: 2.5, window: { fromMs: T0, toMs: T0 + 6000 } });
    const segs = run(4); // T0 … T0+8 s
    expect(planClip(segs, clipWindow(req, m)).kind).toBe("gone");
    const plan = planClip(segs, short!.window);
    expect(plan.kind === "ready" && plan.segments.map((s) => s.file)).toEqual(["r1-0.ts", "r1-1.ts", "r1-2.ts"]);
    expect(plan.kind === "ready" && plan.inS).toBe(0);
    // Rounded down, never promising more than the recording holds.
    expect(shortenedPreRoll({ ...req, eventMs: T0 + 3579 }, T0, m)?.preSeconds).toBe(2.5);
  });

  it("keeps the asked pre-roll when the recording reaches it, gives none when the recording began just before the event, and no clip once it began after it", () => {
    const m = { startMarginMs: 1000, endMarginMs: 500 };
    const req = { eventMs: T0 + 20_000, preSeconds: 4, postSeconds: 2 };
    expect(shortenedPreRoll(req, T0, m)).toBeUndefined(); // T0 is before t − pre − margin: nothing to shorten
    expect(shortenedPreRoll(req, T0 + 15_000, m)).toBeUndefined(); // exactly at the window's start
    expect(shortenedPreRoll(req, T0 + 19_000, m)?.preSeconds).toBe(0); // the event right after the margin
    // Began within the margin before t (a rule on the decoder's first frames): from where it began, no pre-roll.
    expect(shortenedPreRoll(req, T0 + 19_001, m)).toEqual({
      preSeconds: 0,
      window: { fromMs: T0 + 19_001, toMs: T0 + 22_500 },
    });
    expect(shortenedPreRoll(req, T0 + 20_000, m)?.preSeconds).toBe(0); // began at t itself
    expect(shortenedPreRoll(req, T0 + 20_001, m)).toBeUndefined(); // began after the event: nothing of it recorded
    expect(shortenedPreRoll(req, undefined, m)).toBeUndefined(); // the first segment was pruned: truly gone
  });

  it("refuses a window across a recorder restart, or into the hole it left", () => {
    const before = run(5); // T0 … T0+10 s
    const after = run(5, { run: 2, offsetMs: 13_000 }); // T0+13 s … T0+23 s: the open segment and 3 s lost
    const all = [...before, ...after];
    const across = planClip(all, { fromMs: T0 + 8000, toMs: T0 + 15_000 });
    expect(across.kind).toBe("gap");
    expect(across.kind === "gap" && across.reason).toMatch(/recorder restarted/);
    expect(planClip(all, { fromMs: T0 + 10_500, toMs: T0 + 12_000 }).kind).toBe("gap");
    expect(planClip(all, { fromMs: T0 + 13_500, toMs: T0 + 19_000 }).kind).toBe("ready");
    // A jump in one run's timeline is a gap too; a few ms of rounding is not.
    const jumped = [...run(2), ...run(2, { from: 6 })];
    expect(planClip(jumped, { fromMs: T0 + 1000, toMs: T0 + 7000 }).kind).toBe("gap");
    const rounded = [...run(2), ...run(2, { from: 4.004 })];
    expect(planClip(rounded, { fromMs: T0 + 1000, toMs: T0 + 7000 }).kind).toBe("ready");
  });

  it("tells the newest contiguous stretch, what a clip can be cut from now", () => {
    const before = run(5);
    const after = run(3, { run: 2, offsetMs: 13_000 });
    expect(newestStretch([...before, ...after])).toEqual({ fromMs: T0 + 13_000, toMs: T0 + 19_000 });
    expect(newestStretch(before)).toEqual({ fromMs: T0, toMs: T0 + 10_000 });
    expect(newestStretch([...run(2), ...run(2, { from: 6 })])).toEqual({ fromMs: T0 + 6000, toMs: T0 + 10_000 });
    expect(newestStretch([])).toBeUndefined();
  });

  it("backs the in point off to the keyframe at or before it", () => {
    expect(keyframeAtOrBefore([1.4, 2.4], 2.3)).toBe(1.4);
    expect(keyframeAtOrBefore([1.4, 2.4], 2.4)).toBe(2.4);
    expect(keyframeAtOrBefore([1.4, 2.4], 2.3999999)).toBe(2.4); // ffprobe's six decimals
    expect(keyframeAtOrBefore([2.4, 1.4], 9)).toBe(2.4);
    expect(keyframeAtOrBefore([1.4], 1.0)).toBeUndefined();
  });
});

describe("the cut", () => {
  it("reads ffprobe's packet list", () => {
    expect(parsePackets("1.400000,K_,\n\n1.500000,__,\nN/A,__\n2.400000,K_\n")).toEqual([
      { ptsS: 1.4, key: true },
      { ptsS: 1.5, key: false },
      { ptsS: 2.4, key: true },
    ]);
  });

  it("writes in and out points in each file's own timestamps, and every other file's exact duration", () => {
    const segs = [
      { path: "/j/0.ts", startS: 4.9, endS: 6.9 },
      { path: "/j/1.ts", startS: 6.9, endS: 8.9 },
      { path: "/j/it's.ts", startS: 8.9, endS: 10.9 },
    ];
    expect(concatScript(segs, { fileStartS: 1.4, inpointS: 2.4 }, { fileStartS: 1.4, outpointS: 2.15 })).toBe(
      [
        "ffconcat version 1.0",
        "file '/j/0.ts'",
        "inpoint 2.400000",
        "duration 1.000000",
        "file '/j/1.ts'",
        "duration 2.000000",
        "file '/j/it'\\''s.ts'",
        "outpoint 2.150000",
        "",
      ].join("\n"),
    );
    const one = concatScript([segs[0]!], { fileStartS: 1.4, inpointS: 1.4 }, { fileStartS: 1.4, outpointS: 3.0 });
    expect(one).toBe("ffconcat version 1.0\nfile '/j/0.ts'\ninpoint 1.400000\noutpoint 3.000000\n");
  });
});

describe("the recorder's restart backoff", () => {
  it("doubles from the minimum up to the cap, with ±20 % jitter", () => {
    const mid = () => 0.5;
    expect([0, 1, 2, 3, 10].map((f) => backoffMs(f, 500, 30_000, mid))).toEqual([500, 1000, 2000, 4000, 30_000]);
    expect(backoffMs(0, 500, 30_000, () => 0)).toBe(400);
    expect(backoffMs(0, 500, 30_000, () => 0.999_999)).toBeCloseTo(600, 3);
  });
});
