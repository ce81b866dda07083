// The operator against a real apiserver, as a real process with the chart's least-privilege RBAC.

import type { KubernetesObject } from "@kubernetes/client-node";
import { AuthorizationV1Api, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseWorkerEnv, workerEnv } from "../../operator/api/worker-env.ts";
import type { Clients } from "../../operator/kube/client.ts";
import {
  admin,
  cameraManifest,
  createCr,
  freshNamespace,
  getCr,
  metricValue,
  type OperatorProc,
  operatorKubeconfig,
  poolManifest,
  resolveEnv,
  startOperator,
  waitFor,
} from "../setup/kube.ts";
import { type WorkerLeases, workerLeases } from "../setup/worker-leases.ts";

type Obj = Record<string, any>;
let c: Clients;
let ns: string;
let op: OperatorProc;
/** The heartbeats of this pool's workers: a worker takes cameras only while its Lease is live. */
let leases: WorkerLeases;
const POOL = "line";

const cameraBody = (name: string) => ({
  apiVersion: "vigil.dev/v1alpha1",
  kind: "CameraDetection",
  metadata: { name },
  spec: { source: { url: `rtsp://127.0.0.1:8554/${name}` }, poolRef: { name: POOL } },
});
const cam = (name: string) => getCr<Obj>(c, "cameradetections", ns, name);
const cond = (o: Obj, type: string) => (o.status?.conditions ?? []).find((x: Obj) => x.type === type);
const listCams = async () =>
  (
    (await c.custom.listNamespacedCustomObject({
      group: "vigil.dev",
      version: "v1alpha1",
      namespace: ns,
      plural: "cameradetections",
    })) as { items: Obj[] }
  ).items;

const readSts = (name: string) =>
  c.objects.read({ apiVersion: "apps/v1", kind: "StatefulSet", metadata: { name, namespace: ns } }) as Promise<Obj>;
const patchPool = (name: string, spec: Obj) =>
  c.custom.patchNamespacedCustomObject(
    { group: "vigil.dev", version: "v1alpha1", namespace: ns, plural: "detectorpools", name, body: { spec } },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "op");
  op = startOperator(await operatorKubeconfig(c, ns), ns, {
    VIGIL_ALLOWED_WORKER_IMAGES: "ghcr.io/vigil-dev/vigil, registry.example/ml/",
    VIGIL_ALARMS_SERVICE_ACCOUNT: `${ns}/vigil-alarms`,
    VIGIL_WEBHOOK_RECHECK_MS: "2000",
  });
  await op.port;
  leases = workerLeases(c, ns);
});
afterAll(async () => {
  await leases?.close();
  await op?.stop();
});

