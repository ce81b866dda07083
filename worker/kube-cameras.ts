// The worker's Kubernetes edge: it serves the CameraDetections the operator labelled vigil.dev/worker=<this
// pod>, with credentials read from their Secrets (never logged), and reports each stream's health into the
// camera's status under this pod's own field manager, apart from the operator's and other workers' fields.
// A camera's events are handled one at a time, latest state first (a move or delete that arrives during a
// Secret read wins over the add it overtook), and its status writes go out in order.
import { type KubeConfig, type KubernetesObject, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { cameraDetection } from "../operator/api/camera-detection.ts";
import { type Condition, GROUP, VERSION } from "../operator/api/meta.ts";
import { cameraDetections, collectionPath } from "../operator/api/resources.ts";
import { applyCustomStatus } from "../operator/kube/apply.ts";
import { isNotFound, makeClients } from "../operator/kube/client.ts";
import { setCondition } from "../operator/kube/conditions.ts";
import { Informer } from "../operator/kube/informer.ts";
import type { SourceStats } from "./ingest/ffmpeg-source.ts";
import { latestPerKey } from "./latest-per-key.ts";
import { createOwnIdentity, type OwnIdentity } from "./own-identity.ts";
import type { CameraConfig } from "./pipeline.ts";
import { cameraId, parseCameraId } from "./publish/camera-id.ts";
import { createSecretReader } from "./secret-reader.ts";
import { type ObservedCamera, takeoverPatch, WORKER_CONDITION, workerFieldManager } from "./status-takeover.ts";

const LABEL_WORKER = "vigil.dev/worker";

export type CameraSink = { add(c: CameraConfig): void; remove(id: string): void };

type Report = { condition: Condition; extra: Record<string, unknown>; at: number };

export function watchAssignedCameras(
  kc: KubeConfig,
  namespace: string,
  podName: string,
  sink: CameraSink,
  log: Logger,
  identity: OwnIdentity = createOwnIdentity(kc, namespace, podName),
) {
  const clients = makeClients(kc);
  const manager = workerFieldManager(podName);
  const secrets = createSecretReader(kc, namespace, podName, identity);
  // What each camera was started with, so unrelated updates (status, other labels) do not restart its stream.
  const running = new Map<string, string>();
  // Cameras whose latest event says this pod serves them: only then may a health report be written.
  const serving = new Set<string>();
  // The report this pod last made per camera; "released" once it let a still-labelled camera go (paused).
  const reports = new Map<string, Report & { released?: boolean }>();
  const informer = new Informer<KubernetesObject>(kc, {
    path: collectionPath(cameraDetections, namespace),
    labelSelector: `${LABEL_WORKER}=${podName}`,
    log,
    list: async () => {
      const list = (await clients.custom.listNamespacedCustomObject({
        group: "vigil.dev",
        version: "v1alpha1",
        namespace,
        plural: cameraDetections.plural,
        labelSelector: `${LABEL_WORKER}=${podName}`,
      })) as { items: KubernetesObject[]; metadata?: { resourceVersion?: string } };
      return list;
    },
  });

  async function upsert(name: string, obj: KubernetesObject, superseded: () => boolean): Promise<void> {
    const parsed = cameraDetection.safeParse({ ...obj, apiVersion: "vigil.dev/v1alpha1", kind: "CameraDetection" });
    if (!parsed.success || parsed.data.spec.paused || obj.metadata?.deletionTimestamp) return release(name);
    serving.add(name);
    // Once this pod has reported: a worker that let go has removed its fields by then (usually within
    // milliseconds of the move), so what another worker still owns was left by one that died or wrote late.
    const mine = reports.get(name);
    if (mine && !mine.released && takeoverPatch(obj as ObservedCamera, manager))
      void writeStatus(name, () => takeOver(name, obj));
    const spec = parsed.data.spec;
    const ref = spec.source.credentialsSecretRef;
    let credentials: CameraConfig["credentials"];
    let secretVersion = "";
    if (ref) {
      try {
        const secret = await secrets.read(ref.name);
        const get = (k: string) => {
          const v = secret.data?.[k];
          return v === undefined ? undefined : Buffer.from(v, "base64").toString("utf8");
        };
        const username = get(ref.usernameKey);
        const password = get(ref.passwordKey);
        if (username === undefined || password === undefined)
          throw new Error(`keys ${ref.usernameKey}/${ref.passwordKey} missing`);
        credentials = { username, password };
        secretVersion = secret.metadata?.resourceVersion ?? "";
      } catch (err) {
        if (superseded()) return;
        // The reason names the Secret, never its content.
        log.error(
          { camera: name, secret: ref.name, err: isNotFound(err) ? "not found" : (err as Error).message },
          "camera credentials unavailable",
        );
        await report(name, {
          status: "False",
          reason: "CredentialsUnavailable",
          message: `Secret ${ref.name}: unavailable`,
        });
        retryLater(name);
        return;
      }
    }
    clearRetry(name);
    // A newer state of this camera (an update, a move away, a delete) arrived while the Secret was read: it runs
    // next, and this one must not start a stream it would then have to stop, or never would.
    if (superseded()) return;
    // The uid too: a camera deleted and created again during a watch gap comes back as an update, at generation 1.
    const fingerprint = `${obj.metadata?.uid}/${obj.metadata?.generation}/${secretVersion}`;
    if (running.get(name) === fingerprint) return;
    running.set(name, fingerprint);
    sink.add({ id: cameraId(namespace, name), spec, ...(credentials ? { credentials } : {}) });
  }

  /** Still labelled for this pod, but not to be run (paused, being deleted, invalid): say so in its health. */
  async function release(name: string): Promise<void> {
    clearRetry(name);
    serving.delete(name);
    const wasRunning = running.delete(name);
    if (wasRunning) sink.remove(cameraId(namespace, name));
    const last = reports.get(name);
    if (!wasRunning && (!last || last.released)) return;
    const condition = nextCondition(last, {
      status: "Unknown",
      reason: "WorkerReleased",
      message: `worker ${podName} no longer serves this camera`,
    });
    reports.set(name, { condition, extra: {}, at: Date.now(), released: true });
    // Without fps, lastFrameTime and reconnects: applying without them removes this pod's values.
    await writeStatus(name, () => apply(name, { conditions: [condition] }));
  }

  /** No longer labelled for this pod (moved, unassigned, deleted): stop, and take this pod's report away. */
  async function gone(name: string): Promise<void> {
    clearRetry(name);
    serving.delete(name);
    if (running.delete(name)) sink.remove(cameraId(namespace, name));
    const last = reports.get(name);
    if (!last || last.released) return; // a released camera keeps saying so until another worker reports
    reports.delete(name);
    // An apply without a status: every field this pod's manager owns, and only those, is removed. The next
    // worker's fields are its own, so nothing of its report goes, whichever of the two writes lands first.
    await writeStatus(name, () => apply(name, undefined));
  }

  // A camera whose Secret could not be read (missing, or the Role not there yet) is tried again with backoff,
  // 2 s → 60 s, for as long as it stays assigned here: no other event may come to retry it.
  const retries = new Map<string, { timer: NodeJS.Timeout; attempts: number }>();
  function retryLater(name: string): void {
    const attempts = (retries.get(name)?.attempts ?? 0) + 1;
    clearTimeout(retries.get(name)?.timer);
    // The camera as the cache has it then: a newer state may have come meanwhile, and a gone one is not retried.
    const timer = setTimeout(
      () => {
        const now = informer.get(`${namespace}/${name}`);
        if (now) events.submit(name, now);
      },
      Math.min(60_000, 2000 * 2 ** (attempts - 1)),
    );
    timer.unref();
    retries.set(name, { timer, attempts });
  }
  function clearRetry(name: string): void {
    clearTimeout(retries.get(name)?.timer);
    retries.delete(name);
  }

  const events = latestPerKey<KubernetesObject | undefined>(
    (name, obj, superseded) => (obj ? upsert(name, obj, superseded) : gone(name)),
    (name, err) => log.error({ camera: name, err: (err as Error).message }, "camera event failed"),
  );
  const nameOf = (o: KubernetesObject) => o.metadata?.name ?? "";
  informer.on({
    add: (o) => events.submit(nameOf(o), o),
    update: (o) => events.submit(nameOf(o), o),
    delete: (o) => events.submit(nameOf(o), undefined),
  });

  // One camera's status writes, in the order they were made: a report can never land after the release
  // that followed it.
  const writes = new Map<string, Promise<void>>();
  function writeStatus(name: string, write: () => Promise<void>): Promise<void> {
    const next = (writes.get(name) ?? Promise.resolve()).then(write).catch((err) => {
      if (!isNotFound(err)) log.warn({ camera: name, err: (err as Error).message }, "health report failed");
    });
    writes.set(name, next);
    void next.then(() => {
      if (writes.get(name) === next) writes.delete(name);
    });
    return next;
  }

  const apply = (name: string, status: Record<string, unknown> | undefined) =>
    applyCustomStatus(clients.custom, cameraDetections, namespace, name, status, manager);

  /** Removes other workers' ownership of the report (see status-takeover.ts), then writes ours again. */
  async function takeOver(name: string, observed: KubernetesObject): Promise<void> {
    const ops = serving.has(name) ? takeoverPatch(observed as ObservedCamera, manager) : undefined;
    if (!ops) return;
    try {
      await clients.custom.patchNamespacedCustomObjectStatus(
        { group: GROUP, version: VERSION, plural: cameraDetections.plural, namespace, name, body: ops },
        setHeaderOptions("Content-Type", PatchStrategy.JsonPatch),
      );
    } catch (err) {
      // The camera changed since (its resourceVersion no longer matches): its next event looks again.
      log.debug({ camera: name, err: (err as Error).message }, "status takeover skipped");
      return;
    }
    log.info({ camera: name }, "took over the stream health report from another worker");
    const mine = reports.get(name);
    if (mine && !mine.released && serving.has(name)) await apply(name, { ...mine.extra, conditions: [mine.condition] });
  }

  const nextCondition = (prev: Report | undefined, c: Omit<Condition, "type" | "lastTransitionTime">): Condition =>
    (setCondition(prev ? [prev.condition] : [], { type: WORKER_CONDITION, ...c }, new Date()) as [Condition])[0];

  /** A report while serving: written unless the camera was let go before its turn to be written came. */
  async function report(
    name: string,
    c: Omit<Condition, "type" | "lastTransitionTime">,
    extra: Record<string, unknown> = {},
  ): Promise<void> {
    const condition = nextCondition(reports.get(name), c);
    reports.set(name, { condition, extra, at: Date.now() });
    await writeStatus(name, async () => {
      if (serving.has(name)) await apply(name, { ...extra, conditions: [condition] });
    });
  }

  return {
    start: () => informer.start(),
    stop: () => {
      informer.stop();
      for (const name of [...retries.keys()]) clearRetry(name);
    },
    synced: () => informer.hasSynced(),
    /** Called every second by the worker with each camera's stream stats. */
    /** Called every second by the worker with each camera's stream stats (by camera id, `<namespace>/<name>`). */
    async reportHealth(id: string, stats: SourceStats, fps: number, refreshMs = 30_000): Promise<void> {
      const camera = parseCameraId(id);
      const name = camera.name;
      if (camera.namespace !== namespace || !running.has(name)) return;
      const healthy = stats.state === "streaming";
      const c = healthy
        ? { status: "True" as const, reason: "Streaming", message: `${fps.toFixed(1)} fps` }
        : {
            status: "False" as const,
            // Reconnect attempts alternate connecting/backoff: one reason for the whole outage, no flapping writes.
            reason: stats.frames === 0 && !stats.lastError ? "Connecting" : "StreamDown",
            message: stats.lastError ?? stats.state,
          };
      const prev = reports.get(name);
      const changed = !prev || prev.condition.status !== c.status || prev.condition.reason !== c.reason;
      if (!changed && Date.now() - (prev?.at ?? 0) < refreshMs) return;
      await report(name, healthy ? { ...c, message: "frames are arriving" } : c, {
        fps: Math.round(fps * 10) / 10,
        reconnects: stats.reconnects,
        ...(stats.lastFrameAt
          ? { lastFrameTime: new Date(stats.lastFrameAt).toISOString().replace(/\.\d+Z$/, "Z") }
          : {}),
      });
    },
  };
}
