// The simulated GPU cluster itself (hack/cluster.sh up --full), before anything of Vigil runs on it: the real
// kube-scheduler places GPU pods on kwok's fake GPU nodes, pod IPs are loopback addresses that work on this host, a
// full cluster leaves a pod Unschedulable until a node is added, and the real kube-controller-manager notices both
// kinds of node failure (kwok's chaos stage; a node's kwok SIGKILLed) with Kubernetes' default timings, which Vigil's
// failover has to beat. The images are never pulled: kwok runs nothing, and the process kubelet only runs Vigil's.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { join } from "node:path";
import {
  AppsV1Api,
  PatchStrategy,
  setHeaderOptions,
  type V1Deployment,
  type V1Node,
  type V1Pod,
  type V1StatefulSet,
  type V1Taint,
  type V1Toleration,
} from "@kubernetes/client-node";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { type Clients, loadKubeConfig, makeClients } from "../../operator/kube/client.ts";
import { freshNamespace, ROOT, waitFor } from "../setup/operator-env.ts";

const CLUSTER = join(ROOT, "hack", "cluster.sh");
/** hack/cluster.sh up --full's state: nodes/<name> holds each node's index. */
const CLUSTER_STATE = join(ROOT, ".cache", "cluster-full");
const IMAGE = "registry.k8s.io/pause:3.10";
const MERGE = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
const GPU_TAINT: V1Toleration = { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" };
// Short tolerations, as Vigil's worker pods get them: evicted 5 s after the node is tainted, not the default 300 s.
const FAST_EVICTION: V1Toleration[] = ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"].map((key) => ({
  key,
  operator: "Exists",
  effect: "NoExecute",
  tolerationSeconds: 5,
}));
const OUT_OF_SERVICE: V1Taint = {
  key: "node.kubernetes.io/out-of-service",
  value: "nodeshutdown",
  effect: "NoExecute",
};

let c: Clients;
let apps: AppsV1Api;
let ns: string;
// What the cases changed on the shared cluster, undone in afterAll even when a case fails.
let addedNode: string | undefined;
let chaosNode: string | undefined;
let killedNode: string | undefined;

const clusterNode = (...args: string[]) =>
  execFileSync("bash", [CLUSTER, "node", ...args], { stdio: ["ignore", "inherit", "inherit"] });
const since = (t0: number) => `${((performance.now() - t0) / 1000).toFixed(1)} s`;
const readNode = (name: string) => c.core.readNode({ name });
const readyStatus = (n: V1Node) => n.status?.conditions?.find((x) => x.type === "Ready")?.status;
const hasTaint = (n: V1Node, key: string, effect = "NoExecute") =>
  (n.spec?.taints ?? []).some((t) => t.key === key && t.effect === effect);
const running = (p: V1Pod) => p.status?.phase === "Running" && !!p.status.podIP && !p.metadata?.deletionTimestamp;
const subnet24 = (ip: string) => ip.split(".").slice(0, 3).join(".");
const pods = async (app: string) =>
  (await c.core.listNamespacedPod({ namespace: ns, labelSelector: `app=${app}` })).items;

function podTemplate(app: string, gpus: number, tolerations: V1Toleration[]) {
  return {
    metadata: { labels: { app } },
    spec: {
      tolerations: [GPU_TAINT, ...tolerations],
      terminationGracePeriodSeconds: 5,
      containers: [
        {
          name: "main",
          image: IMAGE,
          resources: gpus ? { limits: { "nvidia.com/gpu": String(gpus) } } : { requests: { cpu: "100m" } },
        },
      ],
    },
  };
}

const gpuDeployment = (name: string, replicas: number, tolerations: V1Toleration[] = []): V1Deployment => ({
  metadata: { name },
  spec: { replicas, selector: { matchLabels: { app: name } }, template: podTemplate(name, 1, tolerations) },
});

async function setTaint(name: string, taint: V1Taint, on: boolean): Promise<void> {
  const node = await readNode(name);
  const others = (node.spec?.taints ?? []).filter((t) => !(t.key === taint.key && t.effect === taint.effect));
  await c.core.patchNode({ name, body: { spec: { taints: on ? [...others, taint] : others } } }, MERGE);
}

/** A process bound to the pod IP is reachable there: 127/8 is all loopback on this host. */
async function reachable(ip: string): Promise<boolean> {
  const server = createServer((s) => s.end("ok"));
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(0, ip, resolve));
  const { port } = server.address() as { port: number };
  try {
    return await new Promise<boolean>((resolve, reject) => {
      const s = createConnection({ host: ip, port }, () => s.once("data", (d) => resolve(d.toString() === "ok")));
      s.once("error", reject);
    });
  } finally {
    server.close();
  }
}

