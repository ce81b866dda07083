// ByteTrack-style multi-object tracker (Zhang et al. 2022, "ByteTrack: Multi-Object Tracking by Associating Every
// Detection Box"). Pure: state lives in the closure, time comes only from the timestamps the caller passes.
//
// Differences from the reference implementation, and why:
// - Time is the caller's timestamp, not the frame index: the worker skips frames when nothing moves, so the motion
//   model advances by elapsed time and a skipped stretch predicts further instead of one "frame".
// - Matching cost is plain 1 - IoU (no fusing with the detection score) so the thresholds read as IoU values.
// - Tracks never match across classes; the class is fixed by the detection that started the track.
// - A lost track that an active track now overlaps almost completely is dropped (the reference drops whichever of the
//   pair is younger); the active track is the one the detector is feeding, the lost one is a stale ghost that could
//   otherwise steal the next detection and swap ids.
// - For cameras sampled at 1-5 fps, where a walking person moves about their own width between samples and IoU is
//   zero: a pair below the IoU threshold can still match inside a motion gate that grows with the elapsed time (as
//   far as a person walks), and OC-SORT's observation-centric momentum (Cao et al. 2023) ranks the candidates by
//   whether they continue the observed direction of travel. bench/tracking.ts measures both (`levers`): on
//   vtest.avi, IDF1 against the 10 fps tracks went from 0.28 / 0.76 / 0.89 to 0.68 / 0.87 / 0.92 at 1 / 3 / 5 fps,
//   unchanged at 10 fps.

import { type Detections, emptyDetections } from "../detections.ts";
import { APPEARANCE_DIMS, appearanceDistance } from "./appearance.ts";

export type TrackState = "tentative" | "confirmed" | "lost";

export type TrackView = {
  /** Positive, increasing, never reused within one tracker. */
  readonly id: number;
  readonly classId: number;
  /** Filtered x1, y1, x2, y2 in source pixels; the motion prediction while the track is lost. */
  readonly box: readonly [number, number, number, number];
  /** Centre velocity in source pixels per second, from the motion model. */
  readonly velocity: readonly [number, number];
  /** Score of the last detection matched to the track. */
  readonly score: number;
  readonly state: TrackState;
  /** Detections matched to the track so far. */
  readonly hits: number;
  /** update() calls since the track started (0 in the frame that started it). */
  readonly age: number;
  readonly firstSeenMs: number;
  readonly lastSeenMs: number;
};

export type TrackerOptions = {
  /** Detections at or above this score take part in the first association. */
  highThresh: number;
  /** Detections in [lowThresh, highThresh) can only continue already tracked objects; below it they are ignored. */
  lowThresh: number;
  /** An unmatched high detection must score at least this to start a track. */
  newTrackThresh: number;
  /** Minimum IoU for the first association (high detections vs tracked and lost tracks) and for tentative tracks. */
  matchIou: number;
  /** Minimum IoU for the second association (low detections vs tracks still unmatched); stricter because a
   * low-score box is more likely a false positive that happens to sit near a track. */
  secondMatchIou: number;
  /** A lost track is kept, and can be re-found, for this many update() calls without a match. */
  trackBufferFrames: number;
  /** Matches (including the first detection) before a track is confirmed and reported. */
  minHits: number;
  /** Frame interval the motion-noise constants are tuned for; the reference tracker was tuned on 30 fps video. */
  nominalFrameMs: number;
  /** Below the IoU threshold, a pair can still match when the detection's centre lies within
   * `gateSlack + gateSpeed * (seconds since the track was last seen)` box heights of the predicted centre and its
   * height is within a factor exp(gateLogHeight) of the prediction's. gateSpeed 0 = IoU only (the behaviour before). */
  gateSpeed: number;
  gateSlack: number;
  gateLogHeight: number;
  /** A lost track missed at most this many updates is still gated, with the radius of one update interval. */
  gateMissed: number;
  /** OC-SORT's observation-centric momentum: weight of the direction-consistency term (0 = off). A detection that
   * would make the track turn by angle a relative to its observed direction of travel costs
   * inertia * (a / pi - 1/2) more, from -inertia/2 (straight on) to +inertia/2 (reversal). */
  inertia: number;
  /** With descriptors: a pair whose appearance distance (0-1) exceeds this never matches. */
  appearanceGate: number;
  /** With descriptors: weight of the appearance distance in the cost of a pair inside the gates (0 = rank by motion
   * only). */
  appearanceWeight: number;
  /** Each match moves the track's descriptor this fraction of the way to the detection's (an EMA, as BoT-SORT). */
  appearanceRate: number;
};

