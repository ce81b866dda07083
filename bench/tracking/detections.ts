// YOLOv8n's person boxes on every frame of vtest.avi (10 fps, 795 frames), run once and cached next to the
// fixtures: the tracking bench samples these same detections at 1, 3, 5 and 10 fps, so every rate and every tracker
// sees identical boxes and only association differs. Scores down to LOW_SCORE are kept, so a tracker's second
// (low-score) association and any minScore can be replayed from the cache.
import { createHash } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../../test/setup/operator-env.ts";
import { boxAt } from "../../worker/detections.ts";
import { letterboxParams } from "../../worker/infer/letterbox.ts";
import { loadDetector } from "../../worker/infer/session.ts";
import { FfmpegSource } from "../../worker/ingest/ffmpeg-source.ts";
import { describeBoxes } from "../../worker/track/appearance.ts";

export const VTEST = join(ROOT, ".cache", "fixtures", "vtest.avi");
/** The model whose boxes are cached: the float YOLOv8n, or another export (BENCH_TRACKING_MODEL, a path). Boxes
 * differ between models and even between CPUs (the float model on an AMD EPYC with AVX-512 gave 28 pseudo ground
 * truth identities where an AVX2 host gave 32), and the tracker should meet its goals on any of them. */
export const MODEL = process.env.BENCH_TRACKING_MODEL ?? join(ROOT, ".cache", "fixtures", "yolov8n.onnx");
/** The lowest score kept in the cache (ByteTrack's low threshold). */
export const LOW_SCORE = 0.1;
/** Bumped when what the cache holds changes, so an old cache is rebuilt. */
const FORMAT = 2;

export type CachedBox = {
  box: [number, number, number, number];
  score: number;
  /** The box's appearance descriptor (worker/track/appearance.ts), from the letterboxed frame the model saw. */
  feature: number[];
};
export type CachedFrame = { seq: number; timestampMs: number; boxes: CachedBox[] };
export type DetectionCache = { video: string; fps: number; width: number; height: number; frames: CachedFrame[] };

const digest = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex").slice(0, 16);

/** The cached detections, made first if missing or stale (≈ 30–60 s on 2 cores). */
export async function vtestDetections(): Promise<DetectionCache> {
  const key = `${FORMAT}-${digest(MODEL)}-${digest(VTEST)}`;
  const file = join(ROOT, ".cache", "fixtures", `vtest-detections-${key}.json`);
  if (existsSync(file)) return JSON.parse(readFileSync(file, "utf8")) as DetectionCache;
  const detector = await loadDetector(MODEL, { threads: 2 });
  const frames: CachedFrame[] = [];
  let width = 0;
  let height = 0;
  const person = detector.classFilter(["person"]);
  let chain = Promise.resolve();
  const source: FfmpegSource = new FfmpegSource(
    { url: `file://${VTEST}`, shape: detector.shape },
    {
      frame: (frame) => {
        source.setPaused(true); // one frame at a time: a file decodes faster than the model runs
        width = frame.width;
        height = frame.height;
        chain = chain.then(async () => {
          const r = await detector.detect(frame.data, frame.width, frame.height, {
            minScore: LOW_SCORE,
            classFilter: person,
          });
          const lb = letterboxParams(frame.width, frame.height, detector.shape);
          const features = describeBoxes(frame.data, detector.shape, lb, r.detections);
          const dims = features.length / Math.max(1, r.detections.length);
          const boxes = Array.from({ length: r.detections.length }, (_, i) => ({
            box: boxAt(r.detections, i).map((v) => Math.round(v * 10) / 10) as CachedBox["box"],
            score: Math.round((r.detections.score[i] as number) * 1000) / 1000,
            feature: Array.from(features.subarray(i * dims, (i + 1) * dims), (v) => Math.round(v * 1000) / 1000),
          }));
          frames.push({ seq: frame.seq, timestampMs: frame.timestampMs, boxes });
          source.setPaused(false);
        });
      },
    },
  );
  source.start();
  await source.done;
  await chain;
  await detector.close();
  if (frames.length < 700) throw new Error(`vtest.avi gave ${frames.length} frames, expected 795`);
  const cache: DetectionCache = { video: "vtest.avi", fps: 10, width, height, frames };
  writeFileSync(file, JSON.stringify(cache));
  return cache;
}

/**
 * The frames a camera sampling at `fps` would see: for each sample time k/fps, the first source frame at or after
 * it (what ffmpeg's fps filter picks), each frame at most once.
 */
export function sampleAt(frames: readonly CachedFrame[], sourceFps: number, fps: number): CachedFrame[] {
  if (fps >= sourceFps) return [...frames];
  const out: CachedFrame[] = [];
  let next = 0;
  for (const f of frames) {
    const t = f.seq / sourceFps;
    if (t + 1e-9 >= next / fps) {
      out.push(f);
      while (t + 1e-9 >= next / fps) next++;
    }
  }
  return out;
}
