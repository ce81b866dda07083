// The operator as an Executor (single/executor.ts), beside the local-process one: in a cluster, workers are the
// pods of each DetectorPool's StatefulSet, and what the pool's status says of them is what workers() reports.
import type { KubernetesObject } from "@kubernetes/client-node";
import type { Executor, WorkerInfo } from "../single/executor.ts";
import type { SupervisedState } from "../single/supervisor.ts";
import type { WorkerStatus } from "./api/detector-pool.ts";
import { loadOperatorEnv, type OperatorEnv } from "./config.ts";
import type { Caches } from "./controllers/context.ts";
import { LABEL_WORKER } from "./controllers/workload.ts";
import { runOperator } from "./main.ts";

const STATE: Record<WorkerStatus["phase"], SupervisedState> = {
  Starting: "starting",
  Ready: "running",
  Unready: "backoff",
  Lost: "backoff",
};

export function createKubernetesExecutor(env: OperatorEnv = loadOperatorEnv()): Executor & { synced(): boolean } {
  const abort = new AbortController();
  let caches: Caches | undefined;
  let done: Promise<void> | undefined;
  return {
    async start() {
      done = runOperator(env, { signal: abort.signal, onSynced: (c) => (caches = c) });
    },
    async stop() {
      abort.abort();
      await done;
    },
    synced: () => caches !== undefined,
    workers(): WorkerInfo[] {
      if (!caches) return [];
      const cameras = caches.cameras.list();
      return caches.pools.list().flatMap((pool: KubernetesObject & { status?: { workers?: WorkerStatus[] } }) =>
        (pool.status?.workers ?? []).map((w) => ({
          name: w.name,
          pool: pool.metadata?.name ?? "",
          cameras: cameras
            .filter(
              (c) =>
                c.metadata?.namespace === pool.metadata?.namespace && c.metadata?.labels?.[LABEL_WORKER] === w.name,
            )
            .map((c) => c.metadata?.name ?? ""),
          pid: undefined, // a pod, not a local process
          restarts: 0,
          state: STATE[w.phase],
        })),
      );
    },
  };
}