export type Tracker = {
  /**
   * Advances the tracker to `timestampMs` with this frame's detections. Returns the detections that belong to
   * confirmed tracks (their boxes, scores and classes as detected) with `trackId` set, in input order. `dets` is
   * not modified. `appearance`, when given, holds each detection's descriptor (worker/track/appearance.ts,
   * APPEARANCE_DIMS floats per detection) and lets colours veto and rank matches.
   */
  update(dets: Detections, timestampMs: number, appearance?: Float32Array): Detections;
  /** Every live track: tentative, confirmed and lost. */
  tracks(): readonly TrackView[];
};

export const DEFAULT_TRACKER_OPTIONS: Readonly<TrackerOptions> = {
  highThresh: 0.5,
  lowThresh: 0.1,
  newTrackThresh: 0.6,
  matchIou: 0.3,
  secondMatchIou: 0.5,
  trackBufferFrames: 30,
  minHits: 2,
  nominalFrameMs: 1000 / 30,
  // Measured on the pseudo ground truth of vtest.avi (bench/tracking.ts, 10 fps tracks): walking speed is 0.52 box
  // heights per second at the median, 1.1-1.2 at the 99th percentile over 0.3-1 s (a 1.7 m person at 1.4 m/s is
  // 0.8); the constant-velocity residual over 0.1 s is 0.18 heights at the 99th percentile, and the height changes
  // by less than 25 % (|ln| 0.28 at p99) within a second. Sensitivity (IDF1 at 1 / 3 / 5 fps, defaults 0.68 / 0.87 /
  // 0.92): gateSpeed 0.8 gave 0.67 / 0.83 / 0.92, 1.6 gave 0.72 / 0.84 / 0.90; gateSlack 0.05 gave 0.70 / 0.83 /
  // 0.92, 0.2 gave 0.70 / 0.84 / 0.90; gateLogHeight 0.2 gave 0.75 / 0.87 / 0.92, 0.5 gave 0.68 / 0.82 / 0.91.
  gateSpeed: 1.2,
  gateSlack: 0.1,
  gateLogHeight: 0.3,
  // 2 before: 4 bridges a person lost for 3-4 samples at 3-5 fps (a crossing hides them), measured on two detection
  // sets of one AMD EPYC host (IDF1 at 3 / 5 fps, float 0.868 / 0.865 -> 0.892 / 0.911, int8 0.843 / 0.829 ->
  // 0.862 / 0.855; 1 and 10 fps unchanged; 3 and 5-8 gave 0.871 and 0.911 at 5 fps on the float set).
  gateMissed: 4,
  // OC-SORT's default.
  inertia: 0.2,
  // Off: on vtest.avi the colour histogram of appearance.ts did not clearly help (bench/tracking.ts `levers`).
  appearanceGate: 1,
  appearanceWeight: 0,
  appearanceRate: 0.1,
};

// Noise scales from the reference Kalman filter, relative to the box size: measurement and position noise are 1/20
// of the size, velocity noise 1/160 of it per nominal frame.
const STD_POS = 1 / 20;
const STD_VEL = 1 / 160;
// IoU above which a lost track is considered a duplicate of an active one (the reference's 0.15 IoU distance).
const DUPLICATE_IOU = 0.85;

