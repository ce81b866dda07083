// The worker's Kubernetes edge: it serves the CameraDetections the operator labelled vigil.dev/worker=<this
// pod>, with credentials read from their Secrets (never logged), and reports each stream's health into the
// camera's status under its own field manager, apart from the operator's fields.
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { cameraDetection } from "../operator/api/camera-detection.ts";
import type { Condition } from "../operator/api/meta.ts";
import { cameraDetections, collectionPath } from "../operator/api/resources.ts";
import { applyCustomStatus } from "../operator/kube/apply.ts";
import { isNotFound, makeClients } from "../operator/kube/client.ts";
import { setCondition } from "../operator/kube/conditions.ts";
import { Informer } from "../operator/kube/informer.ts";
import type { SourceStats } from "./ingest/ffmpeg-source.ts";
import type { CameraConfig } from "./pipeline.ts";
import { cameraId, parseCameraId } from "./publish/camera-id.ts";
import { createSecretReader } from "./secret-reader.ts";

export const WORKER_FIELD_MANAGER = "vigil-worker";
const LABEL_WORKER = "vigil.dev/worker";

export type CameraSink = { add(c: CameraConfig): void; remove(id: string): void };

export function watchAssignedCameras(
  kc: KubeConfig,
  namespace: string,
  podName: string,
  sink: CameraSink,
  log: Logger,
) {
  const clients = makeClients(kc);
  const secrets = createSecretReader(kc, namespace, podName);
  // What each camera was started with, so unrelated updates (status, other labels) do not restart its stream.
  const running = new Map<string, string>();
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

  async function upsert(obj: KubernetesObject): Promise<void> {
    const name = obj.metadata?.name ?? "";
    const parsed = cameraDetection.safeParse({ ...obj, apiVersion: "vigil.dev/v1alpha1", kind: "CameraDetection" });
    if (!parsed.success || parsed.data.spec.paused || obj.metadata?.deletionTimestamp) return remove(name);
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
        return;
      }
    }
    const fingerprint = `${obj.metadata?.generation}/${secretVersion}`;
    if (running.get(name) === fingerprint) return;
    running.set(name, fingerprint);
    sink.add({ id: cameraId(namespace, name), spec, ...(credentials ? { credentials } : {}) });
  }

  function remove(name: string): void {
    if (!running.delete(name)) return;
    sink.remove(cameraId(namespace, name));
    healthOf.delete(name);
    void report(name, {
      status: "Unknown",
      reason: "WorkerReleased",
      message: `worker ${podName} no longer serves this camera`,
    });
  }

  informer.on({
    add: (o) => void upsert(o),
    update: (o) => void upsert(o),
    delete: (o) => remove(o.metadata?.name ?? ""),
  });

  // Health: written when StreamHealthy changes, and otherwise at most every refreshMs (fps, last frame).
  const healthOf = new Map<string, { condition: Condition; at: number }>();
  async function report(
    name: string,
    c: Omit<Condition, "type" | "lastTransitionTime">,
    extra: Record<string, unknown> = {},
  ): Promise<void> {
    const prev = healthOf.get(name);
    const [condition] = setCondition(prev ? [prev.condition] : [], { type: "StreamHealthy", ...c }, new Date()) as [
      Condition,
    ];
    healthOf.set(name, { condition, at: Date.now() });
    try {
      await applyCustomStatus(
        clients.custom,
        cameraDetections,
        namespace,
        name,
        { ...extra, conditions: [condition] },
        WORKER_FIELD_MANAGER,
      );
    } catch (err) {
      if (!isNotFound(err)) log.warn({ camera: name, err: (err as Error).message }, "health report failed");
    }
  }

  return {
    start: () => informer.start(),
    stop: () => informer.stop(),
    synced: () => informer.hasSynced(),
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
      const prev = healthOf.get(name);
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
