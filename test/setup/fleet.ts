// A Vigil fleet on the simulated GPU cluster (hack/cluster.sh up --full), for test/e2e/ and `npm run bench -- fleet`:
// Redis and RTSP servers on loopback, the chart installed by the real helm CLI, every pod of Vigil's image run as a
// real process by the process kubelet, and a poller that reads every camera through the gateway, as a user would.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { V1Pod } from "@kubernetes/client-node";
import { buildDist } from "../../hack/build.ts";
import { type Clients, loadKubeConfig, makeClients } from "../../operator/kube/client.ts";
import { inApp } from "./kubelet/launch.ts";
import { cameraManifest as baseCamera, poolManifest as basePool, createCr, waitFor } from "./operator-env.ts";
import { startProcessKubelet } from "./process-kubelet.ts";
import { installPrometheusOperatorCrds } from "./prometheus.ts";
import { FIXTURES, type Service, startRedis, startRtsp } from "./services.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const run = promisify(execFile);
export const CHART = join(ROOT, "charts", "vigil");
/** The model as the worker sees it: the process kubelet shows the checkout at /app, where the image has the app. */
const MODEL = inApp(ROOT, join(FIXTURES, "yolov8n.onnx"));

export const helm = async (kubeconfig: string, ...args: string[]) =>
  (
    await run("bash", [join(ROOT, "hack", "helm.sh"), ...args], {
      cwd: ROOT,
      env: { ...process.env, KUBECONFIG: kubeconfig },
      maxBuffer: 16 << 20,
    })
  ).stdout;

export const cluster = async (...args: string[]) =>
  (await run("bash", [join(ROOT, "hack", "cluster.sh"), ...args, "--full"], { cwd: ROOT, maxBuffer: 16 << 20 })).stdout;

export type CameraSample = { at: number; statsAt: string | undefined; worker: string | undefined; fps: number };

export type Fleet = {
  kubeconfig: string;
  c: Clients;
  namespace: string;
  kubelet: Awaited<ReturnType<typeof startProcessKubelet>>;
  redis: Service;
  rtsp: Service[];
  token: string;
  /** The Helm release: the namespace's name, so cluster-scoped objects of a run that died never collide. */
  release: string;
  /** The gateway's base URL, at its pod's IP (no kube-proxy here). */
  gateway(): Promise<string>;
  api<T = unknown>(path: string): Promise<T>;
  /** The installed values, as helm --set pairs. */
  values: string[];
  cameraNames: string[];
  /** The clip store's directory on this host (the hostPath behind the chart's clip claim). */
  clipDir: string;
  stop(): Promise<void>;
};

export type FleetOptions = {
  kubeconfig: string;
  namespace?: string;
  /** Extra helm --set pairs. */
  set?: string[];
  rtspServers?: number;
  /** The Prometheus Operator's CRDs first, so the chart installs its ServiceMonitors, PodMonitor and PrometheusRule. */
  monitoring?: boolean;
  /** More Secrets in the release namespace before the install (name → stringData), e.g. the alarm connections. */
  secrets?: Record<string, Record<string, string>>;
};

