// The process kubelet on the full cluster (scheduler, controller-manager, kwok nodes): one pod, scheduled by the
// real scheduler onto a kwok node, runs the operator and the gateway as real processes. The operator authenticates
// with its pod's ServiceAccount token under only the chart's operator RBAC and takes its leader Lease; both serve
// their probes on the pod IP; the gateway's API token and Redis URL come from a Secret through env, its cameras
// from a Secret file mounted at /etc/vigil, its settings from a ConfigMap through envFrom. SIGKILL brings a restart
// (at once, then after the 10 s backoff) reported in containerStatuses; a powered-off node kills the processes and
// writes nothing; deleting the pod ends them.
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import {
  AuthenticationV1Api,
  RbacAuthorizationV1Api,
  type V1ContainerStatus,
  type V1Pod,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse, stringify } from "yaml";
import { buildDist, VIGIL_JS } from "../../hack/build.ts";
import { kubeConfigWithToken, loadKubeConfig, makeClients } from "../../operator/kube/client.ts";
import { freshNamespace, ROOT, waitFor } from "../setup/operator-env.ts";
import { type ProcessKubelet, startProcessKubelet } from "../setup/process-kubelet.ts";
import { type Service, startRedis } from "../setup/services.ts";

const IMAGE = "ghcr.io/vigil-dev/vigil:0.1.0";
const TOKEN = `e2e-${randomBytes(12).toString("hex")}`;
const POD = "vigil-e2e";
const c = makeClients(loadKubeConfig(inject("fullKubeconfig")));
let ns: string;
let kubelet: ProcessKubelet;
let redis: Service;
const seenPids = new Set<number>();

const rules = (f: string) => parse(readFileSync(join(ROOT, "charts", "vigil", "files", f), "utf8"));

/** The chart's operator RBAC, bound to a ServiceAccount of the test's namespace: nothing more. */
async function operatorServiceAccount(namespace: string): Promise<void> {
  const rbac = c.kc.makeApiClient(RbacAuthorizationV1Api);
  const subjects = [{ kind: "ServiceAccount", name: "vigil-operator", namespace }];
  const roleRef = (kind: string, name: string) => ({ apiGroup: "rbac.authorization.k8s.io", kind, name });
  await c.core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: "vigil-operator" } } });
  await rbac.createClusterRole({
    body: { metadata: { name: `vigil-operator-${namespace}` }, rules: rules("operator-cluster-rules.yaml") },
  });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name: `vigil-operator-${namespace}` },
      roleRef: roleRef("ClusterRole", `vigil-operator-${namespace}`),
      subjects,
    },
  });
  await rbac.createNamespacedRole({
    namespace,
    body: { metadata: { name: "vigil-operator" }, rules: rules("operator-namespace-rules.yaml") },
  });
  await rbac.createNamespacedRoleBinding({
    namespace,
    body: { metadata: { name: "vigil-operator" }, roleRef: roleRef("Role", "vigil-operator"), subjects },
  });
}

const restricted = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ["ALL"] },
};

function pod(namespace: string): V1Pod {
  return {
    metadata: { name: POD, namespace },
    spec: {
      serviceAccountName: "vigil-operator",
      enableServiceLinks: false,
      terminationGracePeriodSeconds: 10,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: 65532,
        runAsGroup: 65532,
        seccompProfile: { type: "RuntimeDefault" },
      },
      containers: [
        {
          name: "operator",
          image: IMAGE,
          args: ["operator"],
          envFrom: [{ configMapRef: { name: "operator-settings" } }],
          env: [
            { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
            { name: "POD_NAMESPACE", valueFrom: { fieldRef: { fieldPath: "metadata.namespace" } } },
            { name: "VIGIL_HEALTH_PORT", value: "8081" },
          ],
          ports: [{ name: "http-metrics", containerPort: 8081 }],
          readinessProbe: { httpGet: { path: "/readyz", port: "http-metrics" }, periodSeconds: 1 },
          securityContext: restricted,
        },
        {
          name: "gateway",
          image: IMAGE,
          args: ["gateway", "--manifests", "/etc/vigil/cameras.yaml"],
          env: [
            { name: "VIGIL_API_TOKEN", valueFrom: { secretKeyRef: { name: "gateway", key: "token" } } },
            { name: "REDIS_URL", valueFrom: { secretKeyRef: { name: "gateway", key: "redis-url" } } },
            { name: "VIGIL_PORT", value: "8080" },
            { name: "VIGIL_GATEWAY_HEALTH_PORT", value: "8082" },
          ],
          ports: [
            { name: "http", containerPort: 8080 },
            { name: "health", containerPort: 8082 },
          ],
          readinessProbe: { httpGet: { path: "/readyz", port: "health" }, periodSeconds: 1 },
          securityContext: restricted,
          volumeMounts: [{ name: "cameras", mountPath: "/etc/vigil", readOnly: true }],
        },
      ],
      volumes: [
        { name: "cameras", secret: { secretName: "gateway", items: [{ key: "cameras.yaml", path: "cameras.yaml" }] } },
      ],
    },
  };
}

