import { describe, expect, it } from "vitest";
import { boxAt, type Detections } from "../../worker/detections.ts";
import { type LetterboxParams, letterboxParams } from "../../worker/infer/letterbox.ts";
import { decodeYolov5, decodeYolov8, detectHead } from "../../worker/infer/yolo.ts";

type Box = [number, number, number, number];

// A 768x576 camera letterboxed into 640: scale 5/6, 80 px of padding above and below.
const SRC_W = 768;
const SRC_H = 576;
const LB = letterboxParams(SRC_W, SRC_H, 640);

/** Source-pixel xyxy to model-input cx, cy, w, h. */
function toModel(lb: LetterboxParams, [x1, y1, x2, y2]: Box): Box {
  const mx1 = x1 * lb.scale + lb.padX;
  const my1 = y1 * lb.scale + lb.padY;
  const mx2 = x2 * lb.scale + lb.padX;
  const my2 = y2 * lb.scale + lb.padY;
  return [(mx1 + mx2) / 2, (my1 + my2) / 2, mx2 - mx1, my2 - my1];
}

function expectBox(d: Detections, i: number, want: Box) {
  const got = boxAt(d, i);
  for (let k = 0; k < 4; k++) expect(got[k]).toBeCloseTo(want[k]!, 2);
}

/** Row index of each class score set per anchor: {anchor: [cxcywh, classScores, objectness?]}. */
type Anchor = { box: Box; scores: number[]; obj?: number };

/** [1, 4+nc, n], channel-major: value of channel c for anchor i at c*n + i. */
function v8Tensor(nc: number, n: number, anchors: Record<number, Anchor>): Float32Array {
  const t = new Float32Array((4 + nc) * n);
  for (const [key, a] of Object.entries(anchors)) {
    const i = Number(key);
    a.box.forEach((v, k) => {
      t[k * n + i] = v;
    });
    a.scores.forEach((v, c) => {
      t[(4 + c) * n + i] = v;
    });
  }
  return t;
}

/** [1, n, 5+nc], row-major. */
function v5Tensor(nc: number, n: number, anchors: Record<number, Anchor>): Float32Array {
  const t = new Float32Array(n * (5 + nc));
  for (const [key, a] of Object.entries(anchors)) {
    const row = Number(key) * (5 + nc);
    t.set(a.box, row);
    t[row + 4] = a.obj ?? 0;
    t.set(a.scores, row + 5);
  }
  return t;
}

describe("detectHead", () => {
  it("recognises the standard 640 exports", () => {
    expect(detectHead([1, 84, 8400])).toBe("yolov8");
    expect(detectHead([1, 25200, 85])).toBe("yolov5");
    // Single-class custom models.
    expect(detectHead([1, 5, 8400])).toBe("yolov8");
    expect(detectHead([1, 25200, 6])).toBe("yolov5");
  });

  it("throws naming the shape when neither head fits", () => {
    expect(() => detectHead([1, 3])).toThrow("[1, 3]");
    expect(() => detectHead([2, 84, 8400])).toThrow("[2, 84, 8400]");
    expect(() => detectHead([1, 84, 84])).toThrow("[1, 84, 84]");
    expect(() => detectHead([1, 4, 8400])).toThrow(/unrecognised YOLO output shape/);
  });
});

