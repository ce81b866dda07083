// One camera's per-frame logic, the same for `vigil worker` and `vigil detect`: motion gate → model →
// class filter and NMS → tracker → rules. Pure apart from the detector call.
import type { CameraDetectionSpec } from "../operator/api/camera-detection.ts";
import { boxAt, type Detections } from "./detections.ts";
import type { Detector } from "./infer/session.ts";
import type { Frame } from "./ingest/ffmpeg-source.ts";
import { createMotionGate, type MotionGate } from "./motion/gate.ts";
import { createRuleEngine, type RuleEvent, type RuleTrack } from "./rules/engine.ts";
import { createTracker } from "./track/bytetrack.ts";

export type FrameResult = {
  seq: number;
  timestampMs: number;
  width: number;
  height: number;
  /** Detections of confirmed tracks (trackId set), in source pixels. */
  detections: Detections;
  events: RuleEvent[];
  inferenceMs: number;
  /** Frames in the model run this one was part of (cameras batched together). */
  batch: number;
};

export type CameraProcessor = {
  /** False when the motion gate skips this frame. */
  wantsInference(frame: Frame): boolean;
  infer(frame: Frame): Promise<FrameResult>;
  /** A skipped (still) frame: nothing moved, so the last tracks stand and time-based rules go on. */
  still(frame: Frame): RuleEvent[];
  readonly gate: MotionGate | undefined;
  /** Detection classes plus every equipment class a ppeMissing rule needs. */
  readonly classes: readonly string[];
};

export function createCameraProcessor(
  spec: Pick<CameraDetectionSpec, "detection" | "zones" | "rules">,
  detector: Detector,
  opts: { motionGate?: boolean; confirmFrames?: number } = {},
): CameraProcessor {
  const d = spec.detection;
  const classes = [...new Set([...d.classes, ...spec.rules.flatMap((r) => r.ppeMissing?.required ?? [])])];
  const unknown = classes.filter((c) => !detector.classNames.includes(c));
  if (unknown.length) throw new Error(`detection.classes: the model does not know ${unknown.join(", ")}`);
  const classFilter = detector.classFilter(classes);
  const gate =
    (opts.motionGate ?? d.motionGate.enabled)
      ? createMotionGate({ threshold: d.motionGate.threshold, maxSkipMs: d.motionGate.maxSkipSeconds * 1000 })
      : undefined;
  // Live cameras confirm a track on its second frame (fewer one-frame ghosts); `vigil detect` on an image needs 1.
  const tracker = createTracker({ minHits: opts.confirmFrames ?? 2 });
  const rules = createRuleEngine({ zones: spec.zones, rules: spec.rules }, detector.classNames);
  let lastTracks: RuleTrack[] = [];

  return {
    gate,
    classes,
    wantsInference: (frame) => !gate || gate.check(frame.data, detector.shape, frame.timestampMs),
    async infer(frame) {
      const width = frame.width || detector.shape.width;
      const height = frame.height || detector.shape.height;
      const { detections, inferenceMs, batch } = await detector.detect(frame.data, width, height, {
        minScore: d.minScore,
        classFilter,
      });
      const tracked = tracker.update(detections, frame.timestampMs);
      lastTracks = Array.from({ length: tracked.length }, (_, i) => ({
        id: tracked.trackId[i] as number,
        classId: tracked.classId[i] as number,
        box: boxAt(tracked, i),
        score: tracked.score[i] as number,
      }));
      const events = rules.evaluate({ timestampMs: frame.timestampMs, width, height, tracks: lastTracks });
      return {
        seq: frame.seq,
        timestampMs: frame.timestampMs,
        width,
        height,
        detections: tracked,
        events,
        inferenceMs,
        batch,
      };
    },
    still(frame) {
      return rules.evaluate({
        timestampMs: frame.timestampMs,
        width: frame.width || detector.shape.width,
        height: frame.height || detector.shape.height,
        tracks: lastTracks,
      });
    },
  };
}
