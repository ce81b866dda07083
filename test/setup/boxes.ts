// Comparing two models' detections on the same frames: boxes matched one-to-one by IoU.
import type { Detections } from "../../worker/detections.ts";
import type { DetectOptions, Detector } from "../../worker/infer/session.ts";
import type { Frame } from "../../worker/ingest/ffmpeg-source.ts";
import { iou } from "../../worker/track/bytetrack.ts";

type Box = [number, number, number, number];
export const boxes = (d: Detections) =>
  Array.from({ length: d.length }, (_, i) => Array.from(d.xyxy.subarray(i * 4, i * 4 + 4)));
/** Boxes of `b` matched one-to-one to boxes of `a` at IoU ≥ 0.5, greedily by IoU: how many. */
export const matched = (a: number[][], b: number[][]): number => matchedIous(a, b).length;

/** The IoU of each matched pair (as `matched`). */
export function matchedIous(a: number[][], b: number[][]): number[] {
  const pairs = a
    .flatMap((x, i) => b.map((y, j) => ({ i, j, v: iou(...(x as Box), ...(y as Box)) })))
    .filter((p) => p.v >= 0.5);
  pairs.sort((p, q) => q.v - p.v);
  const ua = new Set<number>();
  const ub = new Set<number>();
  const out: number[] = [];
  for (const p of pairs)
    if (!ua.has(p.i) && !ub.has(p.j)) {
      ua.add(p.i);
      ub.add(p.j);
      out.push(p.v);
    }
  return out;
}

/**
 * Detector `b` on its frames against `a` on its own, frame k with frame k (the same moment, each decoded at its
 * model's shape): boxes `a` found, boxes `b` found, the IoU of each matched pair and their mean.
 */
export async function compareDetectors(
  a: { detector: Detector; frames: Frame[] },
  b: { detector: Detector; frames: Frame[] },
  opts: DetectOptions,
): Promise<{ ref: number; got: number; ious: number[]; meanIou: number }> {
  let ref = 0;
  let got = 0;
  const ious: number[] = [];
  for (const [k, f] of a.frames.entries()) {
    const g = b.frames[k] as Frame;
    const x = boxes((await a.detector.detect(f.data, f.width, f.height, opts)).detections);
    const y = boxes((await b.detector.detect(g.data, g.width, g.height, opts)).detections);
    ref += x.length;
    got += y.length;
    ious.push(...matchedIous(x, y));
  }
  return { ref, got, ious, meanIou: ious.reduce((u, v) => u + v, 0) / ious.length };
}
