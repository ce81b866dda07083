// Letterbox geometry matching Ultralytics' LetterBox (auto=False, scaleup=True, centre=True), so boxes decoded
// here land where Ultralytics' own scale_boxes would put them for the same model and frame.
//
// The resize and the padding are not done here: ffmpeg's scale and pad filters (ingest/ffmpeg-source.ts) emit each
// frame as packed rgb24 already letterboxed to the model's shape, in SIMD C far faster than JS could.
// fillInputTensor below does the padding in JS for a square input, into normalised NCHW floats, from a frame ffmpeg
// only scaled: what the worker did before ffmpeg padded, kept with its tests.

/** The model's input in pixels: square for most exports, or a rectangle for rect inference (rect-input.ts). */
export type InputShape = { readonly width: number; readonly height: number };

/** A square input of this side. */
export const square = (side: number): InputShape => ({ width: side, height: side });

export type LetterboxParams = {
  /** Resize gain, min(width/srcW, height/srcH); one gain for both axes, as Ultralytics uses. */
  readonly scale: number;
  /** Left padding in model-input pixels (the right pad is width - newW - padX). */
  readonly padX: number;
  /** Top padding in model-input pixels (the bottom pad is height - newH - padY). */
  readonly padY: number;
  /** Width of the resized content; the width ffmpeg must scale to. */
  readonly newW: number;
  /** Height of the resized content; the height ffmpeg must scale to. */
  readonly newH: number;
};

/** Ultralytics pads with grey 114, which the models were trained on; other values cost accuracy at the borders. */
export const PAD_VALUE = 114;

// A lookup table gives exactly fround(v/255) for every byte, so tensors are bit-identical to a reference
// that divides, with no division in the hot loop.
const NORM = new Float32Array(256);
for (let v = 0; v < 256; v++) NORM[v] = v / 255;
const PAD = NORM[PAD_VALUE] as number;

/** `into` is the model's input shape, or the side of a square one. */
export function letterboxParams(srcW: number, srcH: number, into: InputShape | number): LetterboxParams {
  if (!(Number.isInteger(srcW) && srcW > 0 && Number.isInteger(srcH) && srcH > 0)) {
    throw new Error(`letterbox: source size must be positive integers, got ${srcW}x${srcH}`);
  }
  const { width, height } = typeof into === "number" ? square(into) : into;
  if (!(Number.isInteger(width) && width > 0 && Number.isInteger(height) && height > 0))
    throw new Error(`letterbox: model size must be positive integers, got ${width}x${height}`);
  const scale = Math.min(width / srcW, height / srcH);
  // Math.max(1, …) keeps an extreme aspect ratio from asking ffmpeg for a zero-sized frame.
  const newW = Math.max(1, Math.round(srcW * scale));
  const newH = Math.max(1, Math.round(srcH * scale));
  const dw = (width - newW) / 2;
  const dh = (height - newH) / 2;
  // Ultralytics: top = round(dh - 0.1), bottom = round(dh + 0.1). The ±0.1 makes an odd total pad put the
  // extra pixel on the bottom/right without relying on Python's banker's rounding; dw is a whole or half
  // number, so dw - 0.1 is never a tie and Math.round agrees with Python's round here.
  // Math.max turns the -0 that Math.round(-0.1) gives for a zero pad into a plain 0.
  const padX = Math.max(0, Math.round(dw - 0.1));
  const padY = Math.max(0, Math.round(dh - 0.1));
  return { scale, padX, padY, newW, newH };
}

/** Maps a model-input pixel coordinate back to source pixels; not clipped, so callers decide how to clip. */
export function toSource(params: LetterboxParams, x: number, y: number): [number, number] {
  return [(x - params.padX) / params.scale, (y - params.padY) / params.scale];
}

/**
 * Writes the letterboxed model input into `out` (NCHW, RGB, values/255) from an rgb24 frame that ffmpeg has
 * already scaled to newW×newH. Every pixel of `out` is written, so a reused tensor never leaks a previous frame.
 */
export function fillInputTensor(rgb: Uint8Array, params: LetterboxParams, size: number, out: Float32Array): void {
  const { newW, newH, padX, padY } = params;
  if (rgb.length !== newW * newH * 3) {
    // Exact, not at-least: a frame of the wrong size means ffmpeg was told other dimensions, and reading it
    // as newW×newH would silently shear the image.
    throw new Error(`letterbox: rgb frame has ${rgb.length} bytes, expected ${newW}x${newH}x3 = ${newW * newH * 3}`);
  }
  const plane = size * size;
  if (out.length !== 3 * plane) {
    throw new Error(`letterbox: tensor has ${out.length} floats, expected 3x${size}x${size} = ${3 * plane}`);
  }
  if (padX < 0 || padY < 0 || padX + newW > size || padY + newH > size) {
    throw new Error(`letterbox: ${newW}x${newH} at (${padX},${padY}) does not fit a ${size}x${size} input`);
  }

  const g0 = plane;
  const b0 = 2 * plane;
  const right = padX + newW;
  const bottom = padY + newH;
  for (let c = 0; c < 3; c++) {
    const base = c * plane;
    // TypedArray.fill is a native memset-like loop, much faster than scalar stores for the large pad areas.
    out.fill(PAD, base, base + padY * size);
    out.fill(PAD, base + bottom * size, base + plane);
    if (padX > 0 || right < size) {
      for (let y = padY; y < bottom; y++) {
        const row = base + y * size;
        out.fill(PAD, row, row + padX);
        out.fill(PAD, row + right, row + size);
      }
    }
  }

  // One pass over the packed source feeding three planes: the read and all three writes stay sequential,
  // where a plane-at-a-time loop would read every source byte three times.
  let s = 0;
  for (let y = 0; y < newH; y++) {
    let d = (padY + y) * size + padX;
    const end = d + newW;
    for (; d < end; d++, s += 3) {
      out[d] = NORM[rgb[s] as number] as number;
      out[g0 + d] = NORM[rgb[s + 1] as number] as number;
      out[b0 + d] = NORM[rgb[s + 2] as number] as number;
    }
  }
}
