import { describe, expect, it } from "vitest";
import { type Detections, detectionsFrom } from "../../worker/detections.ts";
import { APPEARANCE_DIMS } from "../../worker/track/appearance.ts";
import { createTracker, minCostMatching, type Tracker } from "../../worker/track/bytetrack.ts";

const PERSON = 0;
const CAR = 2;
const FRAME_MS = 1000 / 30;

type Obj = { x: number; y: number; w?: number; h?: number; score?: number; classId?: number };

/** A person-sized box with its top-left corner at (x, y). */
const det = ({ x, y, w = 50, h = 120, score = 0.9, classId = PERSON }: Obj) => ({
  box: [x, y, x + w, y + h] as [number, number, number, number],
  score,
  classId,
});

const frame = (...objs: Obj[]): Detections => detectionsFrom(objs.map(det));

const ids = (d: Detections) => Array.from(d.trackId.subarray(0, d.length));

/** Track id of the output detection whose box starts nearest to x (the output keeps input order, but be explicit). */
const idNear = (d: Detections, x: number): number | undefined => {
  let best: number | undefined;
  let bestDist = Number.POSITIVE_INFINITY;
  for (let i = 0; i < d.length; i++) {
    const dist = Math.abs((d.xyxy[i * 4] as number) - x);
    if (dist < bestDist) {
      bestDist = dist;
      best = d.trackId[i];
    }
  }
  return best;
};

/** Runs `n` frames of a person walking at `vx` px/frame and returns the id it had on each frame. */
const walk = (tr: Tracker, n: number, vx: number, from = 0, t0 = 0): number[] => {
  const seen: number[] = [];
  for (let f = 0; f < n; f++)
    seen.push(...ids(tr.update(frame({ x: 100 + vx * (from + f), y: 200 }), t0 + f * FRAME_MS)));
  return seen;
};

