// Operator and worker together on a real apiserver: the worker serves the camera the operator assigned to its
// pod (least-privilege ServiceAccount, credentials from a Secret) and its stream health lands in the camera's
// status and Events, next to the operator's fields.
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import type { KubernetesObject } from "@kubernetes/client-node";
import { AuthorizationV1Api, CoreV1Api, KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Clients } from "../../operator/kube/client.ts";
import { createSecretReader } from "../../worker/secret-reader.ts";
import {
  admin,
  cameraManifest,
  createCr,
  freshNamespace,
  getCr,
  type OperatorProc,
  operatorKubeconfig,
  poolManifest,
  readyWorkerPod,
  serviceAccountKubeconfig,
  startOperator,
} from "../setup/kube.ts";
import { kubeconfigFileVia, startTcpProxy, type TcpProxy } from "../setup/proxy.ts";
import { FIXTURES, type Service, startRedis, startRtsp, startWorker, waitFor } from "../setup/services.ts";
import { type WorkerLeases, workerLeases } from "../setup/worker-leases.ts";

type Obj = Record<string, any>;
const PASSWORD = "k8s-Secret-pw";
let c: Clients;
let ns: string;
let op: OperatorProc;
let redis: Service;
let rtsp: Service;
let worker: ChildProcess;
let workerKubeconfig: string;
let proxy: TcpProxy;
/** Heartbeats of workers no process runs for (pool q's). */
let leases: WorkerLeases;
const workerLogs: string[] = [];

const cam = () => getCr<Obj>(c, "cameradetections", ns, "door");
const cond = (o: Obj, type: string) => (o.status?.conditions ?? []).find((x: Obj) => x.type === type);

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "wk");
  redis = await startRedis();
  rtsp = await startRtsp(join(FIXTURES, "vtest.avi"), { auth: `viewer:${PASSWORD}` });
  proxy = await startTcpProxy(new URL(c.kc.getCurrentCluster()?.server ?? ""));
  op = startOperator(kubeconfigFileVia(await operatorKubeconfig(c, ns), proxy.port), ns);
  await c.core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: "door-creds" }, stringData: { username: "viewer", password: PASSWORD } },
  });
  await createCr(c, "detectorpools", ns, {
    apiVersion: "vigil.dev/v1alpha1",
    kind: "DetectorPool",
    metadata: { name: "p" },
    spec: { model: { uri: "file:///models/yolov8n.onnx" }, camerasPerWorker: 4, maxWorkers: 1 },
  } as KubernetesObject);
  await createCr(c, "cameradetections", ns, {
    apiVersion: "vigil.dev/v1alpha1",
    kind: "CameraDetection",
    metadata: { name: "door" },
    spec: {
      source: { url: `rtsp://127.0.0.1:${rtsp.port}/cam1`, credentialsSecretRef: { name: "door-creds" } },
      poolRef: { name: "p" },
      detection: { targetFps: 5 },
    },
  } as KubernetesObject);
  // The pod this worker plays (no kubelet here): the process below runs as its ServiceAccount, with a token bound
  // to the pod as the kubelet's projected token is. The camera is given to it once it renews its Lease.
  const pod = await readyWorkerPod(c, ns, "p", "p-worker-0", { serviceAccountName: "vigil-worker" });
  workerKubeconfig = await serviceAccountKubeconfig(
    c,
    ns,
    "vigil-worker",
    { namespace: "worker-namespace-rules.yaml" },
    pod,
  );
  const kubeconfig = workerKubeconfig;
  ({ proc: worker } = await startWorker(
    [],
    redis.port,
    { KUBECONFIG: kubeconfig, POD_NAME: "p-worker-0", POD_NAMESPACE: ns },
    workerLogs,
  ));
  leases = workerLeases(c, ns);
  await waitFor(
    "camera assigned",
    async () => (await cam()).metadata.labels?.["vigil.dev/worker"] === "p-worker-0",
    45_000,
  );
}, 90_000);

afterAll(async () => {
  if (process.env.DEBUG_WORKER)
    console.log(workerLogs.join(""), op.logs.join("\n"), JSON.stringify((await cam()).status, null, 1));
  worker?.kill("SIGTERM");
  await leases?.close();
  await op?.stop();
  await proxy?.close();
  await rtsp?.stop("SIGKILL");
  await redis?.stop();
});