type Track = {
  id: number;
  classId: number;
  state: TrackState;
  // Kalman mean [cx, cy, w, h, vx, vy, vw, vh]; velocities are per nominal frame so the reference's noise constants
  // keep their meaning.
  mean: Float64Array;
  // With a constant-velocity transition, H = [I 0] and diagonal noise, the 8x8 covariance stays block-diagonal: four
  // independent (position, velocity) pairs. Storing each pair's [var(p), cov(p, v), var(v)] is exactly the full
  // filter, without 8x8 matrix algebra. Axis order: cx, cy, w, h.
  cov: Float64Array;
  stateMs: number;
  score: number;
  hits: number;
  age: number;
  missed: number;
  firstSeenMs: number;
  lastSeenMs: number;
  // Observed centres (cx, cy, ms) of the last OBS_HISTORY matches, oldest first: the direction of travel comes from
  // observations, not from the filter (OC-SORT), so a prediction that drifted during a miss does not bend it.
  obs: number[][];
  // Descriptor EMA, once a detection with one has been matched.
  feature: Float32Array | undefined;
};

const OBS_HISTORY = 5;
// The direction of travel is taken over at least this long and this far (in box heights), so detector jitter on a
// standing person gives no direction: at 10 fps the per-frame CV residual is 0.03 heights at the median. IDF1 at
// 3 / 5 / 10 fps with 0.05 heights: 0.87 / 0.94 / 0.999; 0.15: 0.87 / 0.92 / 1; 0.3: 0.84 / 0.89 / 1.
const DIRECTION_MIN_MS = 300;
const DIRECTION_MIN_HEIGHTS = 0.15;

