// Why a camera has no worker (pure): the pool is full, or the worker it waits for does not run, and why not.
import type { Placement } from "./context.ts";
import type { WorkerState } from "./worker-health.ts";

export type Unplaced = Omit<Extract<Placement, { reason: string }>, "pool">;

export type UnplacedVerdict = {
  /** Each unassigned camera's reason. */
  cameras: Map<string, Unplaced>;
  /** How many of them are beyond what maxWorkers can hold. */
  overflow: number;
  /** The pool's own: PoolFull when any camera overflows, else what the others wait for. */
  pool: Unplaced;
};

/** A message names a few workers: a pool of a hundred starting ones is not a hundred names. */
const NAMED = 3;
const names = (ws: readonly string[]) =>
  ws.length > NAMED ? `${ws.slice(0, NAMED).join(", ")} and ${ws.length - NAMED} more` : ws.join(", ");

/**
 * The youngest cameras beyond what maxWorkers can hold: the pool is full. The others wait for a worker the pool
 * wants and that does not run: one the scheduler cannot place (no free GPU), named with the scheduler's message,
 * else one starting, or lost and not back.
 */
export function whyUnplaced(
  pool: string,
  spec: { maxWorkers: number; camerasPerWorker: number },
  workers: readonly WorkerState[],
  activeCameras: number,
  /** Oldest first, as assignCameras returns them. */
  unassigned: readonly string[],
): UnplacedVerdict {
  const capacity = spec.maxWorkers * spec.camerasPerWorker;
  const full: Unplaced = {
    reason: "PoolFull",
    message: `DetectorPool ${pool} is full: ${capacity} cameras at maxWorkers=${spec.maxWorkers} × camerasPerWorker=${spec.camerasPerWorker}`,
  };
  const pending = workers.filter((w) => w.phase === "Unschedulable");
  const down = workers.some((w) => w.phase !== "Ready");
  const waiting: Unplaced = pending[0]
    ? {
        reason: "WorkerUnschedulable",
        message: `worker pod ${names(pending.map((w) => w.name))} cannot be scheduled: ${pending[0].message ?? ""}`,
      }
    : down
      ? {
          reason: "WorkerNotReady",
          // The same words while workers come and go: each change would be a status write for every waiting camera
          // (1000 cameras on 100 starting workers: 10 writes each). The pool's status.workers says which.
          message: `waiting for a worker of DetectorPool ${pool} with room to run (one takes cameras once its Lease is renewed; status.workers of the pool says which are not running)`,
        }
      : full;
  const overflow = Math.max(0, Math.min(unassigned.length, activeCameras - capacity));
  return {
    cameras: new Map(unassigned.map((k, i) => [k, i >= unassigned.length - overflow ? full : waiting])),
    overflow,
    pool: overflow > 0 ? full : waiting,
  };
}
