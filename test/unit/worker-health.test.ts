import { describe, expect, it } from "vitest";
import { msUntilLost, nextWorkerState } from "../../operator/controllers/worker-health.ts";

const t0 = new Date("2026-01-01T00:00:00.000Z");
const at = (s: number) => new Date(t0.getTime() + s * 1000);
const ready = { ready: true, deleting: false };
const notReady = { ready: false, deleting: false };

describe("nextWorkerState", () => {
  it("a worker that never came up is Starting, not Lost, however long it takes", () => {
    const s1 = nextWorkerState("w", undefined, undefined, t0, 10_000);
    const s2 = nextWorkerState("w", notReady, s1, at(3600), 10_000);
    expect(s2).toEqual({ name: "w", phase: "Starting", since: "2026-01-01T00:00:00.000Z" });
  });

  it("Ready → Unready when the pod goes away, Lost only after the grace period", () => {
    const up = nextWorkerState("w", ready, undefined, t0, 10_000);
    expect(up.phase).toBe("Ready");
    const blip = nextWorkerState("w", undefined, up, at(1), 10_000);
    expect(blip).toEqual({ name: "w", phase: "Unready", since: "2026-01-01T00:00:01.000Z" });
    expect(msUntilLost(blip, at(4), 10_000)).toBe(7000);
    expect(nextWorkerState("w", undefined, blip, at(10), 10_000).phase).toBe("Unready");
    const lost = nextWorkerState("w", notReady, blip, at(11), 10_000);
    expect(lost.phase).toBe("Lost");
    expect(nextWorkerState("w", notReady, lost, at(100), 10_000)).toEqual(lost);
  });

  it("a deleting pod counts as down even while Ready", () => {
    const up = nextWorkerState("w", ready, undefined, t0, 10_000);
    expect(nextWorkerState("w", { ready: true, deleting: true }, up, at(1), 10_000).phase).toBe("Unready");
  });

  it("comes back Ready from Lost, and keeps `since` while nothing changes", () => {
    const lost = { phase: "Lost" as const, since: "2026-01-01T00:00:05Z" };
    const back = nextWorkerState("w", ready, lost, at(20), 10_000);
    expect(back).toEqual({ name: "w", phase: "Ready", since: "2026-01-01T00:00:20.000Z" });
    expect(nextWorkerState("w", ready, back, at(99), 10_000)).toEqual(back);
  });
});