/** Installs the chart and starts what it needs; no pool or camera yet. */
export async function startFleet(o: FleetOptions): Promise<Fleet> {
  await buildDist();
  const kc = loadKubeConfig(o.kubeconfig);
  const c = makeClients(kc);
  const namespace = o.namespace ?? `vigil-${randomBytes(3).toString("hex")}`;
  const stateDir = mkdtempSync(join(tmpdir(), "vigil-fleet-"));
  const redis = await startRedis();
  const rtsp: Service[] = [];
  for (let i = 0; i < (o.rtspServers ?? 2); i++)
    rtsp.push(await startRtsp(join(FIXTURES, "vtest.avi"), { loop: true }));
  const kubelet = await startProcessKubelet({
    kubeconfig: o.kubeconfig,
    repoRoot: ROOT,
    namespace,
    stateDir: join(stateDir, "kubelet"),
  });
  const token = randomBytes(24).toString("hex");

  if (o.monitoring) await installPrometheusOperatorCrds(c.custom);
  await c.core.createNamespace({ body: { metadata: { name: namespace } } });
  const secret = (name: string, data: Record<string, string>) =>
    c.core.createNamespacedSecret({ namespace, body: { metadata: { name }, stringData: data } });
  await secret("vigil-redis", { url: `redis://127.0.0.1:${redis.port}` });
  await secret("vigil-api-token", { token });
  for (const [name, data] of Object.entries(o.secrets ?? {})) await secret(name, data);
  // The chart's clip store claim (ReadWriteMany), pre-bound to a hostPath volume: this cluster has no provisioner.
  mkdirSync(join(stateDir, "clips"), { recursive: true, mode: 0o777 });
  await c.core.createPersistentVolume({
    body: {
      metadata: { name: `${namespace}-clips` },
      spec: {
        capacity: { storage: "50Gi" },
        accessModes: ["ReadWriteMany"],
        persistentVolumeReclaimPolicy: "Delete",
        hostPath: { path: join(stateDir, "clips"), type: "Directory" },
        claimRef: { namespace, name: `${namespace}-clips` },
      },
    },
  });

  const values = [
    "alarms.enabled=false",
    "gateway.apiToken.existingSecret=vigil-api-token",
    "gateway.apiToken.key=token",
    ...(o.set ?? []),
  ];
  await helm(
    o.kubeconfig,
    "install",
    namespace,
    CHART,
    "--namespace",
    namespace,
    ...values.flatMap((v) => ["--set", v]),
  );

  const gateway = async () => {
    const pod = await waitFor(
      "a ready gateway pod",
      async () => (await runningPods(c, namespace, "app.kubernetes.io/component=gateway")).find(isReady),
      120_000,
      250,
    );
    return `http://${pod.status?.podIP}:8080`;
  };
  let base: string | undefined;
  const api = async <T>(path: string): Promise<T> => {
    base ??= await gateway();
    const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${token}` } }).catch((err) => {
      base = undefined; // the gateway pod moved (an upgrade): look it up again
      throw err;
    });
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };

  return {
    kubeconfig: o.kubeconfig,
    c,
    namespace,
    kubelet,
    redis,
    rtsp,
    token,
    release: namespace,
    gateway,
    api,
    values,
    cameraNames: [],
    clipDir: join(stateDir, "clips"),
    async stop() {
      await helm(o.kubeconfig, "uninstall", namespace, "--namespace", namespace, "--wait=false").catch(() => {});
      await c.core.deleteNamespace({ name: namespace }).catch(() => {});
      await c.core.deletePersistentVolume({ name: `${namespace}-clips` }).catch(() => {});
      // Gone before the next e2e file starts, the kubelet still running to end their processes: their GPUs count
      // as used until then. A pod still there after that (its node dead) is force-deleted, as its admin would.
      const pods = async () => (await c.core.listNamespacedPod({ namespace })).items;
      const gone = await waitFor("the fleet's pods gone", async () => (await pods()).length === 0, 60_000, 500).catch(
        () => false,
      );
      if (!gone)
        for (const p of await pods().catch(() => []))
          await c.core
            .deleteNamespacedPod({ name: p.metadata?.name ?? "", namespace, gracePeriodSeconds: 0 })
            .catch(() => {});
      await kubelet.stop();
      for (const s of rtsp) await s.stop();
      await redis.stop();
      // VIGIL_KEEP_FLEET=1 keeps the pods' logs (kubelet/logs/) for a look after a failure.
      if (process.env.VIGIL_KEEP_FLEET === "1") process.stderr.write(`[fleet] kept ${stateDir}\n`);
      else rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

export const isReady = (p: V1Pod) =>
  !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((x) => x.type === "Ready" && x.status === "True");

export async function runningPods(c: Clients, namespace: string, labelSelector: string): Promise<V1Pod[]> {
  return (await c.core.listNamespacedPod({ namespace, labelSelector })).items.filter((p) => p.status?.podIP);
}

/** A pool of GPU workers running the real YOLOv8n on CPU (no GPU here: the fake nvidia.com/gpu only schedules). */
/** The shared pool manifest (operator-env.ts), as GPU workers running the real YOLOv8n on CPU. */
export const poolManifest = (name: string, spec: Record<string, unknown> = {}) =>
  basePool(name, {
    model: { uri: `file://${MODEL}` },
    executionProviders: ["cpu"],
    resources: { limits: { "nvidia.com/gpu": 1 }, requests: { cpu: "100m", memory: "256Mi" } },
    ...spec,
  });

