// `vigil operator`: wires caches, controllers, leader election and the health server; stops them in reverse.

import type { KubernetesObject, KubernetesObjectApi } from "@kubernetes/client-node";
import pino from "pino";
import { GROUP, VERSION } from "./api/meta.ts";
import { cameraDetections, detectorPools } from "./api/resources.ts";
import { identity, leaseNamespace, loadOperatorEnv, type OperatorEnv } from "./config.ts";
import { parseAlarmServiceAccount } from "./controllers/alarm-access.ts";
import { createCameraReconciler } from "./controllers/camera-reconciler.ts";
import { type Caches, type Context, keyOf, type Placement } from "./controllers/context.ts";
import { allowedImagePrefixes } from "./controllers/image-policy.ts";
import { type LeaseSpecLike, LeaseTracker } from "./controllers/lease-tracker.ts";
import { createPoolReconciler } from "./controllers/pool-reconciler.ts";
import { LABEL_POOL } from "./controllers/workload.ts";
import { startHealthServer } from "./health.ts";
import { abortRequestsWith, type Clients, contextNamespace, loadKubeConfig, makeClients } from "./kube/client.ts";
import { Controller } from "./kube/controller.ts";
import { EventRecorder } from "./kube/events.ts";
import { Informer, type ListResult, stripManagedFields } from "./kube/informer.ts";
import { LeaderElector } from "./kube/leader-election.ts";
import { leaderStatus, observeStatus, registry } from "./kube/metrics.ts";

type Logger = pino.Logger;

function informer(
  clients: Clients,
  env: OperatorEnv,
  log: Logger,
  apiVersion: string,
  kind: string,
  plural: string,
  labelSelector?: string,
): Informer<KubernetesObject> {
  const ns = env.VIGIL_WATCH_NAMESPACE;
  const base = apiVersion.includes("/") ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const path = `${base}${ns ? `/namespaces/${ns}` : ""}/${plural}`;
  const objects: KubernetesObjectApi = clients.objects;
  const inf = new Informer<KubernetesObject>(clients.kc, {
    path,
    labelSelector,
    relistMs: env.VIGIL_RELIST_MS,
    log,
    transform: stripManagedFields,
    list: async () => {
      const list = await objects.list(apiVersion, kind, ns, undefined, undefined, undefined, undefined, labelSelector);
      // Items of a list carry no apiVersion/kind; the reconcilers need them for patches and events.
      for (const item of list.items) Object.assign(item, { apiVersion, kind });
      return list as ListResult<KubernetesObject>;
    },
  });
  return inf;
}

export type OperatorHooks = {
  /** Stops the operator instead of SIGTERM/SIGINT (when it runs inside another process). */
  signal?: AbortSignal;
  /** Its caches, once synced: what an Executor reports its workers from. */
  onSynced?: (caches: Caches) => void;
};

