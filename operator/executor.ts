// The operator as an Executor (operator/api/executor.ts), beside the local-process one: in a cluster, workers are
// the pods of each DetectorPool's StatefulSet; their phase is what the pool's status says, their restarts what the
// kubelet counts on the pod.
import type { KubernetesObject } from "@kubernetes/client-node";
import type { WorkerStatus } from "./api/detector-pool.ts";
import type { Executor, WorkerInfo, WorkerState } from "./api/executor.ts";
import { loadOperatorEnv, type OperatorEnv } from "./config.ts";
import { type Caches, keyOf } from "./controllers/context.ts";
import { LABEL_WORKER } from "./controllers/workload.ts";
import { runOperator } from "./main.ts";

const STATE: Record<WorkerStatus["phase"], WorkerState> = {
  Starting: "starting",
  Ready: "running",
  Unready: "backoff",
  Lost: "backoff",
  Unschedulable: "starting",
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
            .map((c) => keyOf(c.metadata?.namespace, c.metadata?.name ?? "")), // camera ids: <namespace>/<name>
          restarts: restartsOf(caches?.pods.get(keyOf(pool.metadata?.namespace, w.name))),
          state: STATE[w.phase],
        })),
      );
    },
  };
}

type Pod = KubernetesObject & { status?: { containerStatuses?: { name: string; restartCount?: number }[] } };

/** The worker container's restartCount, as the kubelet reports it (0 before the pod exists). */
const restartsOf = (pod: KubernetesObject | undefined) =>
  (pod as Pod | undefined)?.status?.containerStatuses?.find((s) => s.name === "worker")?.restartCount ?? 0;