export function createTracker(opts: Partial<TrackerOptions> = {}): Tracker {
  const o: TrackerOptions = { ...DEFAULT_TRACKER_OPTIONS, ...opts };
  let live: Track[] = [];
  let nextId = 1;

  // Horizontal axes (cx, w) scale their noise with the width, vertical ones (cy, h) with the height, as in the
  // xywh variant of the filter (BoT-SORT); the floor keeps a degenerate box from collapsing the covariance.
  const axisScale = (m: Float64Array, axis: number) => Math.max(1, (axis % 2 === 0 ? m[2] : m[3]) as number);

  function predict(t: Track, ms: number): void {
    const k = Math.max(0, ms - t.stateMs) / o.nominalFrameMs;
    t.stateMs = Math.max(t.stateMs, ms);
    const m = t.mean;
    const p = t.cov;
    // Nothing observes the size while the track is lost, so a size velocity would inflate or shrink the box unchecked.
    if (t.state === "lost") m[6] = m[7] = 0;
    if (k === 0) return;
    for (let i = 0; i < 4; i++) {
      const s = axisScale(m, i);
      m[i] = (m[i] as number) + (m[i + 4] as number) * k;
      const a = p[3 * i] as number;
      const b = p[3 * i + 1] as number;
      const c = p[3 * i + 2] as number;
      // Process noise is a random walk, so its variance grows linearly with elapsed time.
      p[3 * i] = a + 2 * k * b + k * k * c + (STD_POS * s) ** 2 * k;
      p[3 * i + 1] = b + k * c;
      p[3 * i + 2] = c + (STD_VEL * s) ** 2 * k;
    }
  }

  function correct(t: Track, dets: Detections, d: number): void {
    const m = t.mean;
    const p = t.cov;
    const z = toCxcywh(dets, d);
    const scales = [axisScale(m, 0), axisScale(m, 1), axisScale(m, 2), axisScale(m, 3)];
    for (let i = 0; i < 4; i++) {
      const r = (STD_POS * (scales[i] as number)) ** 2;
      const a = p[3 * i] as number;
      const b = p[3 * i + 1] as number;
      const c = p[3 * i + 2] as number;
      const sInv = 1 / (a + r);
      const innov = (z[i] as number) - (m[i] as number);
      m[i] = (m[i] as number) + a * sInv * innov;
      m[i + 4] = (m[i + 4] as number) + b * sInv * innov;
      p[3 * i] = a * r * sInv;
      p[3 * i + 1] = b * r * sInv;
      p[3 * i + 2] = c - b * b * sInv;
    }
  }

  function start(dets: Detections, d: number, ms: number): Track {
    const z = toCxcywh(dets, d);
    const mean = new Float64Array(8);
    mean.set(z);
    const cov = new Float64Array(12);
    for (let i = 0; i < 4; i++) {
      const s = axisScale(mean, i);
      // Velocity starts at zero but very uncertain, so the first few matches set it.
      cov[3 * i] = (2 * STD_POS * s) ** 2;
      cov[3 * i + 2] = (10 * STD_VEL * s) ** 2;
    }
    return {
      id: nextId++,
      classId: dets.classId[d] as number,
      state: o.minHits <= 1 ? "confirmed" : "tentative",
      mean,
      cov,
      stateMs: ms,
      score: dets.score[d] as number,
      hits: 1,
      age: 0,
      missed: 0,
      firstSeenMs: ms,
      lastSeenMs: ms,
      obs: [[z[0], z[1], ms]],
      feature: feats ? feats.slice(d * APPEARANCE_DIMS, (d + 1) * APPEARANCE_DIMS) : undefined,
    };
  }

  function hit(t: Track, dets: Detections, d: number, ms: number): void {
    correct(t, dets, d);
    t.score = dets.score[d] as number;
    t.hits++;
    t.missed = 0;
    t.lastSeenMs = ms;
    const z = toCxcywh(dets, d);
    t.obs.push([z[0], z[1], ms]);
    if (t.obs.length > OBS_HISTORY) t.obs.shift();
    if (feats) {
      if (!t.feature) t.feature = feats.slice(d * APPEARANCE_DIMS, (d + 1) * APPEARANCE_DIMS);
      else
        for (let k = 0; k < APPEARANCE_DIMS; k++) {
          const v = t.feature[k] as number;
          t.feature[k] = v + o.appearanceRate * ((feats[d * APPEARANCE_DIMS + k] as number) - v);
        }
    }
    if (t.state === "lost" || t.hits >= o.minHits) t.state = "confirmed";
  }

  // 1 - IoU for pairs at or above the IoU threshold. Below it, a pair inside the motion gate still costs less than
  // the limit (1): more than any IoU match, ranked by the centre's distance from the prediction relative to the
  // gate. At low sample rates a walking person moves about their own width between frames, so IoU alone is zero
  // (FACTS.md); the gate grows with the time since the track was last seen, as far as a person can walk in it.
  function pairCost(t: Track, dets: Detections, d: number, minIou: number, ms: number): number {
    if (dets.classId[d] !== t.classId) return Number.POSITIVE_INFINITY;
    const v = trackIou(t, dets, d);
    if (v >= minIou) return 1 - v;
    if (o.gateSpeed <= 0) return Number.POSITIVE_INFINITY;
    // A lost track is gated only for a short miss (a few dropped detections: gateMissed), and within the walk of
    // one update interval, not of the whole gap: across a longer miss its prediction is least sure and a gate there
    // merged people (bench/tracking.ts on vtest.avi: with the whole gap's radius, IDF1 fell 0.05 at 5 fps; with one
    // interval's, missed <= 1 / 2 / 5 gave 5 fps 0.909 / 0.915 / 0.914 and 10 fps 1 / 1 / 0.965 on an AVX2 host's
    // boxes).
    if (t.state === "lost" && t.missed > o.gateMissed) return Number.POSITIVE_INFINITY;
    const z = toCxcywh(dets, d);
    const m = t.mean;
    const h = Math.max(1, m[3] as number);
    if (Math.abs(Math.log(Math.max(1, z[3]) / h)) > o.gateLogHeight) return Number.POSITIVE_INFINITY;
    const since = t.state === "lost" ? ms - prevMs : ms - t.lastSeenMs;
    const gate = o.gateSlack + (o.gateSpeed * Math.max(0, since)) / 1000;
    const e = Math.hypot(z[0] - (m[0] as number), z[1] - (m[1] as number)) / h / gate;
    return e > 1 ? Number.POSITIVE_INFINITY : 1 - minIou + minIou * e;
  }

  // OC-SORT's momentum term: -1/2 when the detection continues the track's observed direction of travel, +1/2
  // when it reverses it, 0 when the track has no reliable direction yet.
  function turn(t: Track, dets: Detections, d: number): number {
    const last = t.obs[t.obs.length - 1] as number[];
    const from = t.obs.find((p) => (last[2] as number) - (p[2] as number) >= DIRECTION_MIN_MS);
    if (!from) return 0;
    const h = Math.max(1, t.mean[3] as number);
    const ux = (last[0] as number) - (from[0] as number);
    const uy = (last[1] as number) - (from[1] as number);
    if (Math.hypot(ux, uy) < DIRECTION_MIN_HEIGHTS * h) return 0;
    const z = toCxcywh(dets, d);
    const vx = z[0] - (last[0] as number);
    const vy = z[1] - (last[1] as number);
    if (Math.hypot(vx, vy) < DIRECTION_MIN_HEIGHTS * h) return 0;
    const a = Math.abs(Math.atan2(ux * vy - uy * vx, ux * vx + uy * vy));
    return a / Math.PI - 0.5;
  }

  function associate(tracks: Track[], detIdx: number[], dets: Detections, minIou: number, ms: number): Association {
    const maxCost = o.gateSpeed > 0 ? 1 : 1 - minIou;
    return solve(
      tracks,
      detIdx,
      (t, d) => {
        let c = pairCost(t, dets, d, minIou, ms);
        if (feats && t.feature && Number.isFinite(c) && (o.appearanceWeight > 0 || o.appearanceGate < 1)) {
          const a = appearanceDistance(t.feature, 0, feats, d);
          if (a > o.appearanceGate) return Number.POSITIVE_INFINITY;
          if (a >= 0) c = Math.min(maxCost, c + o.appearanceWeight * a);
        }
        // Not for lost tracks either: re-finding them by direction cost 0.04 IDF1 at 10 fps (7 more switches).
        if (t.state === "lost") return c;
        // Clamped to the limit so the momentum term re-ranks gated pairs but never gates one out (or in).
        return o.inertia > 0 && Number.isFinite(c) ? Math.min(maxCost, c + o.inertia * turn(t, dets, d)) : c;
      },
      maxCost,
    );
  }

  // This update's descriptors, if any (read by start, hit and associate).
  let feats: Float32Array | undefined;
  let prevMs = Number.NEGATIVE_INFINITY;

  function update(dets: Detections, timestampMs: number, appearance?: Float32Array): Detections {
    feats = appearance && appearance.length >= dets.length * APPEARANCE_DIMS ? appearance : undefined;
    for (const t of live) {
      predict(t, timestampMs);
      t.age++;
    }

    const high: number[] = [];
    const low: number[] = [];
    for (let i = 0; i < dets.length; i++) {
      const s = dets.score[i] as number;
      if (s >= o.highThresh) high.push(i);
      else if (s >= o.lowThresh) low.push(i);
    }

    const owner: (Track | undefined)[] = new Array(dets.length);
    const matched = new Set<Track>();
    const apply = (pairs: [Track, number][]) => {
      for (const [t, d] of pairs) {
        hit(t, dets, d, timestampMs);
        matched.add(t);
        owner[d] = t;
      }
    };

    // 1. Confident detections against every established track, including lost ones so occluded objects come back.
    const established = live.filter((t) => t.state !== "tentative");
    const first = associate(established, high, dets, o.matchIou, timestampMs);
    apply(first.pairs);
    // 2. ByteTrack's point: low-score boxes (often the occluded or blurred object itself) keep still-tracked tracks
    //    alive instead of being thrown away. Lost tracks are left out: a weak box is not enough to revive one.
    const stillTracked = first.tracks.filter((t) => t.state === "confirmed");
    apply(associate(stillTracked, low, dets, o.secondMatchIou, timestampMs).pairs);
    // 3. Tentative tracks only get what the established ones did not want.
    const tentative = live.filter((t) => t.state === "tentative");
    const third = associate(tentative, first.dets, dets, o.matchIou, timestampMs);
    apply(third.pairs);

    const next: Track[] = [];
    for (const t of live) {
      if (matched.has(t)) {
        next.push(t);
        continue;
      }
      // A tentative track that misses a frame was most likely a one-off false positive.
      if (t.state === "tentative") continue;
      t.state = "lost";
      t.missed++;
      if (t.missed <= o.trackBufferFrames) next.push(t);
    }
    for (const d of third.dets) {
      if ((dets.score[d] as number) < o.newTrackThresh) continue;
      const t = start(dets, d, timestampMs);
      next.push(t);
      owner[d] = t;
    }
    live = dropDuplicateLost(next);
    prevMs = timestampMs;

    const keep: number[] = [];
    for (let i = 0; i < dets.length; i++) if (owner[i]?.state === "confirmed") keep.push(i);
    const out = emptyDetections(keep.length);
    keep.forEach((i, j) => {
      out.xyxy.set(dets.xyxy.subarray(i * 4, i * 4 + 4), j * 4);
      out.score[j] = dets.score[i] as number;
      out.classId[j] = dets.classId[i] as number;
      out.trackId[j] = (owner[i] as Track).id;
    });
    return { ...out, length: keep.length };
  }

  function tracks(): readonly TrackView[] {
    const perSecond = 1000 / o.nominalFrameMs;
    return live.map((t) => {
      const m = t.mean;
      return {
        id: t.id,
        classId: t.classId,
        box: meanBox(m),
        velocity: [(m[4] as number) * perSecond, (m[5] as number) * perSecond],
        score: t.score,
        state: t.state,
        hits: t.hits,
        age: t.age,
        firstSeenMs: t.firstSeenMs,
        lastSeenMs: t.lastSeenMs,
      };
    });
  }

  return { update, tracks };
}