beforeAll(async () => {
  c = makeClients(loadKubeConfig(inject("fullKubeconfig")));
  apps = c.kc.makeApiClient(AppsV1Api);
  ns = await freshNamespace(c, "e2e-cluster");
  // ServiceAccount admission is on: pods are refused until the controller-manager made the namespace's `default`.
  await waitFor("the namespace's default ServiceAccount", async () => {
    await c.core.readNamespacedServiceAccount({ name: "default", namespace: ns });
    return true;
  });
});

afterAll(async () => {
  if (chaosNode) clusterNode("chaos", chaosNode, "off");
  if (killedNode) {
    await setTaint(killedNode, OUT_OF_SERVICE, false);
    clusterNode("start", killedNode);
  }
  if (ns) await c.core.deleteNamespace({ name: ns });
  // The next run (on a kept cluster) starts from the default nodes again.
  if (addedNode) clusterNode("delete", addedNode);
});

it("kube-scheduler places a GPU pod on a GPU node, Running with a working loopback IP of that node's /24", async () => {
  await apps.createNamespacedDeployment({ namespace: ns, body: gpuDeployment("gpu", 1) });
  const pod = await waitFor("a Running gpu pod", async () => (await pods("gpu")).find(running), 30_000);
  const nodeName = pod.spec?.nodeName ?? "";
  expect(nodeName).toMatch(/^gpu-[0-2]$/);
  const node = await readNode(nodeName);
  expect(node.status?.allocatable?.["nvidia.com/gpu"]).toBe("1");
  const podIp = pod.status?.podIP ?? "";
  expect(podIp).toMatch(/^127\.100\.\d+\.\d+$/);
  // Within the node's pod CIDR, 127.100.<index+1>.0/24 by the index hack/cluster.sh gave it (its kwok's --cidr):
  // not from the node's InternalIP, which a node that went through the chaos stage (the fleet e2e's, when it ran
  // first) can come back without.
  const index = Number(readFileSync(join(CLUSTER_STATE, "nodes", nodeName), "utf8").trim());
  expect(subnet24(podIp)).toBe(`127.100.${index + 1}`);
  expect(pod.status?.conditions?.find((x) => x.type === "Ready")?.status).toBe("True");
  // Bound by the scheduler, not by a nodeName of ours.
  const scheduled = await waitFor("the Scheduled event", async () => {
    const events = await c.core.listNamespacedEvent({
      namespace: ns,
      fieldSelector: `involvedObject.name=${pod.metadata?.name},reason=Scheduled`,
    });
    return events.items[0];
  });
  expect(scheduled.reportingComponent || scheduled.source?.component).toBe("default-scheduler");
  expect(await reachable(podIp)).toBe(true);
  console.log(`[e2e] gpu pod ${pod.metadata?.name} on ${nodeName} at ${podIp}`);
});

let pendingPod = "";

it("4 GPU replicas on 3 GPUs: one stays Pending, Unschedulable for lack of nvidia.com/gpu", async () => {
  await apps.patchNamespacedDeployment({ name: "gpu", namespace: ns, body: { spec: { replicas: 4 } } }, MERGE);
  const { run, pending } = await waitFor(
    "3 Running and 1 Unschedulable gpu pods",
    async () => {
      const all = await pods("gpu");
      const run = all.filter(running);
      const pending = all.filter((p) =>
        p.status?.conditions?.some(
          (x) => x.type === "PodScheduled" && x.status === "False" && x.reason === "Unschedulable",
        ),
      );
      return run.length === 3 && pending.length === 1 && { run, pending: pending[0] as V1Pod };
    },
    30_000,
  );
  expect(run.map((p) => p.spec?.nodeName).sort()).toEqual(["gpu-0", "gpu-1", "gpu-2"]);
  expect(pending.status?.phase).toBe("Pending");
  expect(pending.spec?.nodeName).toBeUndefined();
  const message = pending.status?.conditions?.find((x) => x.type === "PodScheduled")?.message ?? "";
  expect(message).toContain("Insufficient nvidia.com/gpu");
  pendingPod = pending.metadata?.name ?? "";
  console.log(`[e2e] ${pendingPod} Unschedulable: ${message}`);
});

it("`node add gpu-3` gives the pending pod its GPU", async () => {
  const t0 = performance.now();
  clusterNode("add", "gpu-3", "--gpus", "1");
  addedNode = "gpu-3";
  const added = since(t0);
  const pod = await waitFor(
    "the pending pod Running on gpu-3",
    async () => {
      const p = await c.core.readNamespacedPod({ name: pendingPod, namespace: ns });
      return running(p) && p.spec?.nodeName === "gpu-3" && p;
    },
    30_000,
  );
  const node = await readNode("gpu-3");
  expect(node.metadata?.labels?.["nvidia.com/gpu.product"]).toBe("NVIDIA-L4");
  const nodeIp = node.status?.addresses?.find((a) => a.type === "InternalIP")?.address ?? "";
  expect(subnet24(pod.status?.podIP ?? "")).toBe(subnet24(nodeIp));
  console.log(`[e2e] node add gpu-3: Ready after ${added}, pending pod Running there after ${since(t0)}`);
  await apps.deleteNamespacedDeployment({ name: "gpu", namespace: ns });
  await waitFor("the gpu pods gone", async () => (await pods("gpu")).length === 0, 30_000);
});