describe("ByteTrack tracker", () => {
  it("keeps one id for a person moving at constant velocity over 30 frames", () => {
    const tr = createTracker();
    const out: number[][] = [];
    for (let f = 0; f < 30; f++) out.push(ids(tr.update(frame({ x: 100 + 8 * f, y: 200 + 2 * f }), f * FRAME_MS)));
    // Tentative in the first frame (minHits = 2), confirmed from the second on.
    expect(out[0]).toEqual([]);
    const id = out[1]?.[0];
    expect(id).toBeGreaterThan(0);
    for (const o of out.slice(1)) expect(o).toEqual([id]);
    const [view] = tr.tracks();
    expect(view).toMatchObject({
      id,
      state: "confirmed",
      hits: 30,
      age: 29,
      firstSeenMs: 0,
      lastSeenMs: 29 * FRAME_MS,
    });
    // The motion model has learned the speed: 8 px/frame at 30 fps = 240 px/s.
    expect(view?.velocity[0]).toBeCloseTo(240, -1);
    expect(view?.velocity[1]).toBeCloseTo(60, -1);
  });

  it("keeps ids through two people crossing paths at different speeds", () => {
    const tr = createTracker();
    // A walks right at 9 px/frame, B walks left at 4 px/frame, 3 px lower; they overlap for several frames.
    const a = (f: number) => ({ x: 100 + 9 * f, y: 200 });
    const b = (f: number) => ({ x: 500 - 4 * f, y: 203 });
    let idA: number | undefined;
    let idB: number | undefined;
    let overlapped = 0;
    for (let f = 0; f < 60; f++) {
      // Alternate the input order so the result cannot lean on it.
      const out = tr.update(f % 2 ? frame(a(f), b(f)) : frame(b(f), a(f)), f * FRAME_MS);
      if (f === 0) continue;
      const gotA = idNear(out, a(f).x);
      const gotB = idNear(out, b(f).x);
      if (Math.abs(a(f).x - b(f).x) < 25) overlapped++;
      if (f === 1) {
        idA = gotA;
        idB = gotB;
        expect(idA).not.toBe(idB);
        continue;
      }
      // While the boxes nearly coincide idNear cannot tell them apart; judge identity only once they are separable.
      if (Math.abs(a(f).x - b(f).x) < 25) continue;
      expect(out.length).toBe(2);
      expect([gotA, gotB]).toEqual([idA, idB]);
    }
    expect(overlapped).toBeGreaterThan(0);
  });

  it("brings the same id back after a 5-frame occlusion while the person keeps moving", () => {
    const tr = createTracker();
    const before = walk(tr, 10, 6);
    const id = before.at(-1);
    expect(id).toBeGreaterThan(0);
    // Frames 10-14: nothing detected, the person keeps walking behind the occluder.
    for (let f = 10; f < 15; f++) expect(tr.update(frame(), f * FRAME_MS).length).toBe(0);
    expect(tr.tracks()).toMatchObject([{ id, state: "lost" }]);
    // By frame 15 the box has moved 36 px from where it was last seen: IoU with the last-seen box is well below 0.3,
    // so only the motion prediction can match it.
    const after = walk(tr, 5, 6, 15, 15 * FRAME_MS);
    expect(after).toEqual([id, id, id, id, id]);
    expect(tr.tracks()).toMatchObject([{ id, state: "confirmed" }]);
  });

  it("creates no confirmed track from a one-off or low-score detection", () => {
    const tr = createTracker();
    // Above highThresh but below newTrackThresh: cannot start a track at all.
    expect(tr.update(frame({ x: 100, y: 100, score: 0.55 }), 0).length).toBe(0);
    expect(tr.tracks()).toEqual([]);
    // Low score, repeatedly: never starts a track either.
    for (let f = 1; f < 5; f++) expect(tr.update(frame({ x: 100, y: 100, score: 0.2 }), f * FRAME_MS).length).toBe(0);
    expect(tr.tracks()).toEqual([]);
    // A confident detection seen once: tentative, not reported, and gone when the next frame lacks it.
    expect(tr.update(frame({ x: 300, y: 100, score: 0.95 }), 5 * FRAME_MS).length).toBe(0);
    expect(tr.tracks()).toMatchObject([{ state: "tentative", hits: 1 }]);
    expect(tr.update(frame(), 6 * FRAME_MS).length).toBe(0);
    expect(tr.tracks()).toEqual([]);
  });

  it("removes a track lost beyond the buffer, and a new detection there gets a new id", () => {
    const tr = createTracker({ trackBufferFrames: 30 });
    const id = walk(tr, 5, 0).at(-1);
    expect(id).toBeGreaterThan(0);
    let f = 5;
    for (; f < 5 + 30; f++) tr.update(frame(), f * FRAME_MS);
    // 30 missed frames: still within the buffer.
    expect(tr.tracks()).toMatchObject([{ id, state: "lost" }]);
    tr.update(frame(), f++ * FRAME_MS);
    expect(tr.tracks()).toEqual([]);
    const again = walk(tr, 3, 0, 0, f * FRAME_MS);
    expect(again.length).toBe(2);
    expect(again[0]).toBeGreaterThan(id as number);
    expect(again[1]).toBe(again[0]);
  });

  it("re-finds a stationary lost track within the buffer", () => {
    const tr = createTracker();
    const id = walk(tr, 5, 0).at(-1);
    for (let f = 5; f < 25; f++) tr.update(frame(), f * FRAME_MS);
    expect(ids(tr.update(frame({ x: 100, y: 200 }), 25 * FRAME_MS))).toEqual([id]);
  });

  it("continues an existing track with low-score detections (second association)", () => {
    const tr = createTracker();
    const id = walk(tr, 5, 5).at(-1);
    for (let f = 5; f < 12; f++) {
      const out = tr.update(frame({ x: 100 + 5 * f, y: 200, score: 0.2 }), f * FRAME_MS);
      expect(ids(out)).toEqual([id]);
      expect(out.score[0]).toBeCloseTo(0.2);
    }
    expect(tr.tracks()).toMatchObject([{ id, state: "confirmed", hits: 12 }]);
  });

  it("does not revive a lost track from a low-score detection", () => {
    const tr = createTracker();
    walk(tr, 5, 0);
    tr.update(frame(), 5 * FRAME_MS);
    expect(tr.update(frame({ x: 100, y: 200, score: 0.2 }), 6 * FRAME_MS).length).toBe(0);
    expect(tr.tracks()).toMatchObject([{ state: "lost" }]);
  });

  it("never matches across classes", () => {
    const tr = createTracker();
    const personId = walk(tr, 5, 0).at(-1);
    // Same box, now classified as a car: the person track goes lost and a car track starts.
    expect(tr.update(frame({ x: 100, y: 200, classId: CAR }), 5 * FRAME_MS).length).toBe(0);
    expect(tr.tracks().map((t) => [t.classId, t.state])).toEqual([
      [PERSON, "lost"],
      [CAR, "tentative"],
    ]);
    const out = tr.update(frame({ x: 100, y: 200, classId: CAR }), 6 * FRAME_MS);
    expect(out.length).toBe(1);
    expect(out.classId[0]).toBe(CAR);
    expect(out.trackId[0]).not.toBe(personId);
    // Low-score detections do not cross classes either.
    const tr2 = createTracker();
    walk(tr2, 5, 0);
    expect(tr2.update(frame({ x: 100, y: 200, score: 0.3, classId: CAR }), 5 * FRAME_MS).length).toBe(0);
  });

  it("matches across variable frame intervals using the timestamps", () => {
    const tr = createTracker();
    // 300 px/s; frames arrive irregularly as the motion gate skips some. The longest gap (500 ms) moves the box 150 px,
    // three box widths, so only a time-aware prediction can match.
    const gaps = [33, 33, 33, 33, 33, 100, 33, 200, 33, 500, 33, 66, 300, 33];
    let t = 0;
    const seen: number[] = [];
    for (const [i, g] of gaps.entries()) {
      if (i > 0) t += g;
      seen.push(...ids(tr.update(frame({ x: 100 + 0.3 * t, y: 200 }), t)));
    }
    expect(seen.length).toBe(gaps.length - 1);
    expect(new Set(seen).size).toBe(1);
    expect(tr.tracks()[0]?.velocity[0]).toBeCloseTo(300, -1);
  });

  it("issues positive, increasing ids that are never reused", () => {
    const tr = createTracker({ trackBufferFrames: 2 });
    const all: number[] = [];
    let t = 0;
    for (let round = 0; round < 4; round++) {
      // Two people appear for 3 frames, then vanish long enough to be removed.
      for (let f = 0; f < 3; f++) all.push(...ids(tr.update(frame({ x: 100, y: 100 }, { x: 400, y: 100 }), t++ * 33)));
      for (let f = 0; f < 4; f++) tr.update(frame(), t++ * 33);
      expect(tr.tracks()).toEqual([]);
    }
    const distinct = [...new Set(all)];
    expect(distinct.length).toBe(8);
    expect(distinct.every((id) => id > 0)).toBe(true);
    expect(distinct).toEqual([...distinct].sort((x, y) => x - y));
  });

  it("does not modify the input detections", () => {
    const tr = createTracker({ minHits: 1 });
    const input = frame({ x: 10, y: 10 });
    const out = tr.update(input, 0);
    expect(ids(out)).toEqual([1]);
    expect(input.trackId[0]).toBe(0);
  });
});