/** The shared camera manifest (operator-env.ts) on a stream, at `fps` detections per second. */
export const cameraManifest = (name: string, pool: string, url: string, fps = 1, spec: Record<string, unknown> = {}) =>
  baseCamera(name, pool, { source: { url }, detection: { targetFps: fps }, ...spec });

/** A presence rule over the whole frame: every person seen is an event (after the cooldown, per track). */
export const wholeFrameRule = (cooldownSeconds = 5) => ({
  zones: [
    {
      name: "all",
      polygon: [
        [0, 0],
        [1, 0],
        [1, 1],
        [0, 1],
      ],
    },
  ],
  rules: [{ name: "person", presence: { zone: "all" }, cooldownSeconds }],
});

export async function applyCameras(
  f: Fleet,
  pool: string,
  names: string[],
  fps = 1,
  spec: Record<string, unknown> = {},
): Promise<number> {
  const at = Date.now();
  for (const [i, name] of names.entries()) {
    const server = f.rtsp[i % f.rtsp.length]!;
    await createCr(
      f.c,
      "cameradetections",
      f.namespace,
      cameraManifest(name, pool, `rtsp://127.0.0.1:${server.port}/cam1`, fps, spec),
    );
    f.cameraNames.push(name);
  }
  return at;
}

type CameraView = {
  status: { worker?: string; phase?: string; conditions?: { type: string; status: string; reason?: string }[] };
  stats: { timestamp: string; data: { fps: number; stream: string; frames: number } } | null;
};

/**
 * Reads every camera through the gateway every `everyMs` and keeps, per camera, each new stats message seen (by its
 * timestamp) with the worker the camera's status names: what a dashboard user sees.
 */
export function watchCameras(f: Fleet, everyMs = 500) {
  const seen = new Map<string, CameraSample[]>();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const t = Date.now();
      await Promise.all(
        f.cameraNames.map(async (name) => {
          const v = await f
            .api<CameraView>(`/api/v1/cameras/${encodeURIComponent(`${f.namespace}/${name}`)}`)
            .catch(() => undefined);
          if (!v?.stats) return;
          const list = seen.get(name) ?? [];
          if (list.at(-1)?.statsAt === v.stats.timestamp) return;
          list.push({ at: Date.now(), statsAt: v.stats.timestamp, worker: v.status.worker, fps: v.stats.data.fps });
          seen.set(name, list);
        }),
      );
      await new Promise((r) => setTimeout(r, Math.max(0, everyMs - (Date.now() - t))));
    }
  })();
  const streaming = (s: CameraSample) => s.fps > 0;
  return {
    seen,
    /** When camera `name` first streamed after `since` (ms epoch), optionally on a worker other than `not`. */
    firstAfter(name: string, since: number, not?: string): CameraSample | undefined {
      return seen.get(name)?.find((s) => s.at > since && streaming(s) && (not === undefined || s.worker !== not));
    },
    /** The longest time between two fresh stats of a camera within [from, to]. */
    longestGap(name: string, from: number, to: number): number {
      const at = (seen.get(name) ?? []).filter((s) => s.at >= from && s.at <= to && streaming(s)).map((s) => s.at);
      let gap = 0;
      let prev = from;
      for (const t of [...at, to]) {
        gap = Math.max(gap, t - prev);
        prev = t;
      }
      return gap;
    },
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** The audit log of the full cluster: what the operator wrote, for writes per minute. */
export function auditLogPath(): string {
  const env = readFileSync(join(ROOT, ".cache", "cluster-full", "env"), "utf8");
  return /^VIGIL_AUDIT_LOG=(.*)$/m.exec(env)?.[1] ?? join(ROOT, ".cache", "cluster-full", "audit.log");
}