const cameras = [
  {
    apiVersion: "vigil.dev/v1alpha1",
    kind: "DetectorPool",
    metadata: { name: "local" },
    spec: { model: { uri: "file:///models/yolov8n.onnx" } },
  },
  {
    apiVersion: "vigil.dev/v1alpha1",
    kind: "CameraDetection",
    metadata: { name: "lobby", namespace: "site-a" },
    spec: { source: { url: "rtsp://10.0.0.7:554/lobby" }, poolRef: { name: "local" } },
  },
]
  .map((d) => stringify(d))
  .join("---\n");

const readPod = () => c.core.readNamespacedPod({ name: POD, namespace: ns });
const statusOf = (p: V1Pod, name: string): V1ContainerStatus | undefined =>
  p.status?.containerStatuses?.find((s) => s.name === name);
const pidOf = (container: string) => kubelet.processes().find((p) => p.pod === POD && p.container === container)?.pid;
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Waits until both containers run and the pod is Ready (our readiness probes, not kwok's word). */
const ready = () =>
  waitFor(
    "pod Ready with both containers ready",
    async () => {
      const p = await readPod();
      const r = p.status?.conditions?.find((x) => x.type === "Ready")?.status === "True";
      return r && ["operator", "gateway"].every((n) => statusOf(p, n)?.ready) ? p : undefined;
    },
    60_000,
    200,
  );

beforeAll(async () => {
  // The integration project's globalSetup builds dist/ in a whole run; alone, this file builds it if missing.
  if (!existsSync(VIGIL_JS)) await buildDist();
  ns = await freshNamespace(c, "kubelet");
  redis = await startRedis();
  await operatorServiceAccount(ns);
  await c.core.createNamespacedConfigMap({
    namespace: ns,
    body: { metadata: { name: "operator-settings" }, data: { VIGIL_WATCH_NAMESPACE: ns, LOG_LEVEL: "info" } },
  });
  await c.core.createNamespacedSecret({
    namespace: ns,
    body: {
      metadata: { name: "gateway" },
      stringData: { token: TOKEN, "redis-url": `redis://127.0.0.1:${redis.port}`, "cameras.yaml": cameras },
    },
  });
  kubelet = await startProcessKubelet({ kubeconfig: inject("fullKubeconfig"), namespace: ns });
}, 120_000);

afterAll(async () => {
  await kubelet?.stop();
  redis?.proc.kill();
  // No orphans: every process this test saw is gone once the kubelet stopped.
  expect([...seenPids].filter(alive)).toEqual([]);
  await c.core.deleteNamespace({ name: ns }).catch(() => undefined);
});

describe("process kubelet", () => {
  let podIP: string;

  it("runs the pod's containers as processes once the scheduler and kwok placed it", async () => {
    const t0 = Date.now();
    await c.core.createNamespacedPod({ namespace: ns, body: pod(ns) });
    const placed = await waitFor("a pod IP from kwok", async () => (await readPod()).status?.podIP, 30_000, 100);
    const tIP = Date.now();
    await waitFor("both processes", async () => pidOf("operator") && pidOf("gateway"), 30_000, 50);
    const tStart = Date.now();
    const p = await ready();
    const tReady = Date.now();
    console.log(
      `[process-kubelet] create → pod IP ${tIP - t0} ms, → processes started ${tStart - t0} ms, → Ready ${tReady - t0} ms`,
    );
    podIP = placed;
    expect(podIP).toMatch(/^127\.100\.\d+\.\d+$/);
    // The only node without the GPU taint.
    expect(p.spec?.nodeName).toBe("cpu-0");
    const procs = kubelet.processes().filter((x) => x.pod === POD);
    expect(procs.map((x) => [x.container, x.node, x.podIP]).sort()).toEqual([
      ["gateway", p.spec?.nodeName, podIP],
      ["operator", p.spec?.nodeName, podIP],
    ]);
    for (const x of procs) {
      seenPids.add(x.pid);
      const status = readFileSync(`/proc/${x.pid}/status`, "utf8");
      expect(status).toMatch(/^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
      expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
      // The pid the kubelet reports is the Vigil process itself (unshare and setpriv exec'd into it).
      // The checkout is shown at /app, where the image has the app (test/setup/kubelet/launch.ts).
      expect(readFileSync(`/proc/${x.pid}/cmdline`, "utf8").split("\0")).toContain("/app/dist/vigil.js");
    }
    expect(statusOf(p, "operator")).toMatchObject({ restartCount: 0, state: { running: {} } });
  });

  it("authenticates the operator as its pod's ServiceAccount and serves its probes on the pod IP", async () => {
    expect((await fetch(`http://${podIP}:8081/healthz`)).status).toBe(200);
    // It holds its leader Lease: the chart's namespace Role is all that lets it.
    const lease = await waitFor(
      "the operator's Lease",
      async () => (await c.coordination.readNamespacedLease({ name: "vigil-operator", namespace: ns })).spec,
      20_000,
    );
    expect(lease.holderIdentity).toMatch(new RegExp(`^${POD}_[0-9a-f]{8}$`)); // the pod and this process
    // The token it reads is a pod-bound token of vigil-operator.
    const pid = pidOf("operator")!;
    const sa = `/proc/${pid}/root/run/secrets/kubernetes.io/serviceaccount`;
    expect(readFileSync(`${sa}/namespace`, "utf8")).toBe(ns);
    const token = readFileSync(`${sa}/token`, "utf8");
    const review = await kubeConfigWithToken(c.kc, "op", token)
      .makeApiClient(AuthenticationV1Api)
      .createSelfSubjectReview({ body: {} });
    expect(review.status?.userInfo?.username).toBe(`system:serviceaccount:${ns}:vigil-operator`);
    expect(review.status?.userInfo?.extra?.["authentication.kubernetes.io/pod-name"]).toEqual([POD]);
    // readOnlyRootFilesystem: its view of / is a read-only bind remount.
    const root = readFileSync(`/proc/${pid}/mountinfo`, "utf8")
      .split("\n")
      .map((l) => l.split(" "))
      .find((f) => f[4] === "/");
    expect(root?.[5]).toMatch(/^ro(,|$)/);
  });

  it("gives the gateway its token and Redis from a Secret's keys and its cameras from a mounted Secret file", async () => {
    const api = `http://${podIP}:8080/api/v1/cameras`;
    expect((await fetch(api)).status).toBe(401);
    const res = await fetch(api, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(200);
    expect(JSON.stringify(await res.json())).toContain("lobby");
    expect((await fetch(`http://${podIP}:8082/readyz`)).status).toBe(200);
    expect(kubelet.logs(ns, POD, "gateway")).toContain("gateway listening");
    expect(kubelet.logs(ns, POD, "gateway")).not.toContain(TOKEN);
  });

  it("restarts a SIGKILLed process at once, then after the 10 s backoff, and reports it", async () => {
    const first = pidOf("operator")!;
    process.kill(first, "SIGKILL");
    const p1 = await waitFor(
      "restartCount 1",
      async () => {
        const p = await readPod();
        return (statusOf(p, "operator")?.restartCount ?? 0) >= 1 && pidOf("operator") ? p : undefined;
      },
      20_000,
      100,
    );
    expect(statusOf(p1, "operator")?.lastState?.terminated).toMatchObject({ exitCode: 137, reason: "Error" });
    const second = pidOf("operator")!;
    expect(second).not.toBe(first);
    seenPids.add(second);
    await ready();

    process.kill(second, "SIGKILL");
    const killedAt = Date.now();
    const waiting = await waitFor(
      "CrashLoopBackOff",
      async () => {
        const s = statusOf(await readPod(), "operator");
        return s?.state?.waiting?.reason === "CrashLoopBackOff" ? s : undefined;
      },
      10_000,
      100,
    );
    expect(waiting).toMatchObject({ ready: false, restartCount: 1, lastState: { terminated: { exitCode: 137 } } });
    expect((await readPod()).status?.conditions?.find((x) => x.type === "Ready")?.status).toBe("False");
    await waitFor(
      "restartCount 2",
      async () => (statusOf(await readPod(), "operator")?.restartCount ?? 0) >= 2,
      30_000,
      200,
    );
    console.log(`[process-kubelet] second restart ${Date.now() - killedAt} ms after its SIGKILL (backoff 10 s)`);
    seenPids.add(pidOf("operator")!);
    await ready();
  });

  it("kills everything on a powered-off node and writes nothing more; powered on, it runs the pod again", async () => {
    const before = await readPod();
    const node = before.spec?.nodeName ?? "";
    const pids = kubelet
      .processes()
      .filter((x) => x.pod === POD)
      .map((x) => x.pid);
    await kubelet.killNode(node);
    expect(pids.filter(alive)).toEqual([]);
    expect(kubelet.processes().filter((x) => x.node === node)).toEqual([]);
    await new Promise((r) => setTimeout(r, 2000));
    expect((await readPod()).metadata?.resourceVersion).toBe(before.metadata?.resourceVersion);
    kubelet.startNode(node);
    await waitFor("processes again", async () => pidOf("operator") && pidOf("gateway"), 30_000, 100);
    for (const x of kubelet.processes()) seenPids.add(x.pid);
    await ready();
  });

  it("stops the processes when the pod is deleted", async () => {
    const pids = kubelet
      .processes()
      .filter((x) => x.pod === POD)
      .map((x) => x.pid);
    expect(pids).toHaveLength(2);
    await c.core.deleteNamespacedPod({ name: POD, namespace: ns });
    await waitFor("processes gone", async () => pids.every((pid) => !alive(pid)), 20_000, 100);
    expect(kubelet.processes().filter((x) => x.pod === POD)).toEqual([]);
    // kwok finishes the deletion (pod-delete stage).
    await waitFor(
      "pod gone",
      async () =>
        readPod().then(
          () => false,
          () => true,
        ),
      20_000,
      200,
    );
    // SIGTERM first: the operator shut down cleanly (released its Lease) before the grace period ran out.
    expect(kubelet.logs(ns, POD, "operator")).toContain("operator stopped");
  });
});