describe("minCostMatching", () => {
  it("finds the optimal assignment where greedy best-first would not", () => {
    // Greedy takes (0,0)=0.1 and is left with (1,1)=0.9, total 1.0; optimal is (0,1)+(1,0) = 0.2 + 0.3.
    const cost = Float64Array.from([0.1, 0.2, 0.3, 0.9]);
    const pairs = minCostMatching(cost, 2, 2, 1);
    expect(pairs.sort()).toEqual([
      [0, 1],
      [1, 0],
    ]);
  });

  it("leaves pairs above the limit unmatched and handles rectangular matrices both ways", () => {
    const inf = Number.POSITIVE_INFINITY;
    // 3 rows x 2 cols; row 1 has only an over-limit option.
    const tall = Float64Array.from([0.2, inf, 0.8, inf, inf, 0.1]);
    expect(minCostMatching(tall, 3, 2, 0.7).sort()).toEqual([
      [0, 0],
      [2, 1],
    ]);
    const wide = Float64Array.from([inf, 0.3, 0.2, inf, inf, inf]);
    expect(minCostMatching(wide, 2, 3, 0.7)).toEqual([[0, 2]]);
    expect(minCostMatching(new Float64Array(0), 0, 3, 0.7)).toEqual([]);
  });
});

describe("ByteTrack tracker at low sample rates", () => {
  const SECOND = 1000;
  /** One sample per second of a person walking right at `vx` px/s (person boxes are 50 × 120). */
  const sampled = (tr: Tracker, n: number, vx: number, t0 = 0, x0 = 100): number[][] =>
    Array.from({ length: n }, (_, k) => ids(tr.update(frame({ x: x0 + vx * k, y: 200 }), t0 + k * SECOND)));

  it("keeps one id when a person moves more than their width between samples (the motion gate)", () => {
    // 60 px/s = 0.5 box heights per second, a normal walk; 60 px per sample is more than the 50 px width, so
    // consecutive boxes do not overlap at all.
    const tr = createTracker();
    const out = sampled(tr, 8, 60);
    expect(out[0]).toEqual([]);
    const id = out[1]?.[0] as number;
    expect(id).toBeGreaterThan(0);
    for (const o of out.slice(1)) expect(o).toEqual([id]);
    // IoU alone (the behaviour before) cannot hold it: every sample is a new tentative track, none confirmed.
    const plain = createTracker({ gateSpeed: 0, inertia: 0 });
    expect(sampled(plain, 8, 60).flat()).toEqual([]);
  });

  it("widens the gate with the time between samples, not per update", () => {
    // The same 60 px jumps every 100 ms are 5 heights per second, faster than anyone walks: the gate there is
    // 0.1 + 1.2 · 0.1 = 0.22 heights (26 px), so nothing is matched and no track is confirmed.
    const tr = createTracker();
    for (let k = 0; k < 6; k++) expect(tr.update(frame({ x: 100 + 60 * k, y: 200 }), k * 100).length).toBe(0);
  });

  it("does not gate a detection of a very different height", () => {
    const tr = createTracker();
    const id = sampled(tr, 3, 60).at(-1)?.[0];
    expect(id).toBeGreaterThan(0);
    // 55 px beyond where the walk predicts (no overlap, well inside the gate), but 1.5 × as tall
    // (|ln 1.5| = 0.41 > gateLogHeight 0.3): not this person.
    const twin = createTracker();
    const twinId = sampled(twin, 3, 60).at(-1)?.[0];
    expect(tr.update(frame({ x: 100 + 60 * 3 + 55, y: 140, h: 180 }), 3 * SECOND).length).toBe(0);
    expect(tr.tracks().map((t) => t.state)).toEqual(["lost", "tentative"]);
    // The same box at the person's height is matched.
    expect(ids(twin.update(frame({ x: 100 + 60 * 3 + 55, y: 200 }), 3 * SECOND))).toEqual([twinId]);
  });

  it("re-finds a track after a short miss within one interval's gate, not after a long one", () => {
    const tr = createTracker();
    const id = sampled(tr, 5, 60).at(-1)?.[0];
    // One sample missed: at 6 s the person is 120 px further on; the prediction carries the velocity.
    expect(tr.update(frame(), 5 * SECOND).length).toBe(0);
    expect(ids(tr.update(frame({ x: 100 + 60 * 6, y: 200 }), 6 * SECOND))).toEqual([id]);
    // Five samples missed (more than gateMissed = 4): a lost track is then only re-found by overlap, and 60 px off
    // the prediction there is none, so the detection starts a new track.
    for (let k = 7; k < 12; k++) tr.update(frame(), k * SECOND);
    tr.update(frame({ x: 100 + 60 * 12 + 60, y: 200 }), 12 * SECOND);
    const next = ids(tr.update(frame({ x: 100 + 60 * 13 + 60, y: 200 }), 13 * SECOND));
    expect(next.length).toBe(1);
    expect(next[0]).toBeGreaterThan(id as number);
  });

  it("prefers the detection that continues the observed direction of travel (OC-SORT momentum)", () => {
    // A person walks right, 100 px per 1 s sample. At the next sample there are two candidates, both beyond IoU:
    // ahead of the prediction by d + 10 px, and behind it by d px, behind where the person was last seen. The
    // motion cost alone prefers the nearer one, behind; momentum prefers the one that does not turn back.
    const run = (inertia?: number) => {
      const tr = createTracker(inertia === undefined ? {} : { inertia });
      sampled(tr, 3, 100);
      const [t] = tr.tracks();
      const cx = ((t?.box[0] as number) + (t?.box[2] as number)) / 2;
      const last = 100 + 200 + 25; // centre of the last detection
      const predicted = cx + (t?.velocity[0] as number);
      const d = predicted - last + 40; // the rear candidate's centre is 40 px behind the last one
      const ahead = predicted + d + 10;
      const behind = predicted - d;
      const out = tr.update(frame({ x: ahead - 25, y: 200 }, { x: behind - 25, y: 200 }), 3 * SECOND);
      // Only the matched box is reported (the other starts a tentative track): which one is it?
      expect(ids(out)).toEqual([t?.id]);
      return (out.xyxy[0] as number) + 25;
    };
    const ahead = run();
    const behind = run(0);
    expect(ahead).toBeGreaterThan(behind + 200);
  });
});

