// Decoders for raw YOLO detection heads (ONNX exports without built-in NMS). Each turns the output tensor into
// pre-NMS candidates in source-frame pixels; nms.ts runs next.

import type { Detections } from "../detections.ts";
import type { LetterboxParams } from "./letterbox.ts";

export type YoloHead = "yolov8" | "yolov5";

export type DecodeOptions = {
  /** Candidates scoring at least this survive (inclusive, so minScore 0.25 keeps a 0.25). */
  readonly minScore: number;
  /**
   * 1 = keep that class id. Applied after the arg-max over all classes, as Ultralytics does: a box the model
   * thinks is a dog is dropped when only people are wanted, rather than resurfacing as a weak "person".
   * Class ids past the end of the filter are dropped.
   */
  readonly classFilter?: Uint8Array | null;
};

/**
 * Tells the head apart from the output shape: v8/v11 emit [1, 4+nc, N] (channels first, N anchors, many more
 * anchors than channels), v5 emits [1, N, 5+nc]. A v8 model exported with a transposed output, or an
 * NMS-free end-to-end head such as [1, 300, 6], looks like v5 here; neither is supported.
 */
export function detectHead(dims: readonly number[]): YoloHead {
  if (dims.length === 3 && dims[0] === 1 && dims.every((d) => Number.isInteger(d) && d > 0)) {
    const a = dims[1] as number;
    const b = dims[2] as number;
    if (a >= 5 && b > a) return "yolov8";
    if (b >= 6 && a > b) return "yolov5";
  }
  throw new Error(
    `unrecognised YOLO output shape ${fmt(dims)}: expected [1, 4+nc, N] (YOLOv8/v11) or [1, N, 5+nc] (YOLOv5), with N anchors > channels`,
  );
}

/** Decodes a YOLOv8/v11 head, [1, 4+nc, N] channel-major: rows cx, cy, w, h, then nc class scores (no objectness). */
export function decodeYolov8(
  out: Float32Array,
  dims: readonly number[],
  opts: DecodeOptions,
  lb: LetterboxParams,
  srcW: number,
  srcH: number,
): Detections {
  const [channels, n] = checkShape(out, dims, 5, "yolov8");
  const nc = channels - 4;
  growScratch(n);
  const best = bestScore;
  const cls = bestClass;
  best.fill(Number.NEGATIVE_INFINITY, 0, n);
  cls.fill(0, 0, n);
  const filter = opts.classFilter ?? null;
  let wanted = 0;
  if (filter) for (let c = 0; c < nc; c++) wanted += filter[c] === 1 ? 1 : 0;
  // Arg-max one class row at a time rather than one anchor at a time: each pass reads a contiguous row of N
  // floats instead of striding N*4 bytes between reads, which is what makes the [1,84,8400] layout cheap.
  // Strict > keeps the first of equal scores, like torch's argmax.
  // With few classes wanted (a camera asking for people), only their rows are read first; the other classes are
  // then read only for the few anchors that pass minScore, to drop those whose arg-max is an unwanted class.
  // Measured (YOLOv8n, person only, a vtest.avi frame, decode + NMS): 1.6 ms → 0.15–0.35 ms a frame, main thread.
  const fewWanted = filter !== null && wanted * 4 < nc;
  for (let c = 0; c < nc; c++) {
    if (fewWanted && filter[c] !== 1) continue;
    const base = (4 + c) * n;
    for (let i = 0; i < n; i++) {
      const v = out[base + i] as number;
      if (v > (best[i] as number)) {
        best[i] = v;
        cls[i] = c;
      }
    }
  }
  if (fewWanted) {
    const { minScore } = opts;
    for (let i = 0; i < n; i++) {
      const v = best[i] as number;
      if (!(v >= minScore)) continue;
      const k = cls[i] as number;
      // An earlier class at least as high, or a later one higher, is the full arg-max's pick instead.
      for (let c = 0; c < nc; c++) {
        if (filter[c] === 1) continue;
        const u = out[(4 + c) * n + i] as number;
        if (c < k ? u >= v : u > v) {
          best[i] = Number.NEGATIVE_INFINITY;
          break;
        }
      }
    }
  }
  return emit(out, n, 1, n, opts, lb, srcW, srcH);
}

/** Decodes a YOLOv5 head, [1, N, 5+nc] row-major: cx, cy, w, h, objectness, then nc class scores per row. */
export function decodeYolov5(
  out: Float32Array,
  dims: readonly number[],
  opts: DecodeOptions,
  lb: LetterboxParams,
  srcW: number,
  srcH: number,
): Detections {
  const [n, stride] = checkShape(out, dims, 6, "yolov5");
  const nc = stride - 5;
  growScratch(n);
  const best = bestScore;
  const cls = bestClass;
  const { minScore } = opts;
  for (let i = 0; i < n; i++) {
    const row = i * stride;
    const obj = out[row + 4] as number;
    // Class scores are sigmoids (≤ 1), so score = obj * cls ≤ obj: a low objectness rules the row out before
    // its nc class scores are read, which skips nearly every row of a typical frame (Ultralytics does the same).
    if (!(obj >= minScore)) {
      best[i] = Number.NEGATIVE_INFINITY;
      continue;
    }
    let bs = Number.NEGATIVE_INFINITY;
    let bc = 0;
    for (let c = 0; c < nc; c++) {
      const v = out[row + 5 + c] as number;
      if (v > bs) {
        bs = v;
        bc = c;
      }
    }
    best[i] = obj * bs;
    cls[i] = bc;
  }
  return emit(out, n, stride, 1, opts, lb, srcW, srcH);
}

