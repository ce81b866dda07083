// A worker's phase from its Lease and its pod (pure). The Lease says whether the worker process runs: it renews it
// every 2 s for 6 s (worker/lease.ts), so a process that dies, hangs or is cut off is Lost within 6 s, with no
// grace on top (the Lease duration is the grace), and a worker that stopped cleanly released it: Lost at once. The
// pod says only why a worker that never ran does not run: a pod the scheduler cannot place (no free GPU) is
// Unschedulable, which is not capacity, and says sooner than the Lease that its process died: a container that exited
// after the Lease's holder took it took the holder with it (containers of a pod run one after the other), so the
// worker is Lost at once, not up to 6 s later. Measured in the fleet e2e: a SIGKILLed worker's cameras streamed
// elsewhere 11–16.8 s after the kill with the Lease alone.
import type { WorkerPhase, WorkerStatus } from "../api/detector-pool.ts";
import type { LeaseView } from "./lease-tracker.ts";

/**
 * What the pod adds: the scheduler's message when it cannot place the pod (PodScheduled=False, Unschedulable), and
 * when a container of it last exited (ms epoch; the kubelet's finishedAt, in whole seconds).
 */
export type PodView = { unschedulable?: string | undefined; exitedAt?: number | undefined };
export type WorkerState = { name: string; phase: WorkerPhase; since: string; message?: string | undefined };

/** Scheduler messages list every node's reason; a status field and an Event keep the start of it. */
const MAX_MESSAGE = 1024;

export function nextWorkerState(
  name: string,
  lease: LeaseView | undefined,
  pod: PodView | undefined,
  prev: Pick<WorkerStatus, "phase" | "since"> | undefined,
  now: Date,
): WorkerState {
  // Millisecond precision: a move is measured in seconds, and seconds would round it away.
  const stamp = now.toISOString();
  const keep = (phase: WorkerPhase, message?: string): WorkerState => ({
    name,
    phase,
    since: prev?.phase === phase ? prev.since : stamp,
    ...(message !== undefined ? { message: message.slice(0, MAX_MESSAGE) } : {}),
  });
  // finishedAt is cut to the second, so it never reads later than the exit: a process that exited within the
  // second its holder took the Lease is left to the Lease's expiry, never a live one taken for dead.
  const holderExited =
    lease?.acquiredAt !== undefined && pod?.exitedAt !== undefined && pod.exitedAt >= lease.acquiredAt;
  if (lease?.live && !holderExited) return keep("Ready");
  if (pod?.unschedulable !== undefined) return keep("Unschedulable", pod.unschedulable);
  // Held once (the Lease remembers it; the status too, across a Lease recreated or not yet in the cache).
  const ran =
    lease?.held || holderExited || prev?.phase === "Ready" || prev?.phase === "Unready" || prev?.phase === "Lost";
  return keep(ran ? "Lost" : "Starting");
}

/** Only a worker whose Lease is live is given cameras: one that never ran, or stopped, gets none. */
export const isAssignable = (phase: WorkerPhase) => phase === "Ready";

/** The pod of `name` as the scheduler left it: its message when it cannot be placed. */
export function podView(
  pod:
    | {
        status?: {
          phase?: string;
          conditions?: { type: string; status: string; reason?: string; message?: string }[];
          containerStatuses?: {
            state?: { terminated?: { finishedAt?: Date | string } };
            lastState?: { terminated?: { finishedAt?: Date | string } };
          }[];
        };
      }
    | undefined,
): PodView | undefined {
  if (!pod) return undefined;
  const exits = (pod.status?.containerStatuses ?? [])
    .flatMap((c) => [c.state?.terminated?.finishedAt, c.lastState?.terminated?.finishedAt])
    .map((t) => (t ? new Date(t).getTime() : Number.NaN))
    .filter((t) => Number.isFinite(t));
  const exitedAt = exits.length > 0 ? Math.max(...exits) : undefined;
  const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
  const unschedulable =
    (pod.status?.phase ?? "Pending") === "Pending" &&
    scheduled?.status === "False" &&
    scheduled.reason === "Unschedulable";
  return {
    ...(unschedulable ? { unschedulable: scheduled.message ?? "" } : {}),
    ...(exitedAt !== undefined ? { exitedAt } : {}),
  };
}
