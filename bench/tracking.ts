// `npm run bench -- tracking`: identity stability at the sample rates cameras use (issue 12, goal 4).
// Pseudo ground truth: the tracks of the tracker as it landed before this work (plain IoU, detections >= the spec's
// default minScore 0.5, minHits 2, confirmed tracks only: what worker/camera.ts fed it) on every frame of vtest.avi
// at 10 fps. Each tracker under test then sees only the frames a camera sampling at 1, 3, 5 or 10 fps would see,
// and is scored against the ground truth on those frames: IDF1, IDP, IDR (Ristani et al. 2016), CLEAR-MOT ID
// switches, and the number of ids it handed out. The detections are cached (bench/tracking/detections.ts), so only
// association differs between rates and trackers.
import { loadavg } from "node:os";
import { createTracker, type TrackerOptions } from "../worker/track/bytetrack.ts";
import { sampleAt, vtestDetections } from "./tracking/detections.ts";
import { identityMetrics } from "./tracking/idf1.ts";
import { replay } from "./tracking/replay.ts";

const RATES = [1, 3, 5, 10] as const;
/** The spec's default detection.minScore. */
const MIN_SCORE = 0.5;
const GOAL = { "1": 0.5, "3": 0.8, "5": 0.9 } as const;

type Variant = { tracker: Partial<TrackerOptions>; inputMinScore: number };

/** The tracker before issue 12: every new association feature off. */
const BASELINE: Variant = { tracker: { minHits: 2, gateSpeed: 0, inertia: 0 }, inputMinScore: MIN_SCORE };
const NEW: Variant = { tracker: { minHits: 2 }, inputMinScore: MIN_SCORE };
// BENCH_TRACKING_TRY='{"tracker":{...},"inputMinScore":0.1}' scores one more variant (for exploring levers).
const TRY = process.env.BENCH_TRACKING_TRY ? (JSON.parse(process.env.BENCH_TRACKING_TRY) as Variant) : undefined;

const round = (v: number) => Math.round(v * 1000) / 1000;

export async function benchTracking() {
  const cache = await vtestDetections();
  const all = cache.frames;
  const gtFrames = replay(createTracker(BASELINE.tracker), all, { inputMinScore: MIN_SCORE, reportMinScore: MIN_SCORE });
  const gt = new Map(all.map((f, i) => [f.seq, gtFrames[i] ?? []]));
  const gtIds = new Set(gtFrames.flat().map((b) => b.id)).size;

  const score = (v: Variant) =>
    Object.fromEntries(
      RATES.map((fps) => {
        const frames = sampleAt(all, cache.fps, fps);
        const pred = replay(createTracker(v.tracker), frames, { inputMinScore: v.inputMinScore, reportMinScore: MIN_SCORE });
        const m = identityMetrics(frames.map((f, i) => ({ gt: gt.get(f.seq) ?? [], pred: pred[i] ?? [] })));
        return [
          String(fps),
          { idf1: round(m.idf1), idp: round(m.idp), idr: round(m.idr), idsw: m.idsw, ids: m.predIds, gt_ids: m.gtIds, frames: frames.length },
        ];
      }),
    );

  const t0 = performance.now();
  const fps = score(TRY ? { ...NEW, ...TRY, tracker: { ...NEW.tracker, ...TRY.tracker } } : NEW);
  const ms = performance.now() - t0;
  const baseline = score(BASELINE);
  for (const [k, v] of Object.entries(fps))
    process.stderr.write(`${k} fps: idf1 ${v.idf1} (baseline ${baseline[k]?.idf1}), idsw ${v.idsw} (baseline ${baseline[k]?.idsw})\n`);
  return {
    bench: "tracking",
    video: cache.video,
    gt_ids: gtIds,
    fps,
    baseline,
    goal: Object.fromEntries(Object.entries(GOAL).map(([k, g]) => [k, { idf1: g, met: (fps[k]?.idf1 ?? 0) >= g }])),
    tracker_ms: round(ms),
    load: loadavg().map(round),
  };
}