// Per-anchor best score/class and the surviving indices, grown to the largest head seen and reused across
// frames: decoding is synchronous, so one set per worker thread is safe.
let bestScore = new Float32Array(0);
let bestClass = new Uint16Array(0);
let keepIdx = new Uint32Array(0);

function growScratch(n: number): void {
  if (bestScore.length >= n) return;
  bestScore = new Float32Array(n);
  bestClass = new Uint16Array(n);
  keepIdx = new Uint32Array(n);
}

function fmt(dims: readonly number[]): string {
  return `[${dims.join(", ")}]`;
}

/** Validates a [1, a, b] shape against the buffer; returns [a, b]. `minChannels` is the channel count for nc = 1. */
function checkShape(out: Float32Array, dims: readonly number[], minChannels: number, head: YoloHead): [number, number] {
  const ok = dims.length === 3 && dims[0] === 1 && dims.every((d) => Number.isInteger(d) && d > 0);
  const a = dims[1] ?? 0;
  const b = dims[2] ?? 0;
  const channels = head === "yolov8" ? a : b;
  // classId is a Uint16Array, so more classes than that could not be represented.
  if (!ok || channels < minChannels || channels - minChannels + 1 > 65536) {
    throw new Error(`${head}: bad output shape ${fmt(dims)}`);
  }
  if (out.length < a * b) {
    throw new Error(`${head}: output has ${out.length} floats, shape ${fmt(dims)} needs ${a * b}`);
  }
  return [a, b];
}

/**
 * Turns the anchors that pass score and class filters into source-pixel Detections. Box coordinate k of anchor i
 * is at out[i*anchorStride + k*coordStride], which covers both the channel-major and row-major layouts.
 */
function emit(
  out: Float32Array,
  n: number,
  anchorStride: number,
  coordStride: number,
  opts: DecodeOptions,
  lb: LetterboxParams,
  srcW: number,
  srcH: number,
): Detections {
  const { minScore } = opts;
  const filter = opts.classFilter ?? null;
  const best = bestScore;
  const cls = bestClass;
  const idx = keepIdx;
  // Count first so the output is allocated once at its final size rather than grown.
  let count = 0;
  for (let i = 0; i < n; i++) {
    if (!((best[i] as number) >= minScore)) continue;
    if (filter !== null && filter[cls[i] as number] !== 1) continue;
    idx[count++] = i;
  }

  const xyxy = new Float32Array(count * 4);
  const score = new Float32Array(count);
  const classId = new Uint16Array(count);
  const trackId = new Int32Array(count);
  const { scale, padX, padY } = lb;
  let k = 0;
  for (let j = 0; j < count; j++) {
    const i = idx[j] as number;
    const o = i * anchorStride;
    const cx = out[o] as number;
    const cy = out[o + coordStride] as number;
    const hw = (out[o + 2 * coordStride] as number) / 2;
    const hh = (out[o + 3 * coordStride] as number) / 2;
    // Clip to [0, W] like Ultralytics' clip_boxes: x2 = W is the right edge of the last pixel, not past it.
    const x1 = clamp((cx - hw - padX) / scale, srcW);
    const y1 = clamp((cy - hh - padY) / scale, srcH);
    const x2 = clamp((cx + hw - padX) / scale, srcW);
    const y2 = clamp((cy + hh - padY) / scale, srcH);
    // A box lying wholly in the letterbox padding clips to nothing, and NaN coordinates fail this too;
    // neither is a detection.
    if (!(x2 > x1 && y2 > y1)) continue;
    const q = k * 4;
    xyxy[q] = x1;
    xyxy[q + 1] = y1;
    xyxy[q + 2] = x2;
    xyxy[q + 3] = y2;
    score[k] = best[i] as number;
    classId[k] = cls[i] as number;
    k++;
  }
  if (k === count) return { length: k, xyxy, score, classId, trackId };
  // Views keep every array's length equal to the detection count, which consumers are entitled to assume.
  return {
    length: k,
    xyxy: xyxy.subarray(0, k * 4),
    score: score.subarray(0, k),
    classId: classId.subarray(0, k),
    trackId: trackId.subarray(0, k),
  };
}

function clamp(v: number, max: number): number {
  return v < 0 ? 0 : Math.min(v, max);
}
