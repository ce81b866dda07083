// Worker heartbeats without worker processes (no vitest here; the bench uses it too): the real Lease renewer
// (worker/lease.ts) for each named worker pod, as a running `vigil worker` does it, so the operator takes those
// workers for running. It plays only the worker's heartbeat: tests that need frames run real workers.
import type { Clients } from "../../operator/kube/client.ts";
import { startWorkerLease, type WorkerLease } from "../../worker/lease.ts";

export type WorkerLeases = {
  /** Starts renewing the Lease of worker pod `name` (it waits for the operator to create it). */
  start(...names: string[]): void;
  /** Stops renewing, as a worker process that dies does: its Lease runs out (6 s). */
  kill(name: string): Promise<void>;
  /** Stops and releases, as a worker does on SIGTERM: its cameras move at once. */
  stop(name: string): Promise<void>;
  holding(name: string): boolean;
  /** Releases every Lease still renewed. */
  close(): Promise<void>;
};

export function workerLeases(c: Clients, namespace: string): WorkerLeases {
  const running = new Map<string, WorkerLease>();
  const end = async (name: string, how: "stop" | "abandon") => {
    const lease = running.get(name);
    running.delete(name);
    await lease?.[how]();
  };
  return {
    start(...names) {
      for (const name of names)
        if (!running.has(name))
          running.set(name, startWorkerLease({ api: async () => c.coordination, namespace, name }));
    },
    kill: (name) => end(name, "abandon"),
    stop: (name) => end(name, "stop"),
    holding: (name) => running.get(name)?.holding() ?? false,
    close: async () => {
      await Promise.all([...running.keys()].map((n) => end(n, "stop")));
    },
  };
}