export async function runOperator(env: OperatorEnv = loadOperatorEnv(), hooks: OperatorHooks = {}): Promise<void> {
  const log = pino({ level: env.LOG_LEVEL, base: { component: "operator" } });
  const kc = loadKubeConfig(env.KUBECONFIG);
  // Aborted the moment leadership is lost: every API request in flight or not yet sent fails at once.
  const lost = new AbortController();
  abortRequestsWith(kc, lost.signal);
  const clients = makeClients(kc);
  const crd = `${GROUP}/${VERSION}`;
  const workerSelector = "app.kubernetes.io/name=vigil-worker";
  const caches: Caches = {
    cameras: informer(clients, env, log, crd, "CameraDetection", cameraDetections.plural),
    pools: informer(clients, env, log, crd, "DetectorPool", detectorPools.plural),
    pods: informer(clients, env, log, "v1", "Pod", "pods", workerSelector),
    statefulSets: informer(clients, env, log, "apps/v1", "StatefulSet", "statefulsets", workerSelector),
    services: informer(clients, env, log, "v1", "Service", "services", workerSelector),
    // Every worker's, whatever its pool: the operator creates them with this label (workload.ts workerIdentity).
    leases: informer(clients, env, log, "coordination.k8s.io/v1", "Lease", "leases", LABEL_POOL),
  };
  observeStatus({ cameras: () => caches.cameras.list(), pools: () => caches.pools.list() });
  const placements = new Map<string, Placement>();
  let cameraCtl: Controller | undefined;
  let poolCtl: Controller | undefined;
  const ctx: Context = {
    clients,
    caches,
    events: new EventRecorder(clients.core, "vigil-operator", log),
    log,
    placements,
    leases: new LeaseTracker(),
    config: {
      workerImage: env.VIGIL_WORKER_IMAGE,
      allowedImages: allowedImagePrefixes(env.VIGIL_ALLOWED_WORKER_IMAGES, env.VIGIL_WORKER_IMAGE),
      workerServiceAccount: env.VIGIL_WORKER_SERVICE_ACCOUNT,
      workerEnvSecret: env.VIGIL_WORKER_ENV_SECRET,
      tolerationSeconds: env.VIGIL_WORKER_TOLERATION_SECONDS,
      alarmServiceAccount: parseAlarmServiceAccount(env.VIGIL_ALARMS_SERVICE_ACCOUNT),
      webhookRecheckMs: env.VIGIL_WEBHOOK_RECHECK_MS,
      ...(env.VIGIL_RABBITMQ_SECRET
        ? { rabbitmqSecret: { name: env.VIGIL_RABBITMQ_SECRET, key: env.VIGIL_RABBITMQ_SECRET_KEY } }
        : {}),
      ...(env.VIGIL_REDIS_SECRET
        ? { redisSecret: { name: env.VIGIL_REDIS_SECRET, key: env.VIGIL_REDIS_SECRET_KEY } }
        : {}),
      ...(env.VIGIL_CLIP_PVC ? { clipClaim: env.VIGIL_CLIP_PVC } : {}),
    },
    enqueueCamera: (k) => cameraCtl?.enqueue(k),
    enqueuePool: (k) => poolCtl?.enqueue(k),
  };
  cameraCtl = new Controller("cameradetection", createCameraReconciler(ctx), {
    concurrency: env.VIGIL_CONCURRENCY,
    log,
  });
  poolCtl = new Controller("detectorpool", createPoolReconciler(ctx), {
    concurrency: Math.min(4, env.VIGIL_CONCURRENCY),
    log,
  });

  const poolOfCamera = (o: KubernetesObject) =>
    keyOf(o.metadata?.namespace, (o as { spec?: { poolRef?: { name?: string } } }).spec?.poolRef?.name ?? "");
  const self = (o: KubernetesObject) => keyOf(o.metadata?.namespace, o.metadata?.name ?? "");
  // A camera change concerns the camera and its pool (and its old pool when poolRef moved).
  const onCamera = (o: KubernetesObject, old?: KubernetesObject) => {
    ctx.enqueueCamera(self(o));
    ctx.enqueuePool(poolOfCamera(o));
    if (old && poolOfCamera(old) !== poolOfCamera(o)) ctx.enqueuePool(poolOfCamera(old));
  };
  caches.cameras.on({ add: onCamera, update: onCamera, delete: onCamera });
  const poolOf = (o: KubernetesObject) =>
    ctx.enqueuePool(keyOf(o.metadata?.namespace, o.metadata?.labels?.[LABEL_POOL] ?? ""));
  caches.pools.on({
    add: (o) => ctx.enqueuePool(self(o)),
    update: (o) => ctx.enqueuePool(self(o)),
    delete: (o) => ctx.enqueuePool(self(o)),
  });
  for (const inf of [caches.pods, caches.statefulSets, caches.services])
    inf.on({ add: poolOf, update: poolOf, delete: poolOf });
  // A renewal of a live Lease changes nothing: the pool hears of a worker that starts or stops renewing, and of one
  // that fell silent when the reconcile it asked for at that Lease's expiry comes (pool-reconciler.ts).
  const onLease = (o: KubernetesObject) => {
    if (ctx.leases.observe(self(o), (o as { spec?: LeaseSpecLike }).spec)) poolOf(o);
  };
  caches.leases.on({
    add: onLease,
    update: onLease,
    delete: (o) => {
      ctx.leases.forget(self(o));
      poolOf(o);
    },
  });

  const elector = env.VIGIL_LEADER_ELECT
    ? new LeaderElector(clients.coordination, {
        namespace: leaseNamespace(env, contextNamespace(kc)),
        name: env.VIGIL_LEASE_NAME,
        identity: identity(env),
        leaseDurationMs: env.VIGIL_LEASE_DURATION_MS,
        renewDeadlineMs: env.VIGIL_RENEW_DEADLINE_MS,
        retryPeriodMs: env.VIGIL_RETRY_PERIOD_MS,
        log,
      })
    : undefined;
  const all = Object.values(caches);
  const health = await startHealthServer({
    host: env.VIGIL_HEALTH_HOST,
    port: env.VIGIL_HEALTH_PORT,
    registry,
    // A standby replica is ready (it can take over); a leader once its caches are synced.
    ready: () => !elector?.isLeader() || all.every((i) => i.hasSynced()),
  });
  log.info({ port: health.port }, "health server listening");

  const stop = new AbortController();
  let exitCode = 0;
  let running: Promise<unknown> | undefined;
  if (hooks.signal) hooks.signal.addEventListener("abort", () => stop.abort(), { once: true });
  else for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => stop.abort());
  const stopped = new Promise<"aborted">((r) => stop.signal.addEventListener("abort", () => r("aborted")));

  const leaseName = env.VIGIL_LEASE_NAME;
  leaderStatus.set({ name: leaseName }, 0);
  if (elector && !(await elector.acquire(stop.signal))) return shutdown();
  leaderStatus.set({ name: leaseName }, 1);
  // Renewals start now, not after the caches synced: a slow sync must not cost the lease.
  const held = (elector ? elector.holdUntilLost(stop.signal) : stopped).then((how) => {
    if (how === "lost") {
      // Like controller-runtime: stop at once, no graceful drain, exit non-zero and let Kubernetes restart us clean.
      exitCode = 1;
      lost.abort(new Error("leadership lost"));
      leaderStatus.set({ name: leaseName }, 0);
      cameraCtl?.stop();
      poolCtl?.stop();
    }
    return how;
  });

  for (const inf of all) inf.start();
  const synced = await Promise.race([Promise.all(all.map((i) => i.waitForSync())).then(() => true), held]);
  if (synced === true && !stop.signal.aborted && !lost.signal.aborted) {
    log.info({ watchNamespace: env.VIGIL_WATCH_NAMESPACE ?? "(all)" }, "caches synced; controllers starting");
    hooks.onSynced?.(caches);
    running = Promise.all([cameraCtl.run(), poolCtl.run()]);
  }
  await held;
  return shutdown();

  async function shutdown(): Promise<void> {
    cameraCtl?.stop();
    poolCtl?.stop();
    await running?.catch(() => undefined);
    await elector?.release();
    leaderStatus.set({ name: leaseName }, 0);
    for (const inf of all) inf.stop();
    await new Promise((r) => health.server.close(r));
    log.info({ exitCode }, "operator stopped");
    process.exitCode = exitCode;
  }
}
