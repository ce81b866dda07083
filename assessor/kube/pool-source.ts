// The assessor's pools from the Kubernetes API: a list+watch cache of AssessmentPools (one namespace or all), and one
// of each Secret they name, only those (a field selector per name: RBAC can then grant them by resourceNames), so
// an edited Secret reaches the pools within a watch event. A pool whose spec or Secret does not parse is not used;
// it is reported by `problems()` with an error naming the field, never a key value (assessor/kube/parse-pool.ts).
import { EventEmitter } from "node:events";
import type { KubeConfig, KubernetesObject, V1Secret } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { GROUP, VERSION } from "../../operator/api/meta.ts";
import { assessmentPools, collectionPath } from "../../operator/api/resources.ts";
import { loadKubeConfig, makeClients } from "../../operator/kube/client.ts";
import { Informer, type ListResult, objectKey, stripManagedFields } from "../../operator/kube/informer.ts";
import type { PoolConfig } from "../pool/types.ts";
import { parseKeysSecret, parsePoolSpec } from "./parse-pool.ts";

type PoolObject = KubernetesObject & { spec?: unknown; status?: Record<string, unknown> };

/** A pool that is not used, and why (shown in its status: condition KeysValid=False). */
export type PoolProblem = {
  namespace: string;
  name: string;
  generation?: number;
  /** InvalidSpec, SecretNotFound, InvalidKeys or SecretPending. */
  reason: string;
  error: string;
};

export type KubePoolSourceOptions = {
  /** A KubeConfig, or the path of a kubeconfig file (default: $KUBECONFIG, then in-cluster). */
  kc?: KubeConfig;
  kubeconfig?: string;
  /** Only this namespace's pools; all namespaces when unset (needs cluster-wide list/watch). */
  namespace?: string;
  log?: Logger;
  relistMs?: number;
  /** How long start() waits for the named Secrets' first lists (a Secret it may not read must not block it). */
  syncTimeoutMs?: number;
};

export type KubePoolSource = {
  /** Starts the caches; resolves once the pools and the Secrets they name have listed (or syncTimeoutMs passed). */
  start(): Promise<void>;
  /** The pools fit to run, sorted by namespace/name. */
  current(): PoolConfig[];
  /** The pools that are not run, with the error to show. */
  problems(): PoolProblem[];
  /** The AssessmentPool as last seen (its status.conditions carry the lastTransitionTimes the writer keeps). */
  object(namespace: string, name: string): PoolObject | undefined;
  /** After any change of current() or problems(); fn gets current(). */
  on(event: "change", fn: (pools: PoolConfig[]) => void): void;
  off(event: "change", fn: (pools: PoolConfig[]) => void): void;
  stop(): void;
};

type SecretWatch = { informer: Informer<V1Secret>; users: Set<string> };

