import { describe, expect, it } from "vitest";
import { isAssignable, nextWorkerState, podView } from "../../operator/controllers/worker-health.ts";

const t0 = new Date("2026-01-01T00:00:00.000Z");
const at = (s: number) => new Date(t0.getTime() + s * 1000);
const live = { live: true, held: true, expiresInMs: 6000 };
const expired = { live: false, held: true };
const never = { live: false, held: false };
const unschedulable = { unschedulable: "0/4 nodes are available: 3 Insufficient nvidia.com/gpu." };

describe("nextWorkerState", () => {
  it("a worker whose Lease was never renewed is Starting, however long it takes, and gets no cameras", () => {
    const s1 = nextWorkerState("w", never, {}, undefined, t0);
    const s2 = nextWorkerState("w", undefined, undefined, s1, at(3600));
    expect(s2).toEqual({ name: "w", phase: "Starting", since: "2026-01-01T00:00:00.000Z" });
    expect(isAssignable(s2.phase)).toBe(false);
  });

  it("a live Lease is Ready; expired after it was held, Lost at once (the Lease duration is the grace)", () => {
    const up = nextWorkerState("w", live, {}, undefined, t0);
    expect(up).toEqual({ name: "w", phase: "Ready", since: "2026-01-01T00:00:00.000Z" });
    expect(isAssignable(up.phase)).toBe(true);
    const lost = nextWorkerState("w", expired, {}, up, at(7));
    expect(lost).toEqual({ name: "w", phase: "Lost", since: "2026-01-01T00:00:07.000Z" });
    expect(isAssignable(lost.phase)).toBe(false);
    expect(nextWorkerState("w", expired, {}, lost, at(100))).toEqual(lost);
  });

  it("remembers that a worker ran when its Lease is gone from the cache or was recreated", () => {
    const up = nextWorkerState("w", live, {}, undefined, t0);
    expect(nextWorkerState("w", undefined, undefined, up, at(1)).phase).toBe("Lost");
    expect(nextWorkerState("w", never, {}, up, at(1)).phase).toBe("Lost");
    // Written by an operator before Leases, read as having run.
    expect(nextWorkerState("w", never, {}, { phase: "Unready", since: t0.toISOString() }, at(1)).phase).toBe("Lost");
  });

  it("comes back Ready from Lost once its Lease is renewed, and keeps `since` while nothing changes", () => {
    const lost = { phase: "Lost" as const, since: "2026-01-01T00:00:05Z" };
    const back = nextWorkerState("w", live, {}, lost, at(20));
    expect(back).toEqual({ name: "w", phase: "Ready", since: "2026-01-01T00:00:20.000Z" });
    expect(nextWorkerState("w", live, {}, back, at(99))).toEqual(back);
  });

  it("a pod the scheduler cannot place is Unschedulable, with the scheduler's message, not Starting", () => {
    const s = nextWorkerState("w", never, unschedulable, undefined, t0);
    expect(s).toEqual({
      name: "w",
      phase: "Unschedulable",
      since: t0.toISOString(),
      message: unschedulable.unschedulable,
    });
    expect(isAssignable(s.phase)).toBe(false);
    // Its replacement pod, pending after the worker was lost: why it does not come back.
    const up = nextWorkerState("w", live, {}, undefined, t0);
    expect(nextWorkerState("w", expired, unschedulable, up, at(60)).phase).toBe("Unschedulable");
    // A long message is cut: a status field and an Event keep its start.
    const long = nextWorkerState("w", never, { unschedulable: "x".repeat(5000) }, undefined, t0);
    expect(long.message).toHaveLength(1024);
  });

  it("a live Lease wins over what the pod says", () => {
    expect(nextWorkerState("w", live, unschedulable, undefined, t0).phase).toBe("Ready");
  });

  it("a live Lease whose holder's container exited since it took the Lease is Lost at once, not at its expiry", () => {
    const up = nextWorkerState("w", { ...live, acquiredAt: t0.getTime() }, {}, undefined, t0);
    expect(up.phase).toBe("Ready");
    // SIGKILLed 10 s after taking the Lease: the kubelet says so (and restarts it) long before the Lease runs out.
    const gone = nextWorkerState(
      "w",
      { ...live, acquiredAt: t0.getTime() },
      { exitedAt: at(10).getTime() },
      up,
      at(10.4),
    );
    expect(gone).toEqual({ name: "w", phase: "Lost", since: at(10.4).toISOString() });
    // The restarted process took the Lease over after that exit: Ready again.
    const back = nextWorkerState(
      "w",
      { ...live, acquiredAt: at(17).getTime() },
      { exitedAt: at(10).getTime() },
      gone,
      at(17),
    );
    expect(back.phase).toBe("Ready");
    // An exit before the holder took the Lease is an earlier process's: says nothing about this one.
    expect(
      nextWorkerState("w", { ...live, acquiredAt: at(17).getTime() }, { exitedAt: at(16).getTime() }, up, at(18)).phase,
    ).toBe("Ready");
    // A Lease that does not say when it was taken: only its expiry counts.
    expect(nextWorkerState("w", live, { exitedAt: at(10).getTime() }, up, at(11)).phase).toBe("Ready");
  });
});

describe("podView", () => {
  const pod = (phase: string, conditions: object[]) =>
    ({ status: { phase, conditions } }) as Parameters<typeof podView>[0];
  it("reads the scheduler's verdict from PodScheduled=False, reason Unschedulable, of a Pending pod", () => {
    const message =
      "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 3 Insufficient nvidia.com/gpu.";
    expect(
      podView(pod("Pending", [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message }])),
    ).toEqual({ unschedulable: message });
  });
  it("anything else says nothing: scheduled, not yet looked at, gated, or no pod", () => {
    expect(podView(pod("Pending", [{ type: "PodScheduled", status: "True" }]))).toEqual({});
    expect(podView(pod("Pending", []))).toEqual({});
    expect(
      podView(pod("Pending", [{ type: "PodScheduled", status: "False", reason: "SchedulingGated", message: "gated" }])),
    ).toEqual({});
    expect(podView(pod("Running", [{ type: "Ready", status: "True" }]))).toEqual({});
    expect(podView(undefined)).toBeUndefined();
  });
  it("the last exit of any container, from its state or its lastState, as the kubelet wrote it", () => {
    const exited = (finishedAt: string) => ({ terminated: { finishedAt } });
    const view = podView({
      status: {
        phase: "Running",
        containerStatuses: [
          { state: { running: {} }, lastState: exited("2026-01-01T00:00:10Z") },
          { state: exited("2026-01-01T00:00:04Z") },
        ],
      },
    } as Parameters<typeof podView>[0]);
    expect(view).toEqual({ exitedAt: at(10).getTime() });
    expect(podView({ status: { phase: "Running", containerStatuses: [{ state: { running: {} } }] } } as never)).toEqual(
      {},
    );
  });
});