describe("ByteTrack tracker with appearance descriptors", () => {
  /** A descriptor with all of each part's mass in one bin. */
  const colour = (bin: number) => {
    const f = new Float32Array(APPEARANCE_DIMS);
    f[bin] = 1;
    f[APPEARANCE_DIMS / 2 + bin] = 1;
    return f;
  };
  const feats = (...f: Float32Array[]) => {
    const out = new Float32Array(f.length * APPEARANCE_DIMS);
    f.forEach((x, i) => {
      out.set(x, i * APPEARANCE_DIMS);
    });
    return out;
  };

  it("vetoes a match whose colours differ beyond appearanceGate, and ignores colours by default", () => {
    const run = (opts: Parameters<typeof createTracker>[0]) => {
      const tr = createTracker(opts);
      let id: number[] = [];
      for (let f = 0; f < 5; f++) id = ids(tr.update(frame({ x: 100, y: 200 }), f * FRAME_MS, feats(colour(0))));
      // Same place, other clothes.
      return { before: id[0], after: ids(tr.update(frame({ x: 100, y: 200 }), 5 * FRAME_MS, feats(colour(3)))) };
    };
    const gated = run({ appearanceGate: 0.25 });
    expect(gated.after).toEqual([]); // the old track goes lost, the box starts a tentative one
    const plain = run({});
    expect(plain.after).toEqual([plain.before]);
  });

  it("ranks two candidates by colour when appearanceWeight is set", () => {
    const tr = createTracker({ appearanceWeight: 1 });
    let id = 0;
    for (let f = 0; f < 5; f++) id = ids(tr.update(frame({ x: 100, y: 200 }), f * FRAME_MS, feats(colour(0))))[0] ?? 0;
    // The nearer box has other colours; the one 10 px further has the track's.
    const out = tr.update(frame({ x: 102, y: 200 }, { x: 112, y: 200 }), 5 * FRAME_MS, feats(colour(3), colour(0)));
    expect(idNear(out, 112)).toBe(id);
  });
});