it("kwok's chaos stage: the node goes NotReady, gets the not-ready NoExecute taint, and the pod moves", async () => {
  await apps.createNamespacedDeployment({ namespace: ns, body: gpuDeployment("chaos", 1, FAST_EVICTION) });
  const before = await waitFor("a Running chaos pod", async () => (await pods("chaos")).find(running), 30_000);
  const victim = before.spec?.nodeName ?? "";
  const t0 = performance.now();
  clusterNode("chaos", victim, "on");
  chaosNode = victim;
  await waitFor("the node NotReady", async () => readyStatus(await readNode(victim)) === "False", 30_000);
  const notReady = since(t0);
  await waitFor(
    "the not-ready taint",
    async () => hasTaint(await readNode(victim), "node.kubernetes.io/not-ready"),
    30_000,
  );
  const tainted = since(t0);
  const after = await waitFor(
    "a replacement pod Running on another node",
    async () => (await pods("chaos")).find((p) => running(p) && p.metadata?.uid !== before.metadata?.uid),
    60_000,
  );
  expect(after.spec?.nodeName).not.toBe(victim);
  // The node's kwok still runs, so it answers the eviction: the old pod is gone, not left Terminating.
  await waitFor("the evicted pod gone", async () =>
    (await pods("chaos")).every((p) => p.metadata?.uid !== before.metadata?.uid),
  );
  console.log(
    `[e2e] chaos on ${victim}: NotReady ${notReady}, NoExecute taint ${tainted}, pod Running on ${after.spec?.nodeName} ${since(t0)}`,
  );
  clusterNode("chaos", victim, "off");
  chaosNode = undefined;
  await waitFor(
    "the node Ready and untainted again",
    async () => {
      const n = await readNode(victim);
      return readyStatus(n) === "True" && !hasTaint(n, "node.kubernetes.io/not-ready");
    },
    60_000,
  );
  await apps.deleteNamespacedDeployment({ name: "chaos", namespace: ns });
});

it("a killed node goes Unknown; its StatefulSet pod stays Terminating until the out-of-service taint", async () => {
  const sts: V1StatefulSet = {
    metadata: { name: "sts" },
    spec: {
      replicas: 1,
      serviceName: "sts",
      selector: { matchLabels: { app: "sts" } },
      template: podTemplate("sts", 0, FAST_EVICTION),
    },
  };
  await apps.createNamespacedStatefulSet({ namespace: ns, body: sts });
  const first = await waitFor("sts-0 Running", async () => (await pods("sts")).find(running), 30_000);
  const victim = first.spec?.nodeName ?? "";
  const t0 = performance.now();
  clusterNode("kill", victim);
  killedNode = victim;
  // The controller-manager's node-monitor-grace-period (50 s by default) after the last Lease renewal.
  await waitFor("the node Unknown", async () => readyStatus(await readNode(victim)) === "Unknown", 100_000, 500);
  const unknown = since(t0);
  const terminating = await waitFor(
    "sts-0 evicted (deletionTimestamp set)",
    async () => {
      const p = (await pods("sts")).find((x) => x.metadata?.uid === first.metadata?.uid);
      return p?.metadata?.deletionTimestamp && p;
    },
    30_000,
    250,
  );
  const evicted = since(t0);
  // Nothing confirms a deletion on a dead node: the pod is still there, and the StatefulSet cannot replace it.
  await new Promise((r) => setTimeout(r, 2000));
  const still = await c.core.readNamespacedPod({ name: "sts-0", namespace: ns });
  expect(still.metadata?.uid).toBe(terminating.metadata?.uid);
  expect(still.metadata?.deletionTimestamp).toBeTruthy();

  const t1 = performance.now();
  await setTaint(victim, OUT_OF_SERVICE, true);
  const moved = await waitFor(
    "a new sts-0 Running on another node",
    async () => {
      const p = (await pods("sts")).find((x) => x.metadata?.uid !== first.metadata?.uid && running(x));
      return p && p.spec?.nodeName !== victim && p;
    },
    60_000,
    250,
  );
  console.log(
    `[e2e] node kill ${victim}: Unknown ${unknown}, sts-0 Terminating ${evicted}; out-of-service taint → sts-0 Running on ${moved.spec?.nodeName} ${since(t1)}`,
  );
  await setTaint(victim, OUT_OF_SERVICE, false);
  clusterNode("start", victim);
  killedNode = undefined;
  expect(readyStatus(await readNode(victim))).toBe("True");
});