function toCxcywh(dets: Detections, d: number): [number, number, number, number] {
  const x1 = dets.xyxy[d * 4] as number;
  const y1 = dets.xyxy[d * 4 + 1] as number;
  const x2 = dets.xyxy[d * 4 + 2] as number;
  const y2 = dets.xyxy[d * 4 + 3] as number;
  return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1];
}

function meanBox(m: Float64Array): [number, number, number, number] {
  const cx = m[0] as number;
  const cy = m[1] as number;
  const hw = Math.max(0, m[2] as number) / 2;
  const hh = Math.max(0, m[3] as number) / 2;
  return [cx - hw, cy - hh, cx + hw, cy + hh];
}

function trackIou(t: Track, dets: Detections, d: number): number {
  const [x1, y1, x2, y2] = meanBox(t.mean);
  return iou(
    x1,
    y1,
    x2,
    y2,
    dets.xyxy[d * 4] as number,
    dets.xyxy[d * 4 + 1] as number,
    dets.xyxy[d * 4 + 2] as number,
    dets.xyxy[d * 4 + 3] as number,
  );
}

export function iou(
  ax1: number,
  ay1: number,
  ax2: number,
  ay2: number,
  bx1: number,
  by1: number,
  bx2: number,
  by2: number,
): number {
  const iw = Math.min(ax2, bx2) - Math.max(ax1, bx1);
  const ih = Math.min(ay2, by2) - Math.max(ay1, by1);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter;
  return union > 0 ? inter / union : 0;
}

