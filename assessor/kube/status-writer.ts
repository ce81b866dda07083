// Writes each AssessmentPool's status (assessor/kube/pool-status.ts) through the status subresource, as field manager
// vigil-assessor, at most once per interval (5 s): the key states change many times a second and the apiserver
// needs none of that. Only the replica holding the Lease vigil-assessor writes (operator/kube/leader-election.ts):
// every replica shares the key state in Redis, so any one of them reports the same numbers, and N writers would only
// multiply the writes and race each other's lastTransitionTimes. A write is skipped when nothing changed.

import type { KubeConfig } from "@kubernetes/client-node";
import { PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Condition } from "../../operator/api/meta.ts";
import { GROUP, VERSION } from "../../operator/api/meta.ts";
import { assessmentPools } from "../../operator/api/resources.ts";
import { apiError, isNotFound, makeClients, withSignal } from "../../operator/kube/client.ts";
import { LeaderElector } from "../../operator/kube/leader-election.ts";
import type { PoolConfig } from "../pool/types.ts";
import type { KubePoolSource } from "./pool-source.ts";
import { type PoolStats, poolStatus, problemStatus, type StatusPatch } from "./pool-status.ts";

export const STATUS_FIELD_MANAGER = "vigil-assessor";
export const ASSESSOR_LEASE = "vigil-assessor";

export type StatusWriterOptions = {
  kc: KubeConfig;
  source: Pick<KubePoolSource, "current" | "problems" | "object">;
  /** The pool's keys and scopes (KeyPool.status()), queue and DLQ depth; undefined while it has none to give. */
  stats: (pool: PoolConfig) => Promise<PoolStats | undefined>;
  /** Where the Lease lives: the assessor's own namespace (POD_NAMESPACE). */
  leaseNamespace: string;
  /** This process's candidate identity (pod name + a random token, as operator/config.ts `identity`). */
  identity: string;
  leaseName?: string;
  intervalMs?: number;
  /** false: write without an election (a single replica, tests). */
  leaderElect?: boolean;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log?: Logger;
};

export type StatusWriter = {
  /** Runs the election and the writes until stop(). */
  start(): void;
  /** Releases the Lease (a standby takes over at once) and stops. */
  stop(): Promise<void>;
  isLeader(): boolean;
  /** One pass over every pool now (the loop's body); returns the number of status writes made. */
  writeOnce(signal?: AbortSignal): Promise<number>;
  readonly stats: { writes: number; skipped: number; errors: number };
};

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });

export function createStatusWriter(opts: StatusWriterOptions): StatusWriter {
  const { custom, coordination } = makeClients(opts.kc);
  const intervalMs = opts.intervalMs ?? 5000;
  const elect = opts.leaderElect ?? true;
  const elector = elect
    ? new LeaderElector(coordination, {
        namespace: opts.leaseNamespace,
        name: opts.leaseName ?? ASSESSOR_LEASE,
        identity: opts.identity,
        ...(opts.leaseDurationMs ? { leaseDurationMs: opts.leaseDurationMs } : {}),
        ...(opts.renewDeadlineMs ? { renewDeadlineMs: opts.renewDeadlineMs } : {}),
        ...(opts.retryPeriodMs ? { retryPeriodMs: opts.retryPeriodMs } : {}),
        ...(opts.log ? { log: opts.log } : {}),
      })
    : undefined;
  const stats = { writes: 0, skipped: 0, errors: 0 };
  /** namespace/name → the status body last written and the conditions the apiserver returned, this term only. */
  let written = new Map<string, { body: string; conditions: Condition[] | undefined }>();
  const stop = new AbortController();
  let running: Promise<void> | undefined;

  async function writeOne(
    namespace: string,
    name: string,
    build: (c?: Condition[]) => StatusPatch,
    signal: AbortSignal,
  ) {
    const key = `${namespace}/${name}`;
    const last = written.get(key);
    const seen = opts.source.object(namespace, name)?.status?.conditions as Condition[] | undefined;
    const status = build(last?.conditions ?? seen);
    const body = JSON.stringify(status);
    if (last?.body === body) {
      stats.skipped++;
      return 0;
    }
    try {
      const back = (await custom.patchNamespacedCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          plural: assessmentPools.plural,
          namespace,
          name,
          body: { status },
          fieldManager: STATUS_FIELD_MANAGER,
        },
        setHeaderOptions(
          "Content-Type",
          PatchStrategy.MergePatch,
          withSignal(AbortSignal.any([signal, AbortSignal.timeout(Math.max(intervalMs, 5000))])),
        ),
      )) as { status?: { conditions?: Condition[] } };
      written.set(key, { body, conditions: back.status?.conditions ?? status.conditions });
      stats.writes++;
      return 1;
    } catch (err) {
      if (signal.aborted) return 0;
      if (isNotFound(err)) return 0; // deleted since the cache saw it
      stats.errors++;
      written.delete(key);
      opts.log?.warn({ pool: key, err: apiError(err) }, "status write failed");
      return 0;
    }
  }

  async function writeOnce(signal: AbortSignal = stop.signal): Promise<number> {
    const now = new Date();
    let n = 0;
    const live = new Set<string>();
    for (const pool of opts.source.current()) {
      if (signal.aborted) break;
      live.add(`${pool.namespace}/${pool.name}`);
      const s = await opts.stats(pool).catch((err: unknown) => {
        // The pool's own error text can hold anything; the key values are scrubbed by poolStatus only.
        opts.log?.warn({ pool: `${pool.namespace}/${pool.name}`, err: String((err as Error)?.name) }, "no stats");
        return undefined;
      });
      n += await writeOne(pool.namespace, pool.name, (c) => poolStatus(pool, s, c, now), signal);
    }
    for (const p of opts.source.problems()) {
      if (signal.aborted) break;
      live.add(`${p.namespace}/${p.name}`);
      n += await writeOne(p.namespace, p.name, (c) => problemStatus(p, c, now), signal);
    }
    for (const k of written.keys()) if (!live.has(k)) written.delete(k);
    return n;
  }

  async function loop(): Promise<void> {
    const signal = stop.signal;
    while (!signal.aborted) {
      if (elector && !(await elector.acquire(signal))) break;
      written = new Map(); // another replica may have written in between: start from the apiserver's view
      const lost = new AbortController();
      const held = elector ? elector.holdUntilLost(signal) : new Promise<"aborted">(() => undefined);
      void held.then(() => lost.abort());
      const term = AbortSignal.any([signal, lost.signal]);
      while (!term.aborted) {
        await writeOnce(term).catch((err: unknown) => {
          stats.errors++;
          opts.log?.warn({ err: apiError(err) }, "status pass failed");
        });
        await sleep(intervalMs, term);
      }
      if (!signal.aborted) opts.log?.warn({ lease: opts.leaseName ?? ASSESSOR_LEASE }, "status writer lost its lease");
    }
  }

  return {
    start() {
      running ??= loop();
    },
    async stop() {
      stop.abort();
      await running;
      await elector?.release();
    },
    isLeader: () => (elector ? elector.isLeader() : true),
    writeOnce,
    stats,
  };
}
