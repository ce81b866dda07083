// The float path's preprocessing in JS, for models that take float CHW input and could not be given a uint8 input
// (see uint8-input.ts): HWC uint8 RGB → CHW float32 / 255.

import type { InputShape } from "./letterbox.ts";

// A table instead of a division per byte: 1.2M bytes per 640² frame, about twice as fast (measured).
const UNIT = Float32Array.from({ length: 256 }, (_, i) => i / 255);

/** HWC uint8 RGB (already letterboxed by ffmpeg) → CHW float32 / 255, into a reused buffer. */
export function hwcToChw(rgb: Uint8Array, shape: InputShape, out: Float32Array): void {
  const plane = shape.width * shape.height;
  if (rgb.length !== plane * 3)
    throw new Error(`frame has ${rgb.length} bytes, expected ${plane * 3} (${shape.width}×${shape.height} RGB)`);
  for (let i = 0, p = 0; i < plane; i++, p += 3) {
    out[i] = UNIT[rgb[p] as number] as number;
    out[plane + i] = UNIT[rgb[p + 1] as number] as number;
    out[2 * plane + i] = UNIT[rgb[p + 2] as number] as number;
  }
}