it("reports the stream's health into the camera's status: Running, fps, last frame", { timeout: 60_000 }, async () => {
  const running = await waitFor(
    "camera Running",
    async () => {
      const o = await cam();
      return o.status?.phase === "Running" && o;
    },
    45_000,
  );
  expect(cond(running, "StreamHealthy")).toMatchObject({ status: "True", reason: "Streaming" });
  expect(cond(running, "Ready")).toMatchObject({ status: "True", reason: "Running" });
  expect(cond(running, "Scheduled")).toMatchObject({ status: "True" });
  expect(running.status.worker).toBe("p-worker-0");
  expect(running.status.fps).toBeGreaterThan(0);
  expect(Date.now() - Date.parse(running.status.lastFrameTime)).toBeLessThan(60_000);
  const events = await c.core.listNamespacedEvent({ namespace: ns });
  expect(events.items.some((e) => e.involvedObject.name === "door" && e.reason === "Running")).toBe(true);
});

it("serves a camera deleted and created again under the same name (GitOps, kubectl replace)", {
  timeout: 90_000,
}, async () => {
  const before = await cam();
  const body = { apiVersion: before.apiVersion, kind: before.kind, metadata: { name: "door" }, spec: before.spec };
  // The whole replace happens while the operator's connections are dead (a network blip, or a queue too busy to
  // look): it never sees the old camera terminating, only, once it relists, that "door" has another uid and no label.
  proxy.mode = "stall";
  try {
    const api = { group: "vigil.dev", version: "v1alpha1", namespace: ns, plural: "cameradetections", name: "door" };
    await c.custom.deleteNamespacedCustomObject(api);
    await c.custom.patchNamespacedCustomObject(
      { ...api, body: { metadata: { finalizers: null } } },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    await waitFor("camera gone", async () => !(await cam().catch(() => undefined)), 20_000);
    await createCr(c, "cameradetections", ns, body as KubernetesObject);
  } finally {
    proxy.mode = "pass";
    proxy.dropAll(); // the stalled connections close: the operator reconnects and relists
  }
  const created = Date.now();
  const again = await waitFor(
    "recreated camera Running with fresh frames",
    async () => {
      const o = await cam();
      return (
        o.metadata.uid !== before.metadata.uid &&
        o.status?.phase === "Running" &&
        Date.parse(o.status.lastFrameTime) > created &&
        o
      );
    },
    60_000,
  );
  expect(again.metadata.labels?.["vigil.dev/worker"]).toBe("p-worker-0");
  expect(again.status.worker).toBe("p-worker-0");
  expect(cond(again, "Scheduled")).toMatchObject({ status: "True", reason: "Assigned" });
  expect(again.status.fps).toBeGreaterThan(0);
});

it("lets the worker read its own cameras' Secrets and no others (SubjectAccessReview and real reads)", {
  timeout: 60_000,
}, async () => {
  // Another pool's camera with its own Secret, and a Secret no camera uses.
  await c.core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: "yard-creds" }, stringData: { username: "yard", password: "yard-pw" } },
  });
  await c.core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: "db-password" }, stringData: { pw: "x" } },
  });
  await createCr(c, "detectorpools", ns, poolManifest("q", { maxWorkers: 1 }));
  leases.start("q-worker-0");
  await createCr(
    c,
    "cameradetections",
    ns,
    cameraManifest("yard", "q", {
      source: { url: "rtsp://127.0.0.1:1/yard", credentialsSecretRef: { name: "yard-creds" } },
    }),
  );
  const authz = c.kc.makeApiClient(AuthorizationV1Api);
  const may = async (user: string, verb: string, resource: string, name: string, group = "") =>
    (
      await authz.createSubjectAccessReview({
        body: {
          spec: {
            user: `system:serviceaccount:${ns}:${user}`,
            groups: ["system:serviceaccounts", `system:serviceaccounts:${ns}`, "system:authenticated"],
            resourceAttributes: { namespace: ns, verb, resource, name, ...(group ? { group } : {}) },
          },
        },
      })
    ).status?.allowed ?? false;
  const can = (user: string, secret: string) => may(user, "get", "secrets", secret);
  await waitFor("q-worker-0 may read yard-creds", () => can("q-worker-0", "yard-creds"), 20_000);
  // The pods' shared ServiceAccount reads no Secret; each worker's own reads its cameras' only.
  for (const secret of ["door-creds", "yard-creds", "db-password"])
    expect(await can("vigil-worker", secret)).toBe(false);
  expect(await can("p-worker-0", "door-creds")).toBe(true);
  expect(await can("p-worker-0", "yard-creds")).toBe(false);
  expect(await can("p-worker-0", "db-password")).toBe(false);
  expect(await can("q-worker-0", "door-creds")).toBe(false);
  // Each worker renews its own Lease and no other; the shared ServiceAccount none, nor may any worker create one.
  const coordination = "coordination.k8s.io";
  for (const verb of ["get", "update"]) {
    expect(await may("p-worker-0", verb, "leases", "p-worker-0", coordination)).toBe(true);
    expect(await may("p-worker-0", verb, "leases", "q-worker-0", coordination)).toBe(false);
    expect(await may("vigil-worker", verb, "leases", "p-worker-0", coordination)).toBe(false);
  }
  expect(await may("p-worker-0", "create", "leases", "", coordination)).toBe(false);
  expect(await may("p-worker-0", "delete", "leases", "p-worker-0", coordination)).toBe(false);

  // Real reads, as the worker pod p-worker-0 makes them (worker/secret-reader.ts).
  const kc = new KubeConfig();
  kc.loadFromFile(workerKubeconfig);
  const own = createSecretReader(kc, ns, "p-worker-0");
  expect((await own.read("door-creds")).data?.password).toBe(Buffer.from(PASSWORD).toString("base64"));
  await expect(own.read("yard-creds")).rejects.toMatchObject({ code: 403 });
  await expect(own.read("db-password")).rejects.toMatchObject({ code: 403 });
  // It cannot pass itself off as another worker: the admission policy refuses a token for q-worker-0.
  const impostor = createSecretReader(kc, ns, "q-worker-0");
  const refused = await impostor.read("yard-creds").catch((e) => e);
  expect(refused.code).toBe(403);
  expect(String(refused.body)).toContain("only request a token for the ServiceAccount named like its own pod");
  // Nor get a long-lived token of its own ServiceAccount to take away.
  const long = await kc
    .makeApiClient(CoreV1Api)
    .createNamespacedServiceAccountToken({
      name: "p-worker-0",
      namespace: ns,
      body: { spec: { audiences: [], expirationSeconds: 3600 } },
    })
    .catch((e) => e);
  expect(long.code).toBe(403);
  expect(String(long.body)).toContain("at most 600 seconds");
  // Nor read a Secret as the shared ServiceAccount.
  await expect(
    kc.makeApiClient(CoreV1Api).readNamespacedSecret({ name: "door-creds", namespace: ns }),
  ).rejects.toMatchObject({
    code: 403,
  });
});

