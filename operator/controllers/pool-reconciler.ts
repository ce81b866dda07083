// DetectorPool → worker StatefulSet + headless Service, worker health, and the placement of the pool's cameras.
// Placement is decided here, pool-wide, because capacity is a property of the pool; the camera reconciler
// only reports it.

import { isDeepStrictEqual } from "node:util";
import type { KubernetesObject } from "@kubernetes/client-node";
import { type DetectorPoolStatus, detectorPool, type WorkerStatus } from "../api/detector-pool.ts";
import { detectorPools } from "../api/resources.ts";
import { addFinalizer, mergePatch, patchCustomStatus, removeFinalizer, serverSideApply } from "../kube/apply.ts";
import { isNotFound, withSignal } from "../kube/client.ts";
import { type ConditionInput, findCondition, setConditions } from "../kube/conditions.ts";
import type { ReconcileResult } from "../kube/workqueue.ts";
import { alarmAccessName, alarmServiceAccess } from "./alarm-access.ts";
import { assignCameras, desiredReplicas } from "./assignment.ts";
import {
  type Context,
  FINALIZER,
  hasFinalizer,
  inBatches,
  isDeleting,
  keyOf,
  type Placement,
  splitKey,
  timeOf,
} from "./context.ts";
import { imageAllowed } from "./image-policy.ts";
import type { LeaseSpecLike } from "./lease-tracker.ts";
import { whyUnplaced } from "./unplaced.ts";
import { isAssignable, nextWorkerState, podView, type WorkerState } from "./worker-health.ts";
import {
  ANNOTATION_SPEC_HASH,
  LABEL_WORKER,
  serviceName,
  statefulSetName,
  workerIdentity,
  workerName,
  workerService,
  workerStatefulSet,
} from "./workload.ts";

const WRITE_PARALLELISM = 16;
/** A Lease's expiry is looked at this long after it is due, so that it has passed by then. */
const EXPIRY_SLACK_MS = 50;
const LEASE_READ_TIMEOUT_MS = 5000;

type Camera = KubernetesObject & {
  spec?: {
    poolRef?: { name?: string };
    paused?: boolean;
    source?: { credentialsSecretRef?: { name?: string } };
    alarm?: { webhookSecretRef?: { name?: string } };
  };
};

class IdentityConflict extends Error {}

const IDENTITY_KINDS = [
  ["v1", "ServiceAccount"],
  ["rbac.authorization.k8s.io/v1", "Role"],
  ["rbac.authorization.k8s.io/v1", "RoleBinding"],
  ["coordination.k8s.io/v1", "Lease"],
] as const;

