// A worker's phase from what its pod shows and what the pool's status remembered (pure).
// Only a worker that was Ready and then stayed away past the grace period is Lost: a pod that is still
// starting, or blinks during a restart, keeps its cameras.
import type { WorkerPhase, WorkerStatus } from "../api/detector-pool.ts";

export type PodView = { ready: boolean; deleting: boolean };
export type WorkerState = { name: string; phase: WorkerPhase; since: string };

export function nextWorkerState(
  name: string,
  pod: PodView | undefined,
  prev: Pick<WorkerStatus, "phase" | "since"> | undefined,
  now: Date,
  graceMs: number,
): WorkerState {
  // Millisecond precision: the grace period is measured from here, and seconds would cut it short.
  const stamp = now.toISOString();
  const up = pod?.ready === true && !pod.deleting;
  const keep = (phase: WorkerPhase): WorkerState => ({
    name,
    phase,
    since: prev?.phase === phase ? prev.since : stamp,
  });
  if (up) return keep("Ready");
  switch (prev?.phase) {
    case undefined:
    case "Starting":
      return keep("Starting");
    case "Ready":
      return keep("Unready");
    case "Unready":
      return now.getTime() - Date.parse(prev.since) >= graceMs ? keep("Lost") : keep("Unready");
    case "Lost":
      return keep("Lost");
  }
}

export const isAssignable = (phase: WorkerPhase) => phase !== "Lost";

/** Milliseconds until an Unready worker turns Lost, for a timely requeue. */
export function msUntilLost(state: WorkerState, now: Date, graceMs: number): number | undefined {
  return state.phase === "Unready" ? Math.max(0, Date.parse(state.since) + graceMs - now.getTime()) : undefined;
}