type Association = { pairs: [Track, number][]; tracks: Track[]; dets: number[] };

/** Optimal one-to-one matching of tracks to detections (indices into dets) on `cost`, up to `maxCost`. */
function solve(tracks: Track[], detIdx: number[], cost: (t: Track, d: number) => number, maxCost: number): Association {
  const rows = tracks.length;
  const cols = detIdx.length;
  if (rows === 0 || cols === 0) return { pairs: [], tracks, dets: detIdx };
  const m = new Float64Array(rows * cols);
  tracks.forEach((t, r) => {
    detIdx.forEach((d, c) => {
      m[r * cols + c] = cost(t, d);
    });
  });
  const pairs = minCostMatching(m, rows, cols, maxCost);
  const usedT = new Set<number>();
  const usedD = new Set<number>();
  for (const [r, c] of pairs) {
    usedT.add(r);
    usedD.add(c);
  }
  return {
    pairs: pairs.map(([r, c]) => [tracks[r] as Track, detIdx[c] as number]),
    tracks: tracks.filter((_, r) => !usedT.has(r)),
    dets: detIdx.filter((_, c) => !usedD.has(c)),
  };
}

/**
 * Minimum-cost partial matching on a row-major `rows` x `cols` cost matrix: pairs whose cost exceeds `maxCost` (or is
 * not finite) are never matched, and a pair is only matched when that lowers the total of (cost - maxCost), i.e. the
 * semantics of lapjv with `cost_limit` that the reference tracker uses. Returns [row, col] pairs.
 */