describe("decodeYolov8", () => {
  const nc = 3;
  const n = 12;
  const person: Box = [100, 50, 300, 250];
  const car: Box = [400, 300, 500, 500];
  const tensor = v8Tensor(nc, n, {
    1: { box: toModel(LB, person), scores: [0.1, 0.05, 0.9] }, // class 2 @ 0.9
    5: { box: toModel(LB, car), scores: [0.6, 0.2, 0.3] }, // class 0 @ 0.6
    3: { box: toModel(LB, [10, 10, 50, 50]), scores: [0.1, 0.2, 0.05] }, // best 0.2: below threshold
    7: { box: toModel(LB, [200, 200, 260, 300]), scores: [0.5, 0.8, 0] }, // class 1 @ 0.8
    9: { box: toModel(LB, [700, -40, 900, 100]), scores: [0, 0, 0.7] }, // crosses the top-right corner
    // Lies wholly in the top letterbox band (model y 10..70 < padY 80): clips to nothing.
    11: { box: [320, 40, 100, 60], scores: [0.95, 0, 0] },
  });
  const dims = [1, 4 + nc, n];

  it("decodes known boxes to source pixels, classes and scores, dropping weak candidates", () => {
    const d = decodeYolov8(tensor, dims, { minScore: 0.25 }, LB, SRC_W, SRC_H);
    expect(d.length).toBe(4);
    expect(d.xyxy.length).toBe(16);
    expect(Array.from(d.classId)).toEqual([2, 0, 1, 2]); // anchor order
    expect(d.score[0]).toBeCloseTo(0.9, 6);
    expect(d.score[1]).toBeCloseTo(0.6, 6);
    expect(d.score[2]).toBeCloseTo(0.8, 6);
    expect(d.score[3]).toBeCloseTo(0.7, 6);
    expectBox(d, 0, person);
    expectBox(d, 1, car);
    expectBox(d, 2, [200, 200, 260, 300]);
    expectBox(d, 3, [700, 0, SRC_W, 100]); // clipped to the frame
    expect(Array.from(d.trackId)).toEqual([0, 0, 0, 0]);
  });

  it("treats minScore as inclusive", () => {
    const d = decodeYolov8(tensor, dims, { minScore: Math.fround(0.6) }, LB, SRC_W, SRC_H);
    expect(Array.from(d.classId)).toEqual([2, 0, 1, 2]);
    expect(decodeYolov8(tensor, dims, { minScore: 0.61 }, LB, SRC_W, SRC_H).length).toBe(3);
  });

  it("drops filtered classes after the arg-max, not before", () => {
    // Keep classes 0 and 2. Anchor 7's best class is 1 (0.8), so it goes, even though class 0 scores 0.5.
    const d = decodeYolov8(tensor, dims, { minScore: 0.25, classFilter: Uint8Array.of(1, 0, 1) }, LB, SRC_W, SRC_H);
    expect(Array.from(d.classId)).toEqual([2, 0, 2]);
    expectBox(d, 1, car);
    // Only people (class 0 here); the filter is shorter than nc, so class 2 counts as filtered out.
    const only0 = decodeYolov8(tensor, dims, { minScore: 0.25, classFilter: Uint8Array.of(1) }, LB, SRC_W, SRC_H);
    expect(only0.length).toBe(1);
    expect(only0.classId[0]).toBe(0);
    expect(only0.score[0]).toBeCloseTo(0.6, 6);
  });

  it("with few classes wanted, keeps exactly what the full arg-max then the filter keep, ties and NaNs included", () => {
    // 80 classes; each anchor has a few high scores on a coarse grid, so ties between classes are common; some NaNs.
    const k = 80;
    const m = 4000;
    const t = new Float32Array((4 + k) * m);
    let seed = 7;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < 4; j++) t[j * m + i] = j < 2 ? 220 + 200 * rnd() : 40 + 100 * rnd();
      for (let c = 0; c < k; c++) {
        const r = rnd();
        t[(4 + c) * m + i] =
          r < 0.002 ? Number.NaN : r < 0.04 ? (([0.5, 0.75, 1] as const)[Math.floor(rnd() * 3)] as number) : 0.1;
      }
    }
    const d80 = [1, 4 + k, m];
    for (const keep of [[0], [0, 2, 5], [79]]) {
      const filter = new Uint8Array(k);
      for (const c of keep) filter[c] = 1;
      const fast = decodeYolov8(t, d80, { minScore: 0.5, classFilter: filter }, LB, SRC_W, SRC_H);
      const all = decodeYolov8(t, d80, { minScore: 0.5 }, LB, SRC_W, SRC_H);
      const want = Array.from({ length: all.length }, (_, i) => i).filter((i) =>
        keep.includes(all.classId[i] as number),
      );
      expect(fast.length).toBeGreaterThan(5);
      expect(Array.from(fast.classId)).toEqual(want.map((i) => all.classId[i]));
      expect(Array.from(fast.score)).toEqual(want.map((i) => all.score[i]));
      expect(Array.from(fast.xyxy)).toEqual(want.flatMap((i) => Array.from(all.xyxy.subarray(i * 4, i * 4 + 4))));
    }
  });

  it("returns empty Detections when nothing passes", () => {
    const d = decodeYolov8(tensor, dims, { minScore: 0.99 }, LB, SRC_W, SRC_H);
    expect(d.length).toBe(0);
    expect(d.xyxy.length).toBe(0);
  });

  it("keeps results independent of later calls despite reused scratch", () => {
    const a = decodeYolov8(tensor, dims, { minScore: 0.25 }, LB, SRC_W, SRC_H);
    decodeYolov8(new Float32Array(84 * 8400), [1, 84, 8400], { minScore: 0.25 }, LB, SRC_W, SRC_H);
    expect(a.length).toBe(4);
    expectBox(a, 0, person);
  });

  it("rejects shapes that do not match the buffer or the head", () => {
    expect(() => decodeYolov8(tensor, [1, 4 + nc, n + 1], { minScore: 0.25 }, LB, SRC_W, SRC_H)).toThrow(/needs 91/);
    expect(() => decodeYolov8(tensor, [1, 4, 21], { minScore: 0.25 }, LB, SRC_W, SRC_H)).toThrow(/\[1, 4, 21\]/);
  });
});