export function createKubePoolSource(opts: KubePoolSourceOptions): KubePoolSource {
  const kc = opts.kc ?? (opts.kubeconfig ? loadKubeConfig(opts.kubeconfig) : loadKubeConfig());
  const clients = makeClients(kc);
  const ns = opts.namespace;
  const events = new EventEmitter();
  const relist = opts.relistMs ? { relistMs: opts.relistMs } : {};
  const log = opts.log ? { log: opts.log } : {};

  const pools = new Informer<PoolObject>(kc, {
    path: collectionPath(assessmentPools, ns),
    ...relist,
    ...log,
    transform: stripManagedFields,
    list: async () =>
      (ns
        ? await clients.custom.listNamespacedCustomObject({
            group: GROUP,
            version: VERSION,
            namespace: ns,
            plural: assessmentPools.plural,
          })
        : await clients.custom.listClusterCustomObject({
            group: GROUP,
            version: VERSION,
            plural: assessmentPools.plural,
          })) as ListResult<PoolObject>,
  });

  /** namespace/secret → its informer and the pools (namespace/name) that name it. */
  const secrets = new Map<string, SecretWatch>();
  /** namespace/pool → the Secret it names now. */
  const secretOf = new Map<string, string>();
  let good: PoolConfig[] = [];
  let bad: PoolProblem[] = [];
  let signature = "";
  let stopped = false;

  function watchSecret(pool: string, namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const before = secretOf.get(pool);
    if (before === key) return;
    if (before) unwatchSecret(pool);
    secretOf.set(pool, key);
    let w = secrets.get(key);
    if (!w) {
      const informer = new Informer<V1Secret>(kc, {
        path: `/api/v1/namespaces/${namespace}/secrets`,
        fieldSelector: `metadata.name=${name}`,
        ...relist,
        ...log,
        transform: stripManagedFields,
        list: () => clients.core.listNamespacedSecret({ namespace, fieldSelector: `metadata.name=${name}` }),
      });
      const changed = () => recompute();
      informer.on({ add: changed, update: changed, delete: changed });
      w = { informer, users: new Set() };
      secrets.set(key, w);
      if (!stopped) informer.start();
    }
    w.users.add(pool);
  }

  function unwatchSecret(pool: string): void {
    const key = secretOf.get(pool);
    if (!key) return;
    secretOf.delete(pool);
    const w = secrets.get(key);
    if (!w) return;
    w.users.delete(pool);
    if (w.users.size === 0) {
      w.informer.stop();
      secrets.delete(key);
    }
  }

  function evaluate(o: PoolObject): PoolConfig | PoolProblem {
    const namespace = o.metadata?.namespace ?? "";
    const name = o.metadata?.name ?? "";
    const generation = o.metadata?.generation;
    const base = { namespace, name, ...(generation !== undefined ? { generation } : {}) };
    const spec = parsePoolSpec(o.spec);
    if (!spec.ok) return { ...base, reason: "InvalidSpec", error: spec.error };
    const ref = spec.value.keysSecretRef;
    const w = secrets.get(`${namespace}/${ref.name}`);
    if (!w?.informer.hasSynced()) {
      // A failed list is retried with backoff and logged; the usual cause is RBAC (assessor.keysSecretNames).
      const why = w?.informer.stats.errors ? "cannot be read yet (forbidden? see the log)" : "not read yet";
      return { ...base, reason: "SecretPending", error: `Secret ${namespace}/${ref.name}: ${why}` };
    }
    const secret = w.informer.get(`${namespace}/${ref.name}`);
    if (!secret) return { ...base, reason: "SecretNotFound", error: `Secret ${namespace}/${ref.name}: not found` };
    const keys = parseKeysSecret(secret, ref.key);
    if (!keys.ok) return { ...base, reason: "InvalidKeys", error: keys.error };
    return { ...base, spec: spec.value, keys: keys.value };
  }

  function recompute(): void {
    if (stopped) return;
    const nextGood: PoolConfig[] = [];
    const nextBad: PoolProblem[] = [];
    for (const o of pools.list().sort((a, b) => objectKey(a).localeCompare(objectKey(b)))) {
      const r = evaluate(o);
      if ("error" in r) nextBad.push(r);
      else nextGood.push(r);
    }
    const sig = JSON.stringify([nextGood, nextBad]);
    if (sig === signature) return;
    for (const p of nextBad)
      if (!bad.some((b) => b.namespace === p.namespace && b.name === p.name && b.error === p.error))
        opts.log?.warn({ pool: `${p.namespace}/${p.name}`, reason: p.reason, error: p.error }, "pool not used");
    signature = sig;
    good = nextGood;
    bad = nextBad;
    events.emit("change", good);
  }

  function onPool(o: PoolObject): void {
    const pool = objectKey(o);
    const spec = parsePoolSpec(o.spec);
    if (spec.ok) watchSecret(pool, o.metadata?.namespace ?? "", spec.value.keysSecretRef.name);
    else unwatchSecret(pool);
    recompute();
  }

  pools.on({
    add: onPool,
    update: onPool,
    delete: (o) => {
      unwatchSecret(objectKey(o));
      recompute();
    },
  });

  return {
    async start() {
      stopped = false;
      pools.start();
      await pools.waitForSync();
      const timeout = new Promise<void>((r) => setTimeout(r, opts.syncTimeoutMs ?? 10_000).unref());
      await Promise.race([Promise.all([...secrets.values()].map((w) => w.informer.waitForSync())), timeout]);
      recompute();
    },
    current: () => good,
    problems: () => bad,
    object: (namespace, name) => pools.get(`${namespace}/${name}`),
    on: (_event, fn) => void events.on("change", fn),
    off: (_event, fn) => void events.off("change", fn),
    stop() {
      stopped = true;
      pools.stop();
      for (const w of secrets.values()) w.informer.stop();
      secrets.clear();
      secretOf.clear();
    },
  };
}