export function createPoolReconciler(ctx: Context) {
  const { caches, clients } = ctx;
  // What we last wrote as each camera's worker label; the cache can lag our own writes. Remembered per uid: a
  // camera deleted and created again under the same name (kubectl replace, GitOps) is a new object with no label,
  // and a memo by name alone kept its placement on the old worker and skipped the label write, so no worker served it.
  const written = new Map<string, { uid: string | undefined; worker: string | undefined }>();
  const labelOf = (cam: Camera, key: string): string | undefined => {
    const memo = written.get(key);
    return memo && memo.uid === cam.metadata?.uid ? memo.worker : cam.metadata?.labels?.[LABEL_WORKER];
  };

  // The per-worker identities (workerIdentity) we applied, by pool, with the hash of what was applied: no cache
  // watches them, and a quiet cluster must see no writes.
  const identities = new Map<string, Map<string, string>>();

  /** This pool's own object: a per-worker identity of the same name made by anyone else is never taken over. */
  const ownedBy = (o: KubernetesObject | undefined, uid: string | undefined) =>
    Boolean(uid) && (o?.metadata?.ownerReferences ?? []).some((r) => r.uid === uid);

  const readObject = (apiVersion: string, kind: string, name: string, namespace: string) =>
    clients.objects.read({ apiVersion, kind, metadata: { name, namespace } }).catch((err) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });

  async function applyIdentity(
    poolKey: string,
    poolUid: string | undefined,
    obj: KubernetesObject & { metadata: { name: string; namespace?: string; annotations?: Record<string, string> } },
  ) {
    const applied = identities.get(poolKey) ?? new Map<string, string>();
    identities.set(poolKey, applied);
    const id = `${obj.kind}/${obj.metadata.name}`;
    const hash = obj.metadata.annotations?.[ANNOTATION_SPEC_HASH] ?? "";
    if (applied.get(id) === hash) return;
    if (!applied.has(id)) {
      // First write since this operator started: the name must be free or ours. A ServiceAccount of that name
      // made by someone else could hold any permission, and the worker pod of that name may request its token.
      const current = await readObject(
        obj.apiVersion ?? "",
        obj.kind ?? "",
        obj.metadata.name,
        obj.metadata.namespace ?? "",
      );
      if (current && !ownedBy(current, poolUid))
        throw new IdentityConflict(`${obj.kind} ${obj.metadata.name} exists and does not belong to this DetectorPool`);
    }
    await serverSideApply(clients.objects, obj);
    applied.set(id, hash);
  }

  /** Removes this pool's identities of workers that no longer exist (scaled down, refused, or the pool deleted). */
  async function deleteIdentities(
    poolKey: string,
    namespace: string,
    poolUid: string | undefined,
    keep: Set<string>,
    known: string[],
  ) {
    const applied = identities.get(poolKey);
    const names = new Set([...known, ...[...(applied?.keys() ?? [])].map((id) => id.slice(id.indexOf("/") + 1))]);
    for (const name of names) {
      if (keep.has(name)) continue;
      for (const [apiVersion, kind] of IDENTITY_KINDS) {
        const current = await readObject(apiVersion, kind, name, namespace);
        if (current && ownedBy(current, poolUid))
          await clients.objects
            .delete(current, undefined, undefined, undefined, undefined, undefined, {
              preconditions: { uid: current.metadata?.uid },
            })
            .catch(ignoreNotFound);
        applied?.delete(`${kind}/${name}`);
      }
    }
    if (applied && applied.size === 0) identities.delete(poolKey);
  }

  const camerasOf = (namespace: string, pool: string) =>
    caches.cameras.list(
      (c) => c.metadata?.namespace === namespace && (c as Camera).spec?.poolRef?.name === pool,
    ) as Camera[];

  function place(key: string, placement: Placement): void {
    const prev = ctx.placements.get(key);
    if (!isDeepStrictEqual(prev, placement)) {
      ctx.placements.set(key, placement);
      ctx.enqueueCamera(key);
    }
  }

  async function setWorkerLabel(cam: Camera, worker: string | undefined): Promise<void> {
    const key = keyOf(cam.metadata?.namespace, cam.metadata?.name ?? "");
    if (labelOf(cam, key) === worker) return;
    try {
      await mergePatch(clients.objects, {
        apiVersion: cam.apiVersion,
        kind: cam.kind,
        metadata: {
          name: cam.metadata?.name,
          namespace: cam.metadata?.namespace,
          labels: { [LABEL_WORKER]: worker ?? null } as Record<string, string>,
        },
      });
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    written.set(key, { uid: cam.metadata?.uid, worker });
  }

  /** Every camera of a pool that cannot run gets the same verdict and loses its worker label. */
  async function releaseAll(
    cams: Camera[],
    placement: Omit<Extract<Placement, { reason: string }>, "pool">,
    pool: string,
  ) {
    for (const cam of cams) place(keyOf(cam.metadata?.namespace, cam.metadata?.name ?? ""), { pool, ...placement });
    await inBatches(cams, WRITE_PARALLELISM, (cam) => setWorkerLabel(cam, undefined));
  }

  async function deleteOwned(namespace: string, pool: string): Promise<void> {
    // No garbage collector is guaranteed (single-host, envtest), so delete what we own explicitly.
    for (const [apiVersion, kind, name] of [
      ["apps/v1", "StatefulSet", statefulSetName(pool)],
      ["v1", "Service", serviceName(pool)],
    ] as const) {
      try {
        await clients.objects.delete({ apiVersion, kind, metadata: { name, namespace } });
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }

  return async function reconcilePool(key: string): Promise<ReconcileResult | undefined> {
    const { namespace, name } = splitKey(key);
    const raw = caches.pools.get(key);
    const cams = camerasOf(namespace, name);
    // Forget cameras that are gone, so the memo does not grow with every camera ever seen.
    for (const k of written.keys()) if (k.startsWith(`${namespace}/`) && !caches.cameras.get(k)) written.delete(k);

    if (!raw) {
      await releaseAll(cams, { reason: "PoolNotFound", message: `DetectorPool ${name} does not exist` }, name);
      return;
    }
    if (isDeleting(raw)) {
      await releaseAll(cams, { reason: "PoolNotFound", message: `DetectorPool ${name} is being deleted` }, name);
      if (hasFinalizer(raw)) {
        await deleteOwned(namespace, name);
        const known = ((raw as { status?: { workers?: { name: string }[] } }).status?.workers ?? []).map((w) => w.name);
        await deleteIdentities(key, namespace, raw.metadata?.uid, new Set(), known);
        // A stale cache can show an object we already released: 404 means the job is done.
        await removeFinalizer(clients.custom, raw, FINALIZER).catch(ignoreNotFound);
        ctx.events.emit(eventTarget(raw), "Normal", "Deleted", "worker StatefulSet and Service removed");
      }
      return;
    }
    const parsed = detectorPool.safeParse(raw);
    if (!parsed.success) {
      const message = `invalid DetectorPool: ${parsed.error.issues.map((i) => `spec.${i.path.slice(1).join(".")}: ${i.message}`).join("; ")}`;
      await releaseAll(cams, { reason: "PoolInvalid", message }, name);
      ctx.events.emit(eventTarget(raw), "Warning", "InvalidSpec", message);
      return;
    }
    const pool = parsed.data;
    if (!hasFinalizer(raw)) {
      await addFinalizer(clients.custom, raw, FINALIZER);
      return; // the update event brings us back with a fresh object
    }

    const spec = pool.spec;
    const now = new Date();
    const knownWorkers = (pool.status?.workers ?? []).map((w) => w.name);
    /** Refused, like an invalid spec: nothing runs for it (workload and identities go), its cameras wait. */
    const refuse = async (reason: "ImageNotAllowed" | "IdentityConflict", message: string) => {
      await releaseAll(cams, { reason: "PoolInvalid", message }, name);
      if (caches.statefulSets.get(keyOf(namespace, statefulSetName(name)))) await deleteOwned(namespace, name);
      await deleteIdentities(key, namespace, pool.metadata.uid, new Set(), knownWorkers);
      const before = findCondition(pool.status?.conditions, "Accepted");
      if (before?.status !== "False" || before.message !== message)
        ctx.events.emit(eventTarget(raw), "Warning", reason, message);
      const refused = {
        observedGeneration: pool.metadata.generation,
        replicas: 0,
        readyWorkers: 0,
        assignedCameras: 0,
        workers: [],
        conditions: setConditions(
          pool.status?.conditions,
          [{ type: "Accepted", status: "False", reason, message, observedGeneration: pool.metadata.generation }],
          now,
        ),
      };
      const was = pool.status ?? {};
      const same =
        isDeepStrictEqual(stripUndefined(refused.conditions), stripUndefined(was.conditions ?? [])) &&
        (was.workers ?? []).length === 0 &&
        (was.replicas ?? 0) === 0;
      if (!same)
        await patchCustomStatus(clients.custom, detectorPools.plural, namespace, name, refused).catch(ignoreNotFound);
    };
    const image = spec.image ?? ctx.config.workerImage;
    if (!imageAllowed(image, ctx.config.allowedImages))
      return void (await refuse(
        "ImageNotAllowed",
        `spec.image: ${image} is not an allowed worker image (allowed: ${ctx.config.allowedImages.join(", ")}; operator setting VIGIL_ALLOWED_WORKER_IMAGES, chart value operator.allowedWorkerImages)`,
      ));
    const active = cams.filter((c) => !isDeleting(c) && !c.spec?.paused);
    const replicas = desiredReplicas(active.length, spec.camerasPerWorker, spec.minWorkers, spec.maxWorkers);

    // Worker health from their Leases (and pods), remembered across restarts in status.workers.
    const prevWorkers = new Map((pool.status?.workers ?? []).map((w) => [w.name, w]));
    const workers = await Promise.all(
      Array.from({ length: replicas }, (_, i) => workerState(namespace, workerName(name, i), prevWorkers, now)),
    );

    const { assigned, unassigned, load } = assignCameras(
      active.map((c) => {
        const k = keyOf(namespace, c.metadata?.name ?? "");
        return {
          key: k,
          current: labelOf(c, k),
          createdAt: timeOf(c.metadata?.creationTimestamp),
        };
      }),
      workers.map((w) => ({ name: w.name, capacity: spec.camerasPerWorker, assignable: isAssignable(w.phase) })),
    );
    const why = whyUnplaced(name, spec, workers, active.length, unassigned);

    // Each worker's Role names exactly the Secrets of its cameras, written before the workload and the labels: a
    // worker can read a camera's credentials by the time it is given the camera, and no longer once it moved on.
    const secretsOf = new Map<string, string[]>();
    for (const cam of active) {
      const worker = assigned.get(keyOf(namespace, cam.metadata?.name ?? ""));
      const secret = cam.spec?.source?.credentialsSecretRef?.name;
      if (worker && secret) secretsOf.set(worker, [...(secretsOf.get(worker) ?? []), secret]);
    }
    const alarmSa = ctx.config.alarmServiceAccount;
    try {
      await inBatches(workers, WRITE_PARALLELISM, async (w) => {
        for (const obj of workerIdentity(pool, w.name, secretsOf.get(w.name) ?? []))
          await applyIdentity(key, pool.metadata.uid, obj);
      });
      // The alarm service reads the webhook Secrets of every camera of the pool, wherever it is placed.
      if (alarmSa)
        for (const obj of alarmServiceAccess(
          pool,
          active.map((c) => ({ name: c.metadata?.name ?? "", webhookSecret: c.spec?.alarm?.webhookSecretRef?.name })),
          alarmSa,
        ))
          await applyIdentity(key, pool.metadata.uid, obj);
    } catch (err) {
      if (err instanceof IdentityConflict) return void (await refuse("IdentityConflict", err.message));
      throw err;
    }
    const keep = new Set(workers.map((w) => w.name));
    if (alarmSa) keep.add(alarmAccessName(name));
    await deleteIdentities(key, namespace, pool.metadata.uid, keep, knownWorkers);

    await applyIfChanged(ctx, workerStatefulSet(pool, { ...workloadOpts(ctx), replicas }), caches.statefulSets);
    await applyIfChanged(ctx, workerService(pool), caches.services);

    const capacity = spec.maxWorkers * spec.camerasPerWorker;
    await inBatches(cams, WRITE_PARALLELISM, async (cam) => {
      const k = keyOf(namespace, cam.metadata?.name ?? "");
      const worker = assigned.get(k);
      if (isDeleting(cam)) return setWorkerLabel(cam, undefined);
      if (cam.spec?.paused) place(k, { pool: name, reason: "Paused", message: "camera is paused" });
      else if (worker) place(k, { pool: name, worker });
      else place(k, { pool: name, ...(why.cameras.get(k) ?? why.pool) });
      await setWorkerLabel(cam, worker);
    });

    const workerStatuses: WorkerStatus[] = workers.map((w) => ({ ...w, cameras: load.get(w.name) ?? 0 }));
    for (const w of workers) {
      const before = prevWorkers.get(w.name);
      if (before?.phase === w.phase && before.message === w.message) continue;
      if (w.phase === "Lost" && before)
        ctx.events.emit(
          eventTarget(raw),
          "Warning",
          "WorkerLost",
          `worker ${w.name} lost (its Lease expired or was released); its cameras were reassigned`,
        );
      else if (w.phase === "Ready" && before)
        ctx.events.emit(eventTarget(raw), "Normal", "WorkerReady", `worker ${w.name} is ready`);
      else if (w.phase === "Unschedulable")
        ctx.events.emit(
          eventTarget(raw),
          "Warning",
          "WorkerUnschedulable",
          `worker pod ${w.name} cannot be scheduled: ${w.message}`,
        );
    }
    const readyWorkers = workers.filter((w) => w.phase === "Ready").length;
    const status: DetectorPoolStatus = {
      observedGeneration: pool.metadata.generation,
      replicas,
      readyWorkers,
      capacity,
      assignedCameras: assigned.size,
      unassignedCameras: unassigned.length,
      workers: workerStatuses,
      conditions: setConditions(
        pool.status?.conditions,
        (
          [
            { type: "Accepted", status: "True", reason: "Accepted", message: `worker image ${image}` },
            unassigned.length > 0
              ? {
                  type: "CapacityAvailable",
                  status: "False",
                  reason: why.pool.reason,
                  message: `${unassigned.length} camera(s) could not be placed: ${why.pool.message}`,
                }
              : {
                  type: "CapacityAvailable",
                  status: "True",
                  reason: "Fits",
                  message: `${assigned.size}/${capacity} camera slots used`,
                },
            readyWorkers === replicas
              ? {
                  type: "WorkersReady",
                  status: "True",
                  reason: "AllReady",
                  message: `${readyWorkers}/${replicas} workers ready`,
                }
              : {
                  type: "WorkersReady",
                  status: "False",
                  reason: "NotReady",
                  message: `${readyWorkers}/${replicas} workers ready`,
                },
          ] satisfies ConditionInput[]
        ).map((c): ConditionInput => ({ ...c, observedGeneration: pool.metadata.generation })),
        now,
      ),
    };
    const wasFull = findCondition(pool.status?.conditions, "CapacityAvailable")?.reason === "PoolFull";
    if (why.overflow > 0 && !wasFull)
      ctx.events.emit(
        eventTarget(raw),
        "Warning",
        "PoolFull",
        `${why.overflow} camera(s) could not be placed: ${why.pool.message}`,
      );
    if (!isDeepStrictEqual(stripUndefined(status), stripUndefined(pool.status ?? {}))) {
      await patchCustomStatus(clients.custom, detectorPools.plural, namespace, name, status).catch(ignoreNotFound);
    }
    // Looked at again when the first live Lease runs out, unless renewed by then: that is how a worker that died
    // is noticed, since a Lease that is not renewed sends no event.
    const waits = workers.map((w) => ctx.leases.view(keyOf(namespace, w.name)).expiresInMs ?? Infinity);
    const next = Math.min(...waits);
    return Number.isFinite(next) ? { requeueAfterMs: next + EXPIRY_SLACK_MS } : undefined;
  };

  /**
   * One worker's state from its Lease in the cache; before a Ready worker is declared Lost, its Lease is read from
   * the apiserver. A watch that stalls delivers no renewals, and the cache alone would then take every worker of
   * the namespace for dead at once.
   */
  async function workerState(
    namespace: string,
    name: string,
    prev: Map<string, WorkerStatus>,
    now: Date,
  ): Promise<WorkerState> {
    const key = keyOf(namespace, name);
    ctx.leases.observe(key, leaseSpec(caches.leases.get(key)));
    const pod = podView(caches.pods.get(key) as Parameters<typeof podView>[0]);
    const state = nextWorkerState(name, ctx.leases.view(key), pod, prev.get(name), now);
    if (state.phase !== "Lost" || prev.get(name)?.phase !== "Ready") return state;
    // Bounded: a dead connection must not hold this pool's reconciles (it fails, and the retry reads again).
    const options = withSignal(AbortSignal.timeout(LEASE_READ_TIMEOUT_MS));
    const fresh = await clients.coordination.readNamespacedLease({ name, namespace }, options).catch((err) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (fresh) ctx.leases.observe(key, fresh.spec as LeaseSpecLike);
    return nextWorkerState(name, ctx.leases.view(key), pod, prev.get(name), now);
  }
}

const leaseSpec = (o: KubernetesObject | undefined) => (o as { spec?: LeaseSpecLike } | undefined)?.spec;

function ignoreNotFound(err: unknown): void {
  if (!isNotFound(err)) throw err;
}

function workloadOpts(ctx: Context) {
  return {
    image: ctx.config.workerImage,
    serviceAccountName: ctx.config.workerServiceAccount,
    workerEnvSecret: ctx.config.workerEnvSecret,
    rabbitmqSecret: ctx.config.rabbitmqSecret,
    redisSecret: ctx.config.redisSecret,
    clipClaim: ctx.config.clipClaim,
    tolerationSeconds: ctx.config.tolerationSeconds,
  };
}

async function applyIfChanged(
  ctx: Context,
  desired: KubernetesObject & { metadata: { annotations?: Record<string, string> } },
  cache: Context["caches"]["statefulSets"],
): Promise<void> {
  const current = cache.get(keyOf(desired.metadata.namespace, desired.metadata.name ?? ""));
  const hash = desired.metadata.annotations?.[ANNOTATION_SPEC_HASH];
  if (current && current.metadata?.annotations?.[ANNOTATION_SPEC_HASH] === hash) return;
  await serverSideApply(ctx.clients.objects, desired);
}

export const eventTarget = (o: KubernetesObject) => ({
  apiVersion: o.apiVersion ?? "",
  kind: o.kind ?? "",
  metadata: { name: o.metadata?.name ?? "", namespace: o.metadata?.namespace, uid: o.metadata?.uid },
});

/** Status read back from the apiserver has no undefined keys; compare like with like. */
const stripUndefined = (v: unknown) => JSON.parse(JSON.stringify(v));
