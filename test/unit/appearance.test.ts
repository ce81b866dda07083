import { describe, expect, it } from "vitest";
import { detectionsFrom } from "../../worker/detections.ts";
import { letterboxParams } from "../../worker/infer/letterbox.ts";
import { APPEARANCE_DIMS, appearanceDistance, describeBoxes } from "../../worker/track/appearance.ts";

const SIZE = 64;
// Bins per part: 8 hues (red = 0, ..., blue = 5 of 8), then dark, mid grey, bright grey.
const PART = APPEARANCE_DIMS / 2;
const RED = 0;
const BLUE = 5;
const BRIGHT = 10;

/** A SIZE × SIZE RGB frame, grey 114 (the letterbox pad) except for the painted rectangles. */
const paint = (...rects: { x0: number; y0: number; x1: number; y1: number; rgb: [number, number, number] }[]) => {
  const img = new Uint8Array(SIZE * SIZE * 3).fill(114);
  for (const r of rects)
    for (let y = r.y0; y < r.y1; y++) for (let x = r.x0; x < r.x1; x++) img.set(r.rgb, (y * SIZE + x) * 3);
  return img;
};

describe("describeBoxes", () => {
  // A source frame as big as the model input: scale 1, no padding, so boxes map 1:1.
  const lb = letterboxParams(SIZE, SIZE, SIZE);

  it("puts the torso's and the legs' colours in their own parts, leaving out the box's sides", () => {
    // A 20 × 40 person at (10, 10): red shirt (rows 10-30), blue trousers (rows 30-50), white background beside.
    const img = paint(
      { x0: 0, y0: 0, x1: SIZE, y1: SIZE, rgb: [250, 250, 250] },
      { x0: 14, y0: 10, x1: 26, y1: 30, rgb: [200, 20, 20] },
      { x0: 14, y0: 30, x1: 26, y1: 50, rgb: [20, 20, 200] },
    );
    const dets = detectionsFrom([{ box: [10, 10, 30, 50], score: 0.9, classId: 0 }]);
    const f = describeBoxes(img, { width: SIZE, height: SIZE }, lb, dets);
    // Sampled: columns 14-26 (20-80 % of the width) and rows 16-30 / 30-44 (15-50 %, 50-85 % of the height).
    expect(f[RED]).toBeCloseTo(1, 6);
    expect(f[PART + BLUE]).toBeCloseTo(1, 6);
    expect(f[BRIGHT]).toBe(0);
  });

  it("measures 0 between equal colours and 1 between disjoint ones", () => {
    const img = paint(
      { x0: 0, y0: 0, x1: 20, y1: 40, rgb: [200, 20, 20] },
      { x0: 30, y0: 0, x1: 50, y1: 40, rgb: [200, 20, 20] },
      { x0: 0, y0: 40, x1: 20, y1: 64, rgb: [20, 20, 200] },
    );
    const dets = detectionsFrom([
      { box: [0, 0, 20, 40], score: 0.9, classId: 0 },
      { box: [30, 0, 50, 40], score: 0.9, classId: 0 },
      { box: [0, 40, 20, 64], score: 0.9, classId: 0 },
    ]);
    const f = describeBoxes(img, { width: SIZE, height: SIZE }, lb, dets);
    expect(appearanceDistance(f, 0, f, 1)).toBeCloseTo(0, 6);
    expect(appearanceDistance(f, 0, f, 2)).toBeCloseTo(1, 6);
  });
});
