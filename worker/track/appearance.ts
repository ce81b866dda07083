// A cheap appearance descriptor per box: a colour histogram of the torso and one of the legs, taken from the
// letterboxed RGB frame the model already has (DeepSORT's idea, with a histogram instead of a re-id network).
// Clothes colours are what tells two people apart when they cross; the head, the sides of the box (mostly
// background) and the feet (floor, shadow) are left out.
import type { Detections } from "../detections.ts";
import type { InputShape, LetterboxParams } from "../infer/letterbox.ts";

// Per part: HUE_BINS hues for coloured pixels, then GREY_BINS value levels for pixels too grey or too dark to have a
// hue (most clothes in a street are black, grey or white, so the grey levels carry much of the signal).
const HUE_BINS = 8;
const GREY_BINS = 3;
const PART_BINS = HUE_BINS + GREY_BINS;
const PARTS = 2;
/** Floats per box. */
export const APPEARANCE_DIMS = PARTS * PART_BINS;
// Saturation (max - min) / max below this, or max below DARK, counts as grey.
const MIN_SAT = 0.25;
const DARK = 50;
// The region sampled, as fractions of the box: the middle 60 % of the width; torso 15-50 % and legs 50-85 % of the
// height from the top.
const X0 = 0.2;
const X1 = 0.8;
const ROWS: readonly [number, number][] = [
  [0.15, 0.5],
  [0.5, 0.85],
];

/**
 * Writes each detection's descriptor (APPEARANCE_DIMS floats, each part summing to 1, or all 0 for a part with no
 * pixels) into `out` at i * APPEARANCE_DIMS. `rgb` is the letterboxed frame (the model's shape, ×3), boxes are in source pixels.
 */
export function describeBoxes(
  rgb: Uint8Array,
  shape: InputShape,
  lb: LetterboxParams,
  dets: Detections,
  out: Float32Array = new Float32Array(dets.length * APPEARANCE_DIMS),
): Float32Array {
  out.fill(0, 0, dets.length * APPEARANCE_DIMS);
  for (let i = 0; i < dets.length; i++) {
    const x1 = (dets.xyxy[i * 4] as number) * lb.scale + lb.padX;
    const y1 = (dets.xyxy[i * 4 + 1] as number) * lb.scale + lb.padY;
    const x2 = (dets.xyxy[i * 4 + 2] as number) * lb.scale + lb.padX;
    const y2 = (dets.xyxy[i * 4 + 3] as number) * lb.scale + lb.padY;
    const w = x2 - x1;
    const h = y2 - y1;
    const cx0 = clamp(Math.round(x1 + X0 * w), shape.width);
    const cx1 = clamp(Math.round(x1 + X1 * w), shape.width);
    for (let p = 0; p < PARTS; p++) {
      const [f0, f1] = ROWS[p] as [number, number];
      const r0 = clamp(Math.round(y1 + f0 * h), shape.height);
      const r1 = clamp(Math.round(y1 + f1 * h), shape.height);
      const base = i * APPEARANCE_DIMS + p * PART_BINS;
      let n = 0;
      for (let y = r0; y < r1; y++) {
        let k = (y * shape.width + cx0) * 3;
        for (let x = cx0; x < cx1; x++, k += 3) {
          const j = base + bin(rgb[k] as number, rgb[k + 1] as number, rgb[k + 2] as number);
          out[j] = (out[j] as number) + 1;
          n++;
        }
      }
      if (n > 0) for (let b = 0; b < PART_BINS; b++) out[base + b] = (out[base + b] as number) / n;
    }
  }
  return out;
}

const clamp = (v: number, size: number) => Math.min(size, Math.max(0, v));

function bin(r: number, g: number, b: number): number {
  const max = Math.max(r, g, b);
  const min = Math.min(r, g, b);
  if (max < DARK) return HUE_BINS;
  if (max - min < MIN_SAT * max) return HUE_BINS + (max < 140 ? 1 : 2);
  const d = max - min;
  let hue: number; // in [0, 6)
  if (max === r) hue = (g - b) / d + (g < b ? 6 : 0);
  else if (max === g) hue = (b - r) / d + 2;
  else hue = (r - g) / d + 4;
  return Math.min(HUE_BINS - 1, Math.floor((hue / 6) * HUE_BINS));
}

/**
 * 1 - the Bhattacharyya coefficient of two descriptors, averaged over the parts both have pixels for: 0 for the
 * same colours, 1 for disjoint ones. NaN when no part is comparable.
 */
export function appearanceDistance(a: Float32Array, ai: number, b: Float32Array, bi: number): number {
  let sum = 0;
  let parts = 0;
  for (let p = 0; p < PARTS; p++) {
    const oa = ai * APPEARANCE_DIMS + p * PART_BINS;
    const ob = bi * APPEARANCE_DIMS + p * PART_BINS;
    let bc = 0;
    let ma = 0;
    let mb = 0;
    for (let k = 0; k < PART_BINS; k++) {
      const va = a[oa + k] as number;
      const vb = b[ob + k] as number;
      bc += Math.sqrt(va * vb);
      ma += va;
      mb += vb;
    }
    if (ma === 0 || mb === 0) continue;
    sum += 1 - bc / Math.sqrt(ma * mb);
    parts++;
  }
  return parts > 0 ? sum / parts : Number.NaN;
}
