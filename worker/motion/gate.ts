// Adaptive detection: skip inference on frames where nothing moved. Cheap frame differencing on a small grey
// thumbnail of the (already letterboxed) frame, against the last frame that went to inference, so slow drift
// still adds up to "motion". A still scene is re-checked at least every maxSkipMs, so a person standing still
// is not lost.

import type { InputShape } from "../infer/letterbox.ts";

export type MotionGateOptions = {
  /** Fraction of thumbnail pixels that must change to count as motion (0..1). */
  threshold: number;
  /** Re-run inference at least this often even without motion. */
  maxSkipMs: number;
  /** Grey level difference (0..255) for a pixel to count as changed; filters sensor noise. */
  pixelDelta?: number;
  /** Thumbnail side; the frame is sampled on a grid of this many points per side (across and down). */
  thumbSide?: number;
};

export type MotionGate = {
  /** True when this frame should go to inference. */
  check(rgb: Uint8Array, shape: InputShape, timestampMs: number): boolean;
  readonly stats: { frames: number; skipped: number; lastChangedFraction: number };
};

export function createMotionGate(opts: MotionGateOptions): MotionGate {
  const thumbSide = opts.thumbSide ?? 64;
  const pixelDelta = opts.pixelDelta ?? 25;
  const thumb = new Uint8Array(thumbSide * thumbSide);
  const reference = new Uint8Array(thumbSide * thumbSide);
  let hasReference = false;
  let lastInferenceMs = Number.NEGATIVE_INFINITY;
  const stats = { frames: 0, skipped: 0, lastChangedFraction: 0 };

  return {
    stats,
    check(rgb, shape, timestampMs) {
      stats.frames++;
      const stepX = shape.width / thumbSide;
      const stepY = shape.height / thumbSide;
      let changed = 0;
      for (let ty = 0; ty < thumbSide; ty++) {
        const row = Math.floor(ty * stepY + stepY / 2) * shape.width;
        for (let tx = 0; tx < thumbSide; tx++) {
          const p = (row + Math.floor(tx * stepX + stepX / 2)) * 3;
          // Integer luma (BT.601), no floats per pixel.
          const y = ((rgb[p] as number) * 77 + (rgb[p + 1] as number) * 150 + (rgb[p + 2] as number) * 29) >> 8;
          const i = ty * thumbSide + tx;
          thumb[i] = y;
          if (Math.abs(y - (reference[i] as number)) > pixelDelta) changed++;
        }
      }
      const fraction = hasReference ? changed / thumb.length : 1;
      stats.lastChangedFraction = fraction;
      const due = timestampMs - lastInferenceMs >= opts.maxSkipMs;
      if (fraction >= opts.threshold || due) {
        reference.set(thumb);
        hasReference = true;
        lastInferenceMs = timestampMs;
        return true;
      }
      stats.skipped++;
      return false;
    },
  };
}
