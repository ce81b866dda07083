import { describe, expect, it } from "vitest";
import { type AlarmFacts, type AlarmSteps, clipDeadline, isRepeat, nextAction } from "../../alarms/state.ts";

const EVENT = 1_700_000_000_000;
const fresh: AlarmSteps = {
  event_ms: EVENT,
  post_seconds: 5,
  raised_delivered_ms: null,
  clip_ready_ms: null,
  clip_delivered_ms: null,
  completed_ms: null,
  status: "open",
  dead_reason: null,
};
const facts = (f: Partial<AlarmFacts> = {}): AlarmFacts => ({
  nowMs: EVENT + 1_000,
  clipPresent: false,
  clipGraceMs: 90_000,
  ...f,
});

describe("alarm state machine", () => {
  it("walks a fresh alarm through every step in order, one step per record change", () => {
    let r = { ...fresh };
    const seen: string[] = [];
    const clipAt = EVENT + 7_000;
    for (let now = EVENT + 100; seen.at(-1) !== "ack"; now += 500) {
      const a = nextAction(r, facts({ nowMs: now, clipPresent: now >= clipAt }));
      if (seen.at(-1) !== a.kind) seen.push(a.kind);
      if (a.kind === "deliver-raised") r = { ...r, raised_delivered_ms: now };
      if (a.kind === "clip-ready") r = { ...r, clip_ready_ms: now };
      if (a.kind === "deliver-clip") r = { ...r, clip_delivered_ms: now };
      if (a.kind === "complete") r = { ...r, completed_ms: now, status: "delivered" };
      expect(a.kind).not.toBe("dead");
    }
    expect(seen).toEqual(["deliver-raised", "wait-clip", "clip-ready", "deliver-clip", "complete", "ack"]);
  });

  it("resumes a redelivered alarm at its first step not done", () => {
    expect(nextAction({ ...fresh, raised_delivered_ms: EVENT }, facts()).kind).toBe("wait-clip");
    expect(nextAction({ ...fresh, raised_delivered_ms: EVENT }, facts({ clipPresent: true })).kind).toBe("clip-ready");
    expect(nextAction({ ...fresh, raised_delivered_ms: EVENT, clip_ready_ms: EVENT }, facts()).kind).toBe(
      "deliver-clip",
    );
    const delivered = { ...fresh, raised_delivered_ms: EVENT, clip_ready_ms: EVENT, clip_delivered_ms: EVENT };
    expect(nextAction(delivered, facts()).kind).toBe("complete");
    expect(nextAction({ ...delivered, completed_ms: EVENT, status: "delivered" }, facts()).kind).toBe("ack");
  });

  it("a clip recorded as ready is not looked for again (the store may have swept it since)", () => {
    const r = { ...fresh, raised_delivered_ms: EVENT, clip_ready_ms: EVENT };
    expect(nextAction(r, facts({ clipPresent: false, nowMs: EVENT + 10 * 60_000 })).kind).toBe("deliver-clip");
  });

  it("waits for the clip until the end of its window plus the grace, then dead-letters it with the reason", () => {
    const r = { ...fresh, raised_delivered_ms: EVENT };
    const deadline = EVENT + 5_000 + 90_000;
    expect(clipDeadline(r, 90_000)).toBe(deadline);
    expect(nextAction(r, facts({ nowMs: deadline - 1 }))).toEqual({ kind: "wait-clip", untilMs: deadline });
    const dead = nextAction(r, facts({ nowMs: deadline }));
    expect(dead.kind).toBe("dead");
    expect(dead.kind === "dead" && dead.reason).toBe(
      "clip never ready: not in the store 95 s after the event (post-roll 5 s + 90 s grace)",
    );
    // Present at the last moment still counts.
    expect(nextAction(r, facts({ nowMs: deadline + 1, clipPresent: true })).kind).toBe("clip-ready");
  });

  it("an alarm recorded dead is dead-lettered again with its reason, however far its steps went", () => {
    const r = { ...fresh, raised_delivered_ms: EVENT, status: "dead" as const, dead_reason: "endpoint disabled (410)" };
    expect(nextAction(r, facts())).toEqual({ kind: "dead", reason: "endpoint disabled (410)" });
  });

  it("counts a send as a repeat when an earlier attempt may have reached the receiver", () => {
    expect(isRepeat([])).toBe(false);
    expect(isRepeat([{ finished_ms: 1, status_code: 500 }])).toBe(false);
    expect(isRepeat([{ finished_ms: 1, status_code: null }])).toBe(false); // connection refused
    expect(isRepeat([{ finished_ms: null, status_code: null }])).toBe(true); // died mid-request
    expect(isRepeat([{ finished_ms: 1, status_code: 204 }])).toBe(true); // succeeded, step not recorded
  });
});