it("streams a camera whose Secret only comes after it was assigned, without another change to the camera", {
  timeout: 60_000,
}, async () => {
  const late = () => getCr<Obj>(c, "cameradetections", ns, "late");
  await createCr(
    c,
    "cameradetections",
    ns,
    cameraManifest("late", "p", {
      source: { url: `rtsp://127.0.0.1:${rtsp.port}/cam1`, credentialsSecretRef: { name: "late-creds" } },
      detection: { targetFps: 5 },
    }),
  );
  await waitFor(
    "late: credentials unavailable",
    async () => cond(await late(), "StreamHealthy")?.reason === "CredentialsUnavailable",
    30_000,
  );
  await c.core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: "late-creds" }, stringData: { username: "viewer", password: PASSWORD } },
  });
  const running = await waitFor(
    "late Running",
    async () => {
      const o = await late();
      return o.status?.phase === "Running" && o;
    },
    45_000,
  );
  expect(running.status.fps).toBeGreaterThan(0);
});

it("turns Degraded with the cause when the stream dies, and never exposes the password", {
  timeout: 60_000,
}, async () => {
  await rtsp.stop("SIGKILL");
  const down = await waitFor(
    "camera Degraded",
    async () => {
      const o = await cam();
      return o.status?.phase === "Degraded" && o;
    },
    20_000,
  );
  expect(cond(down, "StreamHealthy")).toMatchObject({ status: "False", reason: "StreamDown" });
  expect(cond(down, "Ready")).toMatchObject({ status: "False", reason: "StreamNotHealthy" });
  expect(JSON.stringify(down)).not.toContain(PASSWORD);
  expect(workerLogs.join("")).not.toContain(PASSWORD);
  // The Event is sent beside the status patch, not before it: it may land a moment later.
  const events = await waitFor("the StreamNotHealthy Event", async () => {
    const l = await c.core.listNamespacedEvent({ namespace: ns });
    const found = l.items.some(
      (e) => e.involvedObject.name === "door" && e.reason === "StreamNotHealthy" && e.type === "Warning",
    );
    return found && l;
  });
  for (const e of events.items) expect(JSON.stringify(e)).not.toContain(PASSWORD);
});

it("stops the stream when the camera is paused, and marks its health as released", { timeout: 30_000 }, async () => {
  await c.custom.patchNamespacedCustomObject(
    {
      group: "vigil.dev",
      version: "v1alpha1",
      namespace: ns,
      plural: "cameradetections",
      name: "door",
      body: { spec: { paused: true } },
    },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
  const paused = await waitFor(
    "camera Paused",
    async () => {
      const o = await cam();
      return o.status?.phase === "Paused" && cond(o, "StreamHealthy")?.reason === "WorkerReleased" && o;
    },
    20_000,
  );
  expect(cond(paused, "Scheduled")).toMatchObject({ status: "False", reason: "Paused" });
});
