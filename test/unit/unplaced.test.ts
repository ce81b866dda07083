import { describe, expect, it } from "vitest";
import { whyUnplaced } from "../../operator/controllers/unplaced.ts";
import type { WorkerState } from "../../operator/controllers/worker-health.ts";

const since = "2026-01-01T00:00:00.000Z";
const w = (name: string, phase: WorkerState["phase"], message?: string): WorkerState => ({
  name,
  phase,
  since,
  ...(message ? { message } : {}),
});
const spec = { maxWorkers: 3, camerasPerWorker: 1 };
const SCHED =
  "0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 3 Insufficient nvidia.com/gpu.";

describe("whyUnplaced", () => {
  it("names the pending pod and the scheduler's message when the pool wants a worker the cluster cannot place", () => {
    const v = whyUnplaced(
      "p",
      spec,
      [w("p-worker-0", "Ready"), w("p-worker-1", "Ready"), w("p-worker-2", "Unschedulable", SCHED)],
      3,
      ["ns/c"],
    );
    expect(v.cameras.get("ns/c")).toEqual({
      reason: "WorkerUnschedulable",
      message: `worker pod p-worker-2 cannot be scheduled: ${SCHED}`,
    });
    expect(v.overflow).toBe(0);
    expect(v.pool.reason).toBe("WorkerUnschedulable");
  });

  it("beyond maxWorkers the youngest cameras are PoolFull; the rest still wait for the worker", () => {
    const workers = [w("p-worker-0", "Ready"), w("p-worker-1", "Ready"), w("p-worker-2", "Unschedulable", SCHED)];
    const v = whyUnplaced("p", spec, workers, 5, ["ns/old", "ns/young", "ns/youngest"]);
    expect(v.cameras.get("ns/old")?.reason).toBe("WorkerUnschedulable");
    expect(v.cameras.get("ns/young")).toEqual({
      reason: "PoolFull",
      message: "DetectorPool p is full: 3 cameras at maxWorkers=3 × camerasPerWorker=1",
    });
    expect(v.cameras.get("ns/youngest")?.reason).toBe("PoolFull");
    expect(v.overflow).toBe(2);
    expect(v.pool.reason).toBe("PoolFull");
  });

  it("all workers running and the pool at maxWorkers: PoolFull, as before", () => {
    const v = whyUnplaced("p", spec, [w("a", "Ready"), w("b", "Ready"), w("c", "Ready")], 4, ["ns/x"]);
    expect(v.cameras.get("ns/x")?.reason).toBe("PoolFull");
  });

  it("otherwise waits for workers that are starting or lost, in words that stay the same while they come", () => {
    const v = whyUnplaced(
      "p",
      { maxWorkers: 10, camerasPerWorker: 1 },
      [w("p-worker-0", "Lost"), ...[1, 2, 3, 4].map((i) => w(`p-worker-${i}`, "Starting"))],
      5,
      ["ns/a"],
    );
    expect(v.cameras.get("ns/a")).toEqual({
      reason: "WorkerNotReady",
      message:
        "waiting for a worker of DetectorPool p with room to run (one takes cameras once its Lease is renewed; status.workers of the pool says which are not running)",
    });
  });
});