describe("decodeYolov5", () => {
  const nc = 2;
  const n = 10;
  const person: Box = [10, 20, 110, 220];
  const dog: Box = [300, 100, 420, 180];
  const tensor = v5Tensor(nc, n, {
    0: { box: toModel(LB, person), obj: 0.9, scores: [0.8, 0.1] }, // 0.72, class 0
    4: { box: toModel(LB, dog), obj: 0.5, scores: [0.2, 0.9] }, // 0.45, class 1
    6: { box: toModel(LB, [0, 0, 50, 50]), obj: 0.9, scores: [0.2, 0.1] }, // 0.18: high objectness, weak class
    8: { box: toModel(LB, [50, 50, 90, 90]), obj: 0.2, scores: [1, 0] }, // 0.2: strong class, weak objectness
    9: { box: toModel(LB, [-20, 500, 100, 600]), obj: 1, scores: [0, 0.5] }, // crosses the bottom-left corner
  });
  const dims = [1, n, 5 + nc];

  it("multiplies objectness into the class score and decodes to source pixels", () => {
    const d = decodeYolov5(tensor, dims, { minScore: 0.25 }, LB, SRC_W, SRC_H);
    expect(d.length).toBe(3);
    expect(Array.from(d.classId)).toEqual([0, 1, 1]);
    expect(d.score[0]).toBeCloseTo(0.72, 6);
    expect(d.score[1]).toBeCloseTo(0.45, 6);
    expect(d.score[2]).toBeCloseTo(0.5, 6);
    expectBox(d, 0, person);
    expectBox(d, 1, dog);
    expectBox(d, 2, [0, 500, 100, SRC_H]);
  });

  it("applies the threshold to the product, not to either factor alone", () => {
    const d = decodeYolov5(tensor, dims, { minScore: 0.5 }, LB, SRC_W, SRC_H);
    // 0.45 now falls below; 0.5 is kept (inclusive).
    expect(Array.from(d.classId)).toEqual([0, 1]);
    expect(Array.from(d.score)).toEqual([Math.fround(0.9 * 0.8), Math.fround(0.5)].map((v) => expect.closeTo(v, 6)));
  });

  it("drops filtered classes", () => {
    const d = decodeYolov5(tensor, dims, { minScore: 0.25, classFilter: Uint8Array.of(0, 1) }, LB, SRC_W, SRC_H);
    expect(Array.from(d.classId)).toEqual([1, 1]);
    expectBox(d, 0, dog);
    const none = decodeYolov5(tensor, dims, { minScore: 0.25, classFilter: null }, LB, SRC_W, SRC_H);
    expect(none.length).toBe(3);
  });

  it("decodes a full-size 25200x85 head", () => {
    const big = new Float32Array(25200 * 85);
    const row = 12345 * 85;
    big.set(toModel(LB, person), row);
    big[row + 4] = 0.8;
    big[row + 5 + 17] = 0.9; // COCO "horse"
    const d = decodeYolov5(big, [1, 25200, 85], { minScore: 0.25 }, LB, SRC_W, SRC_H);
    expect(d.length).toBe(1);
    expect(d.classId[0]).toBe(17);
    expect(d.score[0]).toBeCloseTo(0.72, 6);
    expectBox(d, 0, person);
  });
});
