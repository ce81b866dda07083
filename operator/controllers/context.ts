// What both reconcilers share: caches, clients, the event recorder and the pool's placement decisions.

import type { KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Clients } from "../kube/client.ts";
import type { EventRecorder } from "../kube/events.ts";
import type { Informer } from "../kube/informer.ts";
import type { AlarmServiceAccount } from "./alarm-access.ts";
import type { LeaseTracker } from "./lease-tracker.ts";

export const FINALIZER = "vigil.dev/cleanup";

/** The pool reconciler's verdict for one camera; the camera reconciler turns it into status. */
export type Placement =
  | { pool: string; worker: string }
  | {
      pool: string;
      worker?: undefined;
      reason: "PoolFull" | "PoolNotFound" | "PoolInvalid" | "Paused" | "WorkerUnschedulable" | "WorkerNotReady";
      message: string;
    };

export type Caches = {
  cameras: Informer<KubernetesObject>;
  pools: Informer<KubernetesObject>;
  pods: Informer<KubernetesObject>;
  statefulSets: Informer<KubernetesObject>;
  services: Informer<KubernetesObject>;
  /** The workers' Leases (label vigil.dev/pool), renewed by the workers themselves. */
  leases: Informer<KubernetesObject>;
};

export type OperatorConfig = {
  workerImage: string;
  /** Image prefixes a pool's spec.image may use (operator/controllers/image-policy.ts), the default image included. */
  allowedImages: string[];
  workerServiceAccount: string;
  workerEnvSecret: string;
  /** The worker pods' tolerationSeconds for the not-ready and unreachable taints (spec.failover overrides it). */
  tolerationSeconds: number;
  /** Secret (and key) in each pool's namespace holding the workers' RABBITMQ_URL; unset, workers get none. */
  rabbitmqSecret?: { name: string; key: string };
  /** Secret (and key) in each pool's namespace holding the workers' REDIS_URL; unset, it comes from envFrom. */
  redisSecret?: { name: string; key: string };
  /** The clip store's claim in each pool's namespace; unset, workers have no clip store. */
  clipClaim?: string;
  /** The alarm service's ServiceAccount: each pool gets a Role for it naming its cameras' webhook Secrets. */
  alarmServiceAccount?: AlarmServiceAccount;
  /** How often a camera whose webhook Secret is not ready is looked at again (Secrets are not watched). */
  webhookRecheckMs?: number;
};

export type Context = {
  clients: Clients;
  caches: Caches;
  events: EventRecorder;
  log: Logger;
  config: OperatorConfig;
  placements: Map<string, Placement>;
  /** Each worker Lease's last renewal, timed on this operator's clock. */
  leases: LeaseTracker;
  enqueueCamera: (key: string) => void;
  enqueuePool: (key: string) => void;
};

export const keyOf = (namespace: string | undefined, name: string) => `${namespace ?? ""}/${name}`;
export const splitKey = (key: string) => {
  const i = key.indexOf("/");
  return { namespace: key.slice(0, i), name: key.slice(i + 1) };
};

export const isDeleting = (o: KubernetesObject) => Boolean(o.metadata?.deletionTimestamp);
export const hasFinalizer = (o: KubernetesObject) => (o.metadata?.finalizers ?? []).includes(FINALIZER);
export const timeOf = (t: unknown) => (t instanceof Date ? t.getTime() : typeof t === "string" ? Date.parse(t) : 0);

/** Runs fn over items with at most `limit` in flight: many small writes, without a thundering herd. */
export async function inBatches<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const errors: unknown[] = [];
  const run = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item).catch((e) => errors.push(e));
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  if (errors.length) throw errors[0];
}
