// Identity carry-over for the rules engine: which new tracker id continues a person the tracker just lost.
//
// At low sample rates a walking person moves about their own width between samples, IoU association fails, and
// the tracker ends one id and starts another a little further on. Without this, every new id born inside a zone
// fires presence again and restarts dwell and sequence: one person, several alarms. Pure: positions, times and
// zone names in, pairs out.
import type { Box } from "./geometry.ts";

/**
 * A track the engine sees for the first time inside a zone, of the same class as a track that went missing inside
 * that zone (and is not in this frame), at most maxGapMs after that track's last frame and within reach of where it
 * would be by now, is that person. Windows chosen on vtest.avi (bench/tracking/presence.ts), each pair judged
 * against the 10 fps tracks as pseudo ground truth, and the 10 fps pairs by eye:
 * - true continuations had gaps of 0.2–2 s at 3–10 fps and 1–2 s at 1 fps (a new id is reported one sample after
 *   it starts, since minHits is 2); most pairs with a 3 s gap were two people passing the same spot;
 * - they lay within about 0.3 box heights of the predicted point, plus 0.5 per second of gap (people there walk
 *   about 0.4 heights a second). Against a 0.5 base: at 3 fps 2 pairs that joined two people instead of 4 (7 right
 *   ones instead of 8), at 1 fps 6 instead of 8 (13 right instead of 11), and at 10 fps a woman stepping out from
 *   behind a man 0.4 s after he went behind a sign was no longer taken for him. A 0.2 base or 0.4 per second only
 *   let more duplicates through.
 */
export type CarryOverOptions = {
  /** The longest time between the lost track's last frame and the new track's first. */
  maxGapMs: number;
  /**
   * How far the new track's anchor (bottom centre) may be from where the lost one was heading, in heights of the
   * lost box: `base` plus `perSecond` for each second of the gap, since the prediction drifts the longer it runs.
   */
  radius: { base: number; perSecond: number };
  /**
   * A track last seen with its box this close to the frame's border (a fraction of the frame) left the picture;
   * it is not inherited, because someone who appears there next is usually someone else coming in.
   */
  edgeMargin: number;
};

/**
 * 2.5 s: two sample periods at 1 fps, the lowest rate cameras use, with room for timestamp jitter, and short of the
 * 3 s gaps that were mostly two people (3 s at 1 fps: 4 more wrong pairs for 1 more right one). The 2 % margin: a
 * person walking out of vtest.avi was last boxed 11 px (1.4 %) from the border, and without the margin the two
 * people who walked in there 1–2 s after someone walked out (checked by eye at 10 fps) were taken for them.
 */
export const DEFAULT_CARRY_OVER: Readonly<CarryOverOptions> = {
  maxGapMs: 2500,
  radius: { base: 0.3, perSecond: 0.5 },
  edgeMargin: 0.02,
};

/** Where the engine last saw a person it has lost. */
export type LostTrack = {
  /** The tracker id it went by. */
  readonly key: number;
  readonly classId: number;
  readonly lastSeenMs: number;
  readonly lastBox: Box;
  /** An earlier sighting, for the direction and speed it was moving in. */
  readonly motionFrom: { readonly box: Box; readonly ms: number };
  /** Zones it was in when last seen. */
  readonly zones: ReadonlySet<string>;
};

/** A tracker id seen for the first time. */
export type NewTrack = {
  readonly id: number;
  readonly classId: number;
  readonly box: Box;
  readonly zones: ReadonlySet<string>;
};

/**
 * New track id → the key of the lost track it continues. Each lost track goes to at most one new one: of all pairs
 * within reach, the nearest relative to its reach first (so a long gap barely in range does not beat a short one),
 * then the shorter gap, then the lower ids, which keeps the choice deterministic.
 */
export function matchHeirs(
  opts: CarryOverOptions,
  born: readonly NewTrack[],
  lost: readonly LostTrack[],
  now: number,
  width: number,
  height: number,
): Map<number, number> {
  const heirs = new Map<number, number>();
  const mx = opts.edgeMargin * width;
  const my = opts.edgeMargin * height;
  const leftPicture = (b: Box) => b[0] <= mx || b[1] <= my || b[2] >= width - mx || b[3] >= height - my;
  const open = lost.filter(
    (l) => l.lastSeenMs < now && now - l.lastSeenMs <= opts.maxGapMs && l.zones.size > 0 && !leftPicture(l.lastBox),
  );
  const pairs: { born: number; lost: number; score: number; gap: number }[] = [];
  for (const b of born) {
    if (b.zones.size === 0) continue;
    for (const l of open) {
      if (l.classId !== b.classId || ![...b.zones].some((z) => l.zones.has(z))) continue;
      const gap = now - l.lastSeenMs;
      const [px, py] = predictedAnchor(l, gap);
      const dist = Math.hypot((b.box[0] + b.box[2]) / 2 - px, b.box[3] - py);
      const reach =
        (opts.radius.base + (opts.radius.perSecond * gap) / 1000) * Math.max(l.lastBox[3] - l.lastBox[1], 1);
      if (dist <= reach) pairs.push({ born: b.id, lost: l.key, score: dist / reach, gap });
    }
  }
  pairs.sort((p, q) => p.score - q.score || p.gap - q.gap || p.born - q.born || p.lost - q.lost);
  const taken = new Set<number>();
  for (const p of pairs) {
    if (heirs.has(p.born) || taken.has(p.lost)) continue;
    heirs.set(p.born, p.lost);
    taken.add(p.lost);
  }
  return heirs;
}

/**
 * The lost track's anchor moved on at its last speed for `gap` ms: a person walking behind a sign comes out on the
 * other side, and one walking away from the spot is not taken for someone arriving at it (on vtest.avi at 3 fps it
 * cut the pairs that joined two people from 6 to 2, and found 7 right ones instead of 4). Standing still when only
 * one sighting is known.
 */
function predictedAnchor(l: LostTrack, gap: number): [number, number] {
  const x = (l.lastBox[0] + l.lastBox[2]) / 2;
  const y = l.lastBox[3];
  const dt = l.lastSeenMs - l.motionFrom.ms;
  if (!(dt > 0)) return [x, y];
  const k = gap / dt;
  return [x + (x - (l.motionFrom.box[0] + l.motionFrom.box[2]) / 2) * k, y + (y - l.motionFrom.box[3]) * k];
}
