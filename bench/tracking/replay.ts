// Replays cached detections through a tracker, as worker/camera.ts feeds it, and collects the boxes of the
// confirmed tracks per frame for scoring.
import { detectionsFrom } from "../../worker/detections.ts";
import type { Tracker } from "../../worker/track/bytetrack.ts";
import type { CachedFrame } from "./detections.ts";
import type { IdBox } from "./idf1.ts";

const PERSON = 0;

export type ReplayOptions = {
  /** Boxes below this score never reach the tracker (camera.ts filtered at the spec's minScore before tracking). */
  inputMinScore: number;
  /** Tracked boxes below this score are not reported (the spec's minScore). */
  reportMinScore: number;
  /** Pass each box's cached appearance descriptor to the tracker. */
  appearance?: boolean;
};

/** Per frame, the tracked boxes the camera would report, with their track ids. */
export function replay(tracker: Tracker, frames: readonly CachedFrame[], o: ReplayOptions): IdBox[][] {
  return frames.map((f) => {
    const kept = f.boxes.filter((b) => b.score >= o.inputMinScore);
    const dets = detectionsFrom(kept.map((b) => ({ box: b.box, score: b.score, classId: PERSON })));
    const out = tracker.update(
      dets,
      f.timestampMs,
      o.appearance ? Float32Array.from(kept.flatMap((b) => b.feature)) : undefined,
    );
    const boxes: IdBox[] = [];
    for (let i = 0; i < out.length; i++) {
      if ((out.score[i] as number) < o.reportMinScore) continue;
      const k = i * 4;
      boxes.push({
        id: out.trackId[i] as number,
        box: [out.xyxy[k] as number, out.xyxy[k + 1] as number, out.xyxy[k + 2] as number, out.xyxy[k + 3] as number],
      });
    }
    return boxes;
  });
}