export function minCostMatching(cost: Float64Array, rows: number, cols: number, maxCost: number): [number, number][] {
  // The solver below needs rows <= cols; transpose otherwise.
  const flip = rows > cols;
  const n = flip ? cols : rows;
  const m = flip ? rows : cols;
  // Making every forbidden pair cost 0 and every allowed pair (cost - maxCost) <= 0 turns "rows must all be assigned"
  // into "unassigned is free": a row given a forbidden column is simply unmatched. The epsilon makes a pair exactly at
  // the limit still worth taking.
  const w = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      const c = cost[flip ? j * cols + i : i * cols + j] as number;
      w[i * m + j] = Number.isFinite(c) && c <= maxCost ? c - maxCost - 1e-9 : 0;
    }
  }
  const colOwner = hungarian(w, n, m);
  const pairs: [number, number][] = [];
  for (let j = 0; j < m; j++) {
    const i = colOwner[j] as number;
    if (i < 0 || (w[i * m + j] as number) >= 0) continue;
    pairs.push(flip ? [j, i] : [i, j]);
  }
  return pairs;
}

// Hungarian algorithm with potentials (Kuhn-Munkres, O(n^2 m)), for n <= m: every row gets a distinct column at minimum
// total cost. Returns, per column, the row assigned to it or -1. Arrays are 1-based with index 0 as the virtual
// start column, as in the classic formulation.
function hungarian(a: Float64Array, n: number, m: number): Int32Array {
  const u = new Float64Array(n + 1);
  const v = new Float64Array(m + 1);
  const p = new Int32Array(m + 1); // p[j]: row (1-based) assigned to column j, 0 = none
  const way = new Int32Array(m + 1);
  const minv = new Float64Array(m + 1);
  const used = new Uint8Array(m + 1);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    minv.fill(Number.POSITIVE_INFINITY);
    used.fill(0);
    do {
      used[j0] = 1;
      const i0 = p[j0] as number;
      let delta = Number.POSITIVE_INFINITY;
      let j1 = 0;
      for (let j = 1; j <= m; j++) {
        if (used[j]) continue;
        const cur = (a[(i0 - 1) * m + (j - 1)] as number) - (u[i0] as number) - (v[j] as number);
        if (cur < (minv[j] as number)) {
          minv[j] = cur;
          way[j] = j0;
        }
        if ((minv[j] as number) < delta) {
          delta = minv[j] as number;
          j1 = j;
        }
      }
      for (let j = 0; j <= m; j++) {
        if (used[j]) {
          const r = p[j] as number;
          u[r] = (u[r] as number) + delta;
          v[j] = (v[j] as number) - delta;
        } else {
          minv[j] = (minv[j] as number) - delta;
        }
      }
      j0 = j1;
    } while (p[j0] !== 0);
    // Walk the augmenting path back, shifting assignments along it.
    do {
      const j1 = way[j0] as number;
      p[j0] = p[j1] as number;
      j0 = j1;
    } while (j0 !== 0);
  }
  const owner = new Int32Array(m).fill(-1);
  for (let j = 1; j <= m; j++) if ((p[j] as number) > 0) owner[j - 1] = (p[j] as number) - 1;
  return owner;
}

function dropDuplicateLost(tracks: Track[]): Track[] {
  const active = tracks.filter((t) => t.state === "confirmed");
  return tracks.filter((lost) => {
    if (lost.state !== "lost") return true;
    const [b1, b2, b3, b4] = meanBox(lost.mean);
    return !active.some((a) => {
      if (a.classId !== lost.classId) return false;
      const [a1, a2, a3, a4] = meanBox(a.mean);
      return iou(a1, a2, a3, a4, b1, b2, b3, b4) > DUPLICATE_IOU;
    });
  });
}