describe("operator", () => {
  it("serves /healthz, /readyz and controller-runtime metrics", async () => {
    const port = await op.port;
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    await waitFor("readyz", async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200);
    const m = await op.metrics();
    for (const name of [
      "controller_runtime_max_concurrent_reconciles",
      "workqueue_depth",
      "leader_election_master_status",
    ])
      expect(m).toContain(name);
    expect(metricValue(m, "controller_runtime_max_concurrent_reconciles", 'controller="cameradetection"')).toBe(16);
  });

  it("creates the worker StatefulSet and headless Service for a pool, restricted and GPU-scheduled", async () => {
    await createCr(c, "detectorpools", ns, {
      apiVersion: "vigil.dev/v1alpha1",
      kind: "DetectorPool",
      metadata: { name: POOL },
      spec: {
        model: { uri: "file:///models/yolov8n.onnx", format: "yolov8", inputWidth: 640, inputHeight: 384 },
        camerasPerWorker: 2,
        maxWorkers: 2,
        resources: { limits: { "nvidia.com/gpu": 1, memory: "2Gi" } },
        nodeSelector: { "nvidia.com/gpu.present": "true" },
        tolerations: [{ key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" }],
      },
    } as KubernetesObject);
    const sts = await waitFor(
      "StatefulSet",
      () =>
        c.objects.read({
          apiVersion: "apps/v1",
          kind: "StatefulSet",
          metadata: { name: `${POOL}-worker`, namespace: ns },
        }) as Promise<Obj>,
    );
    expect(sts.spec.replicas).toBe(0);
    expect(sts.spec.serviceName).toBe(`${POOL}-workers`);
    expect(sts.metadata.ownerReferences[0]).toMatchObject({ kind: "DetectorPool", name: POOL, controller: true });
    const pod = sts.spec.template.spec;
    expect(pod.nodeSelector).toEqual({ "nvidia.com/gpu.present": "true" });
    // The pool's own GPU toleration, then short ones for dead nodes (Kubernetes' default keeps a pod there 300 s).
    expect(pod.tolerations).toEqual([
      { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" },
      { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute", tolerationSeconds: 30 },
      { key: "node.kubernetes.io/unreachable", operator: "Exists", effect: "NoExecute", tolerationSeconds: 30 },
    ]);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } });
    const ctr = pod.containers[0];
    expect(ctr.resources.limits).toMatchObject({ "nvidia.com/gpu": "1", memory: "2Gi" });
    expect(ctr.securityContext).toMatchObject({
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    });
    // Applied right after the StatefulSet.
    const svc = (await waitFor("Service", () =>
      c.core.readNamespacedService({ name: `${POOL}-workers`, namespace: ns }),
    )) as Obj;
    expect(svc.spec.clusterIP).toBe("None");
    const pool = await waitFor("pool finalizer", async () => {
      const p = await getCr<Obj>(c, "detectorpools", ns, POOL);
      return p.metadata.finalizers?.includes("vigil.dev/cleanup") && p.status?.capacity === 4 && p;
    });
    expect(pool.status.observedGeneration).toBe(pool.metadata.generation);
  });

  it("gives workers exactly the environment `vigil worker` parses; camerasPerWorker does not restart them", async () => {
    const sts = await readSts(`${POOL}-worker`);
    const env = resolveEnv(sts.spec.template.spec.containers[0].env, {
      "metadata.name": `${POOL}-worker-0`,
      "metadata.namespace": ns,
    });
    // Every variable is one the worker's schema knows: nothing set that no one reads.
    expect(Object.keys(env).filter((k) => !(k in workerEnv.shape))).toEqual([]);
    expect(parseWorkerEnv(env)).toMatchObject({
      POD_NAME: `${POOL}-worker-0`,
      POD_NAMESPACE: ns,
      VIGIL_MODEL_URI: "file:///models/yolov8n.onnx",
      VIGIL_MODEL_FORMAT: "yolov8",
      VIGIL_MODEL_INPUT_WIDTH: 640,
      VIGIL_MODEL_INPUT_HEIGHT: 384,
      VIGIL_MAX_BATCH: 8,
      VIGIL_EXECUTION_PROVIDERS: "cuda,cpu",
      VIGIL_MODEL_DIR: "/var/cache/vigil/models",
    });
    // Placement is the operator's business: a new camerasPerWorker changes capacity, not the pod template.
    await patchPool(POOL, { camerasPerWorker: 3 });
    await waitFor("capacity 6", async () => (await getCr<Obj>(c, "detectorpools", ns, POOL)).status?.capacity === 6);
    expect((await readSts(`${POOL}-worker`)).spec.template).toEqual(sts.spec.template);
    await patchPool(POOL, { camerasPerWorker: 2 });
    await waitFor("capacity 4", async () => (await getCr<Obj>(c, "detectorpools", ns, POOL)).status?.capacity === 4);
  });

  it("passes a model's download credentials by Secret reference, never in clear text", async () => {
    const TOKEN = "tok-3f9a0c2e-never-in-the-sts";
    await c.core.createNamespacedSecret({
      namespace: ns,
      body: { metadata: { name: "model-creds" }, stringData: { token: TOKEN } },
    });
    await createCr(
      c,
      "detectorpools",
      ns,
      poolManifest("dl", {
        model: { uri: "https://models.example/yolov8n.onnx", credentialsSecretRef: { name: "model-creds" } },
        image: "registry.example/ml/worker:1",
      }),
    );
    const sts = await waitFor("dl StatefulSet", () => readSts("dl-worker"));
    expect(JSON.stringify(sts)).not.toContain(TOKEN);
    const ctr = sts.spec.template.spec.containers[0];
    expect(ctr.image).toBe("registry.example/ml/worker:1");
    expect(ctr.env.find((e: Obj) => e.name === "VIGIL_MODEL_TOKEN")).toEqual({
      name: "VIGIL_MODEL_TOKEN",
      valueFrom: { secretKeyRef: { name: "model-creds", key: "token", optional: true } },
    });
    const env = resolveEnv(
      ctr.env,
      { "metadata.name": "dl-worker-0", "metadata.namespace": ns },
      { "model-creds": { token: TOKEN } },
    );
    const parsed = parseWorkerEnv(env);
    expect(parsed.VIGIL_MODEL_TOKEN).toBe(TOKEN);
    expect(parsed.VIGIL_MODEL_USERNAME).toBeUndefined();
    const pool = await waitFor("dl accepted", async () => {
      const p = await getCr<Obj>(c, "detectorpools", ns, "dl");
      return cond(p, "Accepted")?.status === "True" && p;
    });
    expect(JSON.stringify(pool)).not.toContain(TOKEN);
    await c.custom.deleteNamespacedCustomObject({
      group: "vigil.dev",
      version: "v1alpha1",
      namespace: ns,
      plural: "detectorpools",
      name: "dl",
    });
  });

  it("assigns cameras within capacity and marks the overflow PoolFull", async () => {
    // The two workers the pool will want, running (their Leases renewed once the operator created them).
    leases.start(`${POOL}-worker-0`, `${POOL}-worker-1`);
    for (let i = 0; i < 5; i++) await createCr(c, "cameradetections", ns, cameraBody(`cam-${i}`) as KubernetesObject);
    const cams = await waitFor("5 cameras decided", async () => {
      const items = await listCams();
      return (
        items.length === 5 &&
        items.filter((x) => cond(x, "Scheduled")?.status === "True" && x.metadata.labels?.["vigil.dev/worker"])
          .length === 4 &&
        items.every((x) => cond(x, "Scheduled")) &&
        items
      );
    });
    const scheduled = cams.filter((x) => cond(x, "Scheduled").status === "True");
    const full = cams.filter((x) => cond(x, "Scheduled").status === "False");
    expect(scheduled).toHaveLength(4);
    expect(full.map((x) => x.metadata.name)).toEqual(["cam-4"]);
    const overflow = full[0] as Obj;
    expect(cond(overflow, "Scheduled").reason).toBe("PoolFull");
    expect(overflow.status.phase).toBe("Unschedulable");
    expect(overflow.metadata.labels?.["vigil.dev/worker"]).toBeUndefined();
    const perWorker = new Map<string, number>();
    for (const x of scheduled) {
      const w = x.metadata.labels["vigil.dev/worker"];
      expect(x.status.worker).toBe(w);
      expect(x.status.phase).toBe("Scheduled");
      expect(cond(x, "StreamHealthy")).toBeUndefined(); // the worker's to report
      expect(cond(x, "Ready")).toMatchObject({ status: "False", reason: "AwaitingWorker" });
      expect(x.metadata.finalizers).toContain("vigil.dev/cleanup");
      perWorker.set(w, (perWorker.get(w) ?? 0) + 1);
    }
    expect(Object.fromEntries(perWorker)).toEqual({ [`${POOL}-worker-0`]: 2, [`${POOL}-worker-1`]: 2 });
    const sts = await waitFor("replicas 2", async () => {
      const s = (await c.objects.read({
        apiVersion: "apps/v1",
        kind: "StatefulSet",
        metadata: { name: `${POOL}-worker`, namespace: ns },
      })) as Obj;
      return s.spec.replicas === 2 && s;
    });
    expect(sts.spec.replicas).toBe(2);
    const pool = await waitFor("pool status", async () => {
      const p = await getCr<Obj>(c, "detectorpools", ns, POOL);
      return p.status?.unassignedCameras === 1 && p;
    });
    expect(pool.status).toMatchObject({ assignedCameras: 4, capacity: 4, replicas: 2 });
    expect(cond(pool, "CapacityAvailable")).toMatchObject({ status: "False", reason: "PoolFull" });
    const events = await waitFor("events", async () => {
      const list = await c.core.listNamespacedEvent({ namespace: ns });
      const reasons = list.items.map((e) => `${e.involvedObject.name}:${e.reason}`);
      return (
        reasons.filter((r) => r.endsWith(":Assigned")).length >= 4 && reasons.includes("cam-4:PoolFull") && reasons
      );
    });
    expect(events).toContain(`${POOL}:PoolFull`);
  });

  it("reuses a freed slot when a camera is deleted (finalizer released)", async () => {
    const before = await cam("cam-0");
    const freed = before.metadata.labels["vigil.dev/worker"];
    await c.custom.deleteNamespacedCustomObject({
      group: "vigil.dev",
      version: "v1alpha1",
      namespace: ns,
      plural: "cameradetections",
      name: "cam-0",
    });
    await waitFor("cam-0 gone", async () => !(await listCams()).some((x) => x.metadata.name === "cam-0"));
    const moved = await waitFor("cam-4 scheduled", async () => {
      const x = await cam("cam-4");
      return cond(x, "Scheduled")?.status === "True" && x;
    });
    expect(moved.metadata.labels["vigil.dev/worker"]).toBe(freed);
  });

  it("reassigns a dead worker's cameras once its Lease runs out", async () => {
    // A third worker slot with room: minWorkers raises replicas to 3.
    await c.custom.patchNamespacedCustomObject(
      {
        group: "vigil.dev",
        version: "v1alpha1",
        namespace: ns,
        plural: "detectorpools",
        name: POOL,
        body: { spec: { minWorkers: 3, maxWorkers: 3 } },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    leases.start(`${POOL}-worker-2`);
    await waitFor("workers Ready", async () => {
      const p = await getCr<Obj>(c, "detectorpools", ns, POOL);
      return p.status?.readyWorkers === 3 && p.status.replicas === 3;
    });
    const victims = (await listCams())
      .filter((x) => x.metadata.labels?.["vigil.dev/worker"] === `${POOL}-worker-0`)
      .map((x) => x.metadata.name);
    expect(victims.length).toBe(2);
    const killedAt = Date.now();
    // Its renewals stop, as when its process dies; its pod (none here) has nothing to do with it.
    await leases.kill(`${POOL}-worker-0`);
    const after = await waitFor("cameras moved to worker-2", async () => {
      const items = await listCams();
      const moved = items.filter((x) => victims.includes(x.metadata.name));
      return (
        moved.every(
          (x) =>
            x.metadata.labels?.["vigil.dev/worker"] === `${POOL}-worker-2` && x.status?.worker === `${POOL}-worker-2`,
        ) && moved
      );
    });
    expect(after).toHaveLength(2);
    console.log(JSON.stringify({ movedAfterLeaseStopMs: Date.now() - killedAt }));
    // The pool's status is written after the cameras' labels in the same reconcile, so it can trail them a little.
    const lost = await waitFor("the pool reports worker-0 Lost", async () => {
      const pool = await getCr<Obj>(c, "detectorpools", ns, POOL);
      const w = pool.status.workers.find((x: Obj) => x.name === `${POOL}-worker-0`);
      return w?.phase === "Lost" && w;
    });
    expect(lost).toMatchObject({ phase: "Lost", cameras: 0 });
    await waitFor("WorkerLost event", async () =>
      (await c.core.listNamespacedEvent({ namespace: ns })).items.some(
        (e) => e.reason === "WorkerLost" && e.involvedObject.name === POOL,
      ),
    );
  });

  it("cleans up when the pool is deleted: workload removed, cameras unassigned, finalizer released", async () => {
    await c.custom.deleteNamespacedCustomObject({
      group: "vigil.dev",
      version: "v1alpha1",
      namespace: ns,
      plural: "detectorpools",
      name: POOL,
    });
    await waitFor("pool gone", async () => {
      try {
        await getCr(c, "detectorpools", ns, POOL);
        return false;
      } catch {
        return true;
      }
    });
    await expect(c.core.readNamespacedService({ name: `${POOL}-workers`, namespace: ns })).rejects.toThrow();
    await expect(
      c.objects.read({
        apiVersion: "apps/v1",
        kind: "StatefulSet",
        metadata: { name: `${POOL}-worker`, namespace: ns },
      }),
    ).rejects.toThrow();
    const cams = await waitFor("cameras unassigned", async () => {
      const items = await listCams();
      return (
        items.every(
          (x) => cond(x, "Scheduled")?.reason === "PoolNotFound" && !x.metadata.labels?.["vigil.dev/worker"],
        ) && items
      );
    });
    expect(cams.every((x) => x.status.worker === undefined && x.status.phase === "Unschedulable")).toBe(true);
  });

  it("refuses a pool whose image is not allowed, naming spec.image, and runs nothing for it", async () => {
    await createCr(c, "detectorpools", ns, poolManifest("rogue", { image: "ghcr.io/vigil-dev/vigil-evil:1" }));
    await createCr(c, "cameradetections", ns, cameraManifest("on-rogue", "rogue"));
    const pool = await waitFor("rogue refused", async () => {
      const p = await getCr<Obj>(c, "detectorpools", ns, "rogue");
      return cond(p, "Accepted")?.status === "False" && p;
    });
    expect(cond(pool, "Accepted")).toMatchObject({ reason: "ImageNotAllowed" });
    expect(cond(pool, "Accepted").message).toContain("spec.image: ghcr.io/vigil-dev/vigil-evil:1 is not an allowed");
    const camera = await waitFor("camera unschedulable", async () => {
      const x = await cam("on-rogue");
      return cond(x, "Scheduled")?.reason === "PoolInvalid" && x;
    });
    expect(camera.status.phase).toBe("Unschedulable");
    expect(camera.metadata.labels?.["vigil.dev/worker"]).toBeUndefined();
    await waitFor("ImageNotAllowed event", async () =>
      (await c.core.listNamespacedEvent({ namespace: ns })).items.some(
        (e) => e.reason === "ImageNotAllowed" && e.involvedObject.name === "rogue" && e.message?.includes("spec.image"),
      ),
    );
    await expect(readSts("rogue-worker")).rejects.toThrow();
    // Fixed: an allowed image is accepted and gets its workload.
    await patchPool("rogue", { image: "ghcr.io/vigil-dev/vigil:0.2.0" });
    await waitFor("rogue StatefulSet", () => readSts("rogue-worker"));
    await waitFor("rogue accepted", async () => {
      const p = await getCr<Obj>(c, "detectorpools", ns, "rogue");
      return cond(p, "Accepted")?.status === "True";
    });
    // And back outside: what ran for it goes.
    await patchPool("rogue", { image: "docker.io/library/busybox" });
    await waitFor("rogue StatefulSet removed", async () => !(await readSts("rogue-worker").catch(() => undefined)));
  });

  it("refuses a pool whose worker identity name someone else's ServiceAccount holds, and leaves that one alone", async () => {
    await c.core.createNamespacedServiceAccount({
      namespace: ns,
      body: { metadata: { name: "taken-worker-0", labels: { owner: "someone-else" } } },
    });
    await createCr(c, "detectorpools", ns, poolManifest("taken", { minWorkers: 1, maxWorkers: 1 }));
    const pool = await waitFor("taken refused", async () => {
      const p = await getCr<Obj>(c, "detectorpools", ns, "taken");
      return cond(p, "Accepted")?.status === "False" && p;
    });
    expect(cond(pool, "Accepted")).toMatchObject({ reason: "IdentityConflict" });
    expect(cond(pool, "Accepted").message).toContain("ServiceAccount taken-worker-0 exists");
    await expect(readSts("taken-worker")).rejects.toThrow();
    const sa = await c.core.readNamespacedServiceAccount({ name: "taken-worker-0", namespace: ns });
    expect(sa.metadata?.labels).toEqual({ owner: "someone-else" });
    expect(sa.metadata?.ownerReferences).toBeUndefined();
  });

  it("lets the alarm service read exactly its pool's webhook Secrets, and follows the cameras", async () => {
    await createCr(c, "detectorpools", ns, poolManifest("alarmed", { minWorkers: 1, maxWorkers: 1 }));
    const withHook = (name: string, secret: string) =>
      cameraManifest(name, "alarmed", { alarm: { webhookSecretRef: { name: secret } } });
    await createCr(c, "cameradetections", ns, withHook("gate", "hook-gate"));
    await createCr(c, "cameradetections", ns, withHook("dock", "hook-dock"));
    await createCr(c, "cameradetections", ns, cameraManifest("yard", "alarmed"));
    const rbac = (kind: "Role" | "RoleBinding") =>
      c.objects
        .read({ apiVersion: "rbac.authorization.k8s.io/v1", kind, metadata: { name: "alarmed-alarms", namespace: ns } })
        .catch(() => undefined) as Promise<Obj | undefined>;
    const secretsRule = (r: Obj | undefined) => r?.rules?.find((x: Obj) => x.resources?.includes("secrets"));
    const role = await waitFor("the alarm service's Role", async () => {
      const r = await rbac("Role");
      return secretsRule(r)?.resourceNames?.length === 2 && r;
    });
    expect(secretsRule(role)).toEqual({
      apiGroups: [""],
      resources: ["secrets"],
      verbs: ["get"],
      resourceNames: ["hook-dock", "hook-gate"],
    });
    // The binding is written right after the Role.
    const binding = await waitFor("the alarm service's RoleBinding", () => rbac("RoleBinding"));
    expect(binding.subjects).toEqual([{ kind: "ServiceAccount", name: "vigil-alarms", namespace: ns }]);
    // Ask the apiserver's authorizer what that ServiceAccount may do with Secrets here.
    const authz = c.kc.makeApiClient(AuthorizationV1Api);
    const can = async (verb: string, name?: string) =>
      (
        await authz.createSubjectAccessReview({
          body: {
            spec: {
              user: `system:serviceaccount:${ns}:vigil-alarms`,
              resourceAttributes: { verb, resource: "secrets", namespace: ns, ...(name ? { name } : {}) },
            },
          },
        })
      ).status?.allowed ?? false;
    // The authorizer's informers may still hold the Role's first version (one name): wait for both names.
    await waitFor("the binding to take effect", async () => (await can("get", "hook-gate")) && can("get", "hook-dock"));
    expect(await can("get", "camera-credentials")).toBe(false);
    expect(await can("list")).toBe(false);

    // A camera that drops its alarm takes its Secret out of the Role.
    await c.custom.patchNamespacedCustomObject(
      {
        group: "vigil.dev",
        version: "v1alpha1",
        namespace: ns,
        plural: "cameradetections",
        name: "dock",
        body: [{ op: "remove", path: "/spec/alarm" }],
      },
      setHeaderOptions("Content-Type", PatchStrategy.JsonPatch),
    );
    await waitFor("hook-dock out of the Role", async () => {
      const names = secretsRule(await rbac("Role"))?.resourceNames;
      return names?.length === 1 && names[0] === "hook-gate";
    });
  });

  it("says on the camera when its webhook Secret is missing or unusable, and when it is fixed", {
    timeout: 90_000,
  }, async () => {
    await createCr(c, "detectorpools", ns, poolManifest("hooked", { minWorkers: 1, maxWorkers: 1 }));
    await createCr(
      c,
      "cameradetections",
      ns,
      cameraManifest("porch", "hooked", { alarm: { webhookSecretRef: { name: "porch-hook" } } }),
    );
    const webhook = async () => cond(await cam("porch"), "WebhookReady");
    const missing = await waitFor("WebhookReady=False", async () => {
      const w = await webhook();
      return w?.status === "False" && w;
    });
    expect(missing).toMatchObject({ reason: "WebhookSecretMissing" });
    expect(missing.message).toContain(`Secret ${ns}/porch-hook (alarm.webhookSecretRef) does not exist`);
    const events = async () =>
      (await c.core.listNamespacedEvent({ namespace: ns })).items.filter(
        (e) => e.involvedObject?.name === "porch" && e.reason?.startsWith("WebhookSecret"),
      );
    await waitFor("a Warning Event", async () => (await events()).some((e) => e.type === "Warning"));

    // A Secret without a proper signing key: still not ready, and the message never quotes the value.
    await c.core.createNamespacedSecret({
      namespace: ns,
      body: {
        metadata: { name: "porch-hook" },
        stringData: { url: "https://hooks.example/a?token=t0p", secret: "hunter2" },
      },
    });
    const invalid = await waitFor(
      "WebhookSecretInvalid",
      async () => {
        const w = await webhook();
        return w?.reason === "WebhookSecretInvalid" && w;
      },
      15_000,
    );
    expect(invalid.message).toContain('key "secret"');
    expect(JSON.stringify(await cam("porch"))).not.toMatch(/hunter2|t0p/);

    // Fixed: found without touching the camera (the operator looks again, it does not watch Secrets).
    await c.core.patchNamespacedSecret(
      { name: "porch-hook", namespace: ns, body: { stringData: { secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    const ok = await waitFor(
      "WebhookReady=True",
      async () => {
        const w = await webhook();
        return w?.status === "True" && w;
      },
      15_000,
    );
    expect(ok).toMatchObject({ reason: "SecretFound" });
  });

  it("finished every reconcile without an error", async () => {
    const m = await op.metrics();
    expect(op.logs.filter((l) => l.includes("reconcile failed"))).toEqual([]);
    expect(metricValue(m, "controller_runtime_reconcile_errors_total")).toBe(0);
    expect(metricValue(m, "controller_runtime_reconcile_total", 'result="success"')).toBeGreaterThan(0);
  });
});
