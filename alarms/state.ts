// The alarm's state machine, pure: from its record (which steps are done) and a few facts about the world (is
// the clip in the store, what time is it), the one next thing to do. The service (service.ts) does it, records
// it, and asks again; a redelivered message starts from its record and so resumes where the last try stopped.
//
//   received ─ admit ─▶ deliver alarm.raised ─▶ wait for the clip ─▶ clip ready ─▶ deliver alarm.clip
//            ─▶ complete (the final commit) ─▶ ack
//
// Nothing here does I/O, reads a clock or throws.
import type { AlarmRecord } from "./records.ts";

export type AlarmFacts = {
  nowMs: number;
  /** Whether the clip is in the store (workers put it whole, after their ffprobe check). */
  clipPresent: boolean;
  /** How long after the end of the clip window (event time + post-roll) to wait for it before giving up. */
  clipGraceMs: number;
};

export type AlarmAction =
  | { kind: "deliver-raised" }
  /** Not there yet: look again until `untilMs`, then ask again. */
  | { kind: "wait-clip"; untilMs: number }
  /** The clip is there: record that before delivering it. */
  | { kind: "clip-ready" }
  | { kind: "deliver-clip" }
  /** Every step is done: the final commit. */
  | { kind: "complete" }
  /** Committed: the message may leave the queue. */
  | { kind: "ack" }
  | { kind: "dead"; reason: string };

export type AlarmSteps = Pick<
  AlarmRecord,
  | "event_ms"
  | "post_seconds"
  | "raised_delivered_ms"
  | "clip_ready_ms"
  | "clip_delivered_ms"
  | "completed_ms"
  | "status"
  | "dead_reason"
>;

/** The latest time the clip may appear: the end of its window (event + post-roll) plus the grace. */
export function clipDeadline(r: Pick<AlarmRecord, "event_ms" | "post_seconds">, graceMs: number): number {
  return r.event_ms + r.post_seconds * 1000 + graceMs;
}

export function nextAction(r: AlarmSteps, f: AlarmFacts): AlarmAction {
  // Dead already (a redelivery after markDead, before the dead-letter copy was confirmed): dead-letter again.
  if (r.status === "dead") return { kind: "dead", reason: r.dead_reason ?? "dead" };
  if (r.completed_ms !== null) return { kind: "ack" };
  if (r.raised_delivered_ms === null) return { kind: "deliver-raised" };
  if (r.clip_ready_ms === null) {
    if (f.clipPresent) return { kind: "clip-ready" };
    const deadline = clipDeadline(r, f.clipGraceMs);
    if (f.nowMs >= deadline)
      return {
        kind: "dead",
        reason: `clip never ready: not in the store ${Math.round((f.nowMs - r.event_ms) / 1000)} s after the event (post-roll ${r.post_seconds} s + ${Math.round(f.clipGraceMs / 1000)} s grace)`,
      };
    return { kind: "wait-clip", untilMs: deadline };
  }
  if (r.clip_delivered_ms === null) return { kind: "deliver-clip" };
  return { kind: "complete" };
}

/**
 * Whether a send of a delivery type repeats one the receiver may already have: an earlier attempt of that type
 * that never finished (the process died mid-request) or that succeeded without its step being recorded. The
 * send goes out with the same webhook-id either way; this only says whether to count it as a repeat.
 */
export function isRepeat(earlier: { finished_ms: number | null; status_code: number | null }[]): boolean {
  return earlier.some(
    (a) => a.finished_ms === null || (a.status_code !== null && a.status_code >= 200 && a.status_code < 300),
  );
}
