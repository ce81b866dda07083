import { describe, expect, it } from "vitest";
import { boxAt, type Detections, detectionsFrom, emptyDetections } from "../../worker/detections.ts";
import { nms } from "../../worker/infer/nms.ts";

type Box = [number, number, number, number];
const det = (box: Box, score: number, classId = 0, trackId = 0) => ({ box, score, classId, trackId });
const scores = (d: Detections) => Array.from(d.score, (s) => Number(s.toFixed(4)));

describe("nms", () => {
  it("suppresses an overlapping lower-scoring box of the same class and keeps the higher score", () => {
    // IoU of these two: 80*80 / (100*100*2 - 80*80) = 0.4706 > 0.45.
    const d = detectionsFrom([
      det([10, 10, 110, 110], 0.7),
      det([30, 30, 130, 130], 0.9),
      det([500, 500, 600, 600], 0.5),
    ]);
    const out = nms(d);
    expect(out.length).toBe(2);
    expect(scores(out)).toEqual([0.9, 0.5]);
    expect(boxAt(out, 0)).toEqual([30, 30, 130, 130]);
    expect(boxAt(out, 1)).toEqual([500, 500, 600, 600]);
  });

  it("uses a strict IoU threshold that callers can change", () => {
    // IoU exactly 1/3: 100x100 boxes overlapping by 50 px along x.
    const d = detectionsFrom([det([0, 0, 100, 100], 0.9), det([50, 0, 150, 100], 0.8)]);
    expect(nms(d).length).toBe(2); // default 0.45
    expect(nms(d, { iouThreshold: 0.3 }).length).toBe(1);
    expect(nms(d, { iouThreshold: 1 / 3 }).length).toBe(2); // equal is not above
  });

  it("keeps overlapping boxes of different classes", () => {
    const d = detectionsFrom([
      det([10, 10, 110, 110], 0.9, 0), // person
      det([12, 12, 112, 112], 0.8, 2), // car, same place
      det([11, 11, 111, 111], 0.7, 0), // duplicate person: suppressed
    ]);
    const out = nms(d);
    expect(out.length).toBe(2);
    expect(Array.from(out.classId)).toEqual([0, 2]);
    expect(scores(out)).toEqual([0.9, 0.8]);
  });

  it("returns boxes sorted by score with every field carried", () => {
    const d = detectionsFrom([
      det([0, 0, 10, 10], 0.3, 1, 7),
      det([100, 0, 110, 10], 0.95, 4, 8),
      det([200, 0, 210, 10], 0.6, 1, 9),
    ]);
    const out = nms(d);
    expect(scores(out)).toEqual([0.95, 0.6, 0.3]);
    expect(Array.from(out.classId)).toEqual([4, 1, 1]);
    expect(Array.from(out.trackId)).toEqual([8, 9, 7]);
    expect(boxAt(out, 1)).toEqual([200, 0, 210, 10]);
    expect(out.xyxy.length).toBe(12);
  });

  it("respects maxDetections, keeping the best", () => {
    const items = Array.from({ length: 50 }, (_, i) => det([i * 20, 0, i * 20 + 10, 10], (i + 1) / 100));
    const d = detectionsFrom(items);
    const out = nms(d, { maxDetections: 5 });
    expect(out.length).toBe(5);
    expect(scores(out)).toEqual([0.5, 0.49, 0.48, 0.47, 0.46]);
    expect(nms(d).length).toBe(50); // default 300
    expect(nms(d, { maxDetections: 0 }).length).toBe(0);
  });

  it("lets a suppressed box not suppress others (greedy chain)", () => {
    // B overlaps A and C, A and C do not overlap: A kills B, so C survives.
    const d = detectionsFrom([det([0, 0, 100, 100], 0.9), det([20, 0, 120, 100], 0.8), det([90, 0, 190, 100], 0.7)]);
    expect(scores(nms(d))).toEqual([0.9, 0.7]);
  });

  it("breaks score ties by input order and ignores NaN scores", () => {
    const d = detectionsFrom([
      det([0, 0, 10, 10], 0.5, 0, 1),
      det([100, 0, 110, 10], Number.NaN, 0, 2),
      det([200, 0, 210, 10], 0.5, 0, 3),
    ]);
    const out = nms(d);
    expect(Array.from(out.trackId)).toEqual([1, 3]);
  });

  it("handles empty and degenerate input", () => {
    expect(nms(emptyDetections(4)).length).toBe(0);
    const d = detectionsFrom([det([5, 5, 5, 5], 0.9), det([5, 5, 5, 5], 0.8)]);
    expect(nms(d).length).toBe(2); // zero-area boxes have no IoU to suppress with
  });

  it("rejects invalid options", () => {
    const d = detectionsFrom([det([0, 0, 1, 1], 1)]);
    expect(() => nms(d, { iouThreshold: 1.5 })).toThrow(/iouThreshold/);
    expect(() => nms(d, { maxDetections: -1 })).toThrow(/maxDetections/);
  });

  it("matches a brute-force reference on random boxes", () => {
    let seed = 42;
    const rand = () => {
      seed = (seed * 1664525 + 1013904223) >>> 0;
      return seed / 2 ** 32;
    };
    const items = Array.from({ length: 400 }, () => {
      const x = rand() * 200;
      const y = rand() * 200;
      return det([x, y, x + 20 + rand() * 80, y + 20 + rand() * 80], rand(), Math.floor(rand() * 3));
    });
    const d = detectionsFrom(items);
    const out = nms(d, { iouThreshold: 0.5, maxDetections: 1000 });

    // Reference: sort, then each box is kept unless a kept same-class box overlaps it by IoU > 0.5.
    const iou = (a: Box, b: Box) => {
      const iw = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
      const ih = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
      const inter = iw * ih;
      return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
    };
    const sorted = items
      .map((_, i) => ({ i, box: boxAt(d, i), score: d.score[i]!, cls: d.classId[i]! }))
      .sort((a, b) => b.score - a.score || a.i - b.i);
    const keep: typeof sorted = [];
    for (const s of sorted) if (!keep.some((k) => k.cls === s.cls && iou(k.box, s.box) > 0.5)) keep.push(s);

    expect(out.length).toBe(keep.length);
    expect(out.length).toBeLessThan(400);
    keep.forEach((k, j) => {
      expect(boxAt(out, j)).toEqual(k.box);
      expect(out.classId[j]).toBe(k.cls);
    });
  });
});
