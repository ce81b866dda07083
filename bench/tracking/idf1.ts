// Identity metrics (Ristani et al. 2016, "Performance Measures and a Data Set for Multi-Target, Multi-Camera
// Tracking") and CLEAR-MOT's ID switches (Bernardin & Stiefelhagen 2008), computed as py-motmetrics and TrackEval do.
//
// IDF1: a GT box and a predicted box "co-occur" in a frame when IoU >= 0.5 (every such pair counts, not just a
// per-frame one-to-one matching: TrackEval's `potential_matches_count`, py-motmetrics' finite-distance raw events).
// GT identities are then matched one-to-one to predicted identities, globally, at minimum IDFN + IDFP, with a dummy
// partner for every identity left unmatched. A matched pair (g, p) costs (n_g - c) + (n_p - c) where c is their
// co-occurrence count; an unmatched g costs n_g, an unmatched p n_p. So the total is sum n_g + sum n_p - 2 sum c
// over matched pairs, and the dummy-node problem is exactly the maximum-weight partial matching on c, which
// minCostMatching solves with cost -c and a cost limit of 0 (a pair with c = 0 never helps).
// Then IDTP = sum of matched c, IDFN = (GT boxes) - IDTP, IDFP = (predicted boxes) - IDTP.
import { iou, minCostMatching } from "../../worker/track/bytetrack.ts";

export type IdBox = { id: number; box: readonly [number, number, number, number] };
/** One frame: the GT boxes and the predicted boxes seen in it. */
export type ScoredFrame = { gt: readonly IdBox[]; pred: readonly IdBox[] };

export type IdentityMetrics = {
  idf1: number;
  idp: number;
  idr: number;
  idtp: number;
  idfp: number;
  idfn: number;
  /** CLEAR-MOT identity switches. */
  idsw: number;
  gtIds: number;
  predIds: number;
};

/** The IoU threshold of both metrics (the MOTChallenge default). */
export const MATCH_IOU = 0.5;

const boxIou = (a: IdBox, b: IdBox) =>
  iou(a.box[0], a.box[1], a.box[2], a.box[3], b.box[0], b.box[1], b.box[2], b.box[3]);

export function identityMetrics(frames: readonly ScoredFrame[]): IdentityMetrics {
  const gtIndex = new Map<number, number>();
  const predIndex = new Map<number, number>();
  const gtCount: number[] = [];
  const predCount: number[] = [];
  const co = new Map<number, number>(); // g * K + p -> frames where g and p overlap at IoU >= 0.5
  const pairs: [number, number][] = []; // filled per frame, then folded into co once the id counts are known
  const index = (m: Map<number, number>, counts: number[], id: number) => {
    let i = m.get(id);
    if (i === undefined) {
      i = m.size;
      m.set(id, i);
      counts.push(0);
    }
    counts[i] = (counts[i] as number) + 1;
    return i;
  };
  for (const f of frames) {
    const g = f.gt.map((b) => index(gtIndex, gtCount, b.id));
    const p = f.pred.map((b) => index(predIndex, predCount, b.id));
    f.gt.forEach((gb, i) => {
      f.pred.forEach((pb, j) => {
        if (boxIou(gb, pb) >= MATCH_IOU) pairs.push([g[i] as number, p[j] as number]);
      });
    });
  }
  const nG = gtCount.length;
  const nP = predCount.length;
  for (const [g, p] of pairs) co.set(g * nP + p, (co.get(g * nP + p) ?? 0) + 1);
  const cost = new Float64Array(nG * nP).fill(Number.POSITIVE_INFINITY);
  for (const [k, c] of co) cost[k] = -c;
  let idtp = 0;
  for (const [g, p] of minCostMatching(cost, nG, nP, 0)) idtp += co.get(g * nP + p) ?? 0;
  const totalGt = gtCount.reduce((a, b) => a + b, 0);
  const totalPred = predCount.reduce((a, b) => a + b, 0);
  const idfn = totalGt - idtp;
  const idfp = totalPred - idtp;
  const ratio = (a: number, b: number) => (b > 0 ? a / b : 0);
  return {
    idf1: ratio(2 * idtp, 2 * idtp + idfp + idfn),
    idp: ratio(idtp, idtp + idfp),
    idr: ratio(idtp, idtp + idfn),
    idtp,
    idfp,
    idfn,
    idsw: idSwitches(frames),
    gtIds: nG,
    predIds: nP,
  };
}

/**
 * CLEAR-MOT identity switches as py-motmetrics counts them: per frame, a GT id keeps the predicted id it was last
 * matched to if they still overlap at IoU >= 0.5 (and that predicted id is free); the rest are matched at minimum
 * total (1 - IoU). A GT id matched to a different predicted id than the last one it ever had (across gaps) is a switch.
 */
export function idSwitches(frames: readonly ScoredFrame[]): number {
  const last = new Map<number, number>(); // GT id -> predicted id it was last matched to
  let switches = 0;
  for (const f of frames) {
    const gtTaken = new Set<number>();
    const predTaken = new Set<number>();
    for (let i = 0; i < f.gt.length; i++) {
      const gb = f.gt[i] as IdBox;
      const prev = last.get(gb.id);
      if (prev === undefined) continue;
      const j = f.pred.findIndex((pb, k) => pb.id === prev && !predTaken.has(k));
      if (j >= 0 && boxIou(gb, f.pred[j] as IdBox) >= MATCH_IOU) {
        gtTaken.add(i);
        predTaken.add(j);
      }
    }
    const gi = f.gt.map((_, i) => i).filter((i) => !gtTaken.has(i));
    const pj = f.pred.map((_, j) => j).filter((j) => !predTaken.has(j));
    const cost = new Float64Array(gi.length * pj.length).fill(Number.POSITIVE_INFINITY);
    gi.forEach((i, r) => {
      pj.forEach((j, c) => {
        const v = boxIou(f.gt[i] as IdBox, f.pred[j] as IdBox);
        if (v >= MATCH_IOU) cost[r * pj.length + c] = 1 - v;
      });
    });
    for (const [r, c] of minCostMatching(cost, gi.length, pj.length, 1 - MATCH_IOU)) {
      const g = (f.gt[gi[r] as number] as IdBox).id;
      const p = (f.pred[pj[c] as number] as IdBox).id;
      const prev = last.get(g);
      if (prev !== undefined && prev !== p) switches++;
      last.set(g, p);
    }
  }
  return switches;
}
