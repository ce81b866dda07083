// Greedy, class-aware non-maximum suppression over Detections (what Ultralytics gets from torchvision's
// batched NMS): a box is dropped only by a higher-scoring kept box of the same class, so a person standing
// in front of a car keeps both detections.

import type { Detections } from "../detections.ts";

export type NmsOptions = {
  /** A box whose IoU with a kept same-class box exceeds this (strictly) is suppressed. Default 0.45. */
  readonly iouThreshold?: number;
  /** At most this many boxes survive, the highest-scoring ones. Default 300. */
  readonly maxDetections?: number;
};

// Score order and the kept set, reused across frames; NMS is synchronous so one set per thread is safe.
let order = new Uint32Array(0);
let kept = new Uint32Array(0);
let keptArea = new Float64Array(0);

/** Returns the surviving detections, highest score first (equal scores keep input order). */
export function nms(d: Detections, opts: NmsOptions = {}): Detections {
  const iouThreshold = opts.iouThreshold ?? 0.45;
  const maxDetections = opts.maxDetections ?? 300;
  if (!(iouThreshold >= 0 && iouThreshold <= 1))
    throw new Error(`nms: iouThreshold must be in [0, 1], got ${iouThreshold}`);
  if (!(Number.isInteger(maxDetections) && maxDetections >= 0)) {
    throw new Error(`nms: maxDetections must be a non-negative integer, got ${maxDetections}`);
  }
  const n = d.length;
  const { xyxy, score, classId } = d;
  if (order.length < n) order = new Uint32Array(n);

  // NaN scores would make the sort comparator inconsistent, and they are not detections anyway.
  let m = 0;
  for (let i = 0; i < n; i++) if (!Number.isNaN(score[i])) order[m++] = i;
  const ord = order.subarray(0, m);
  // `|| a - b` breaks ties (and ±Infinity - ±Infinity = NaN) by index, so the result is deterministic.
  ord.sort((a, b) => (score[b] as number) - (score[a] as number) || a - b);

  const cap = Math.min(m, maxDetections);
  if (kept.length < cap) {
    kept = new Uint32Array(cap);
    keptArea = new Float64Array(cap);
  }
  // Each candidate is tested against the kept boxes only (at most maxDetections), not against every other
  // candidate, and the loop stops once the cap is reached: O(m log m + m·k) with no per-box objects.
  let k = 0;
  for (let r = 0; r < m && k < cap; r++) {
    const i = ord[r] as number;
    const c = classId[i] as number;
    const o = i * 4;
    const ax1 = xyxy[o] as number;
    const ay1 = xyxy[o + 1] as number;
    const ax2 = xyxy[o + 2] as number;
    const ay2 = xyxy[o + 3] as number;
    const area = Math.max(0, ax2 - ax1) * Math.max(0, ay2 - ay1);
    let suppressed = false;
    for (let j = 0; j < k; j++) {
      const p = kept[j] as number;
      if (classId[p] !== c) continue;
      const q = p * 4;
      const iw = Math.min(ax2, xyxy[q + 2] as number) - Math.max(ax1, xyxy[q] as number);
      if (iw <= 0) continue;
      const ih = Math.min(ay2, xyxy[q + 3] as number) - Math.max(ay1, xyxy[q + 1] as number);
      if (ih <= 0) continue;
      const inter = iw * ih;
      // inter/union > t without the division; degenerate boxes have inter 0 and never suppress.
      if (inter > iouThreshold * (area + (keptArea[j] as number) - inter)) {
        suppressed = true;
        break;
      }
    }
    if (!suppressed) {
      kept[k] = i;
      keptArea[k] = area;
      k++;
    }
  }

  const out = {
    length: k,
    xyxy: new Float32Array(k * 4),
    score: new Float32Array(k),
    classId: new Uint16Array(k),
    trackId: new Int32Array(k),
  };
  for (let j = 0; j < k; j++) {
    const i = kept[j] as number;
    // Scalar copies: subarray() would allocate a view per box.
    const o = i * 4;
    const q = j * 4;
    out.xyxy[q] = xyxy[o] as number;
    out.xyxy[q + 1] = xyxy[o + 1] as number;
    out.xyxy[q + 2] = xyxy[o + 2] as number;
    out.xyxy[q + 3] = xyxy[o + 3] as number;
    out.score[j] = score[i] as number;
    out.classId[j] = classId[i] as number;
    out.trackId[j] = d.trackId[i] as number;
  }
  return out;
}
