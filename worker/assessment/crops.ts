// Which parts of a frame an assessment looks at, in source pixels (pure). An event about one track (presence,
// dwell, ppeMissing, sequence) is that track's box; a count event concerns every object its rule counted, so each
// of them is cropped (the largest first, at most MAX_CROPS); a periodic sample crops every person in view. One crop
// per object rather than one union box: the model is asked about people, and a union of people far apart is mostly
// floor at a lower resolution per person (the fake provider, like a real model, counts people from the crops).
import type { CameraDetectionSpec } from "../../operator/api/camera-detection.ts";
import type { Detections } from "../detections.ts";
import { type InputShape, letterboxParams } from "../infer/letterbox.ts";
import type { RuleEvent } from "../rules/engine.ts";
import { type Box, boxAnchor, pointInPolygon } from "../rules/geometry.ts";

/** Images a task carries: the frame plus at most this many crops (the task schema allows 9 images). */
export const MAX_CROPS = 8;
/** Context around a person, on each side, as a fraction of its box: what they hold, who is next to them. */
export const CROP_PAD = 0.15;

/** What the pipeline saw in one frame: its source size and the detections drawn on it (source pixels). */
export type FrameView = {
  width: number;
  height: number;
  detections: Detections;
  classNames: readonly string[];
};

export type Rect = [number, number, number, number];

/** Boxes of the detections of these classes (optionally only those whose anchor is in `zone`), largest first. */
export function boxesOf(
  view: FrameView,
  classes: ReadonlySet<string>,
  zone?: CameraDetectionSpec["zones"][number],
): Box[] {
  const d = view.detections;
  const out: Box[] = [];
  for (let i = 0; i < d.length; i++) {
    if (!classes.has(view.classNames[d.classId[i] as number] ?? "")) continue;
    const b = [0, 1, 2, 3].map((k) => d.xyxy[i * 4 + k] as number) as [number, number, number, number];
    if (zone) {
      const [ax, ay] = boxAnchor(b, view.width, view.height);
      if (!pointInPolygon(ax, ay, zone.polygon)) continue;
    }
    out.push(b);
  }
  const area = (b: Box) => (b[2] - b[0]) * (b[3] - b[1]);
  return out.sort((a, b) => area(b) - area(a));
}

const PEOPLE = new Set(["person"]);

/** The source boxes an event's task crops, largest first, at most MAX_CROPS. */
export function subjectsOfEvent(
  spec: Pick<CameraDetectionSpec, "rules" | "zones">,
  e: Pick<RuleEvent, "rule" | "kind" | "box" | "zone">,
  view: FrameView,
): Box[] {
  if (e.box) return [e.box];
  const rule = spec.rules.find((r) => r.name === e.rule);
  const zoneName = rule?.count?.zone ?? e.zone;
  const zone = zoneName === undefined ? undefined : spec.zones.find((z) => z.name === zoneName);
  const classes = rule?.count ? new Set([rule.count.class]) : PEOPLE;
  return boxesOf(view, classes, zone).slice(0, MAX_CROPS);
}

/** The people a periodic sample crops, largest first, at most MAX_CROPS. */
export function subjectsOfSample(view: FrameView): Box[] {
  return boxesOf(view, PEOPLE).slice(0, MAX_CROPS);
}

/**
 * A box padded by CROP_PAD on each side, clamped to the frame and rounded outwards to whole source pixels; null
 * when nothing of it is inside the frame.
 */
export function paddedBox(box: Box, width: number, height: number, pad = CROP_PAD): Rect | null {
  const px = (box[2] - box[0]) * pad;
  const py = (box[3] - box[1]) * pad;
  const x1 = Math.max(0, Math.floor(box[0] - px));
  const y1 = Math.max(0, Math.floor(box[1] - py));
  const x2 = Math.min(width, Math.ceil(box[2] + px));
  const y2 = Math.min(height, Math.ceil(box[3] + py));
  return x2 > x1 && y2 > y1 ? [x1, y1, x2, y2] : null;
}

/**
 * Where a source-pixel rect lies in the letterboxed model input the frame arrives as (ffmpeg scaled the source by
 * `scale` and padded it by padX/padY): left, top, width and height there, clamped to the scaled content and at
 * least one pixel.
 */
export function letterboxRegion(
  rect: Rect,
  width: number,
  height: number,
  into: InputShape | number,
): { left: number; top: number; width: number; height: number } {
  const lb = letterboxParams(width, height, into);
  const x1 = Math.min(lb.newW - 1, Math.max(0, Math.floor(rect[0] * lb.scale)));
  const y1 = Math.min(lb.newH - 1, Math.max(0, Math.floor(rect[1] * lb.scale)));
  const x2 = Math.min(lb.newW, Math.max(x1 + 1, Math.ceil(rect[2] * lb.scale)));
  const y2 = Math.min(lb.newH, Math.max(y1 + 1, Math.ceil(rect[3] * lb.scale)));
  return { left: lb.padX + x1, top: lb.padY + y1, width: x2 - x1, height: y2 - y1 };
}
