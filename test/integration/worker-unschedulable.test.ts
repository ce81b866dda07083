// A worker pod the scheduler cannot place (no free GPU) is not capacity: the camera waiting for it says
// WorkerUnschedulable, naming the pending pod and the scheduler's message, on its Scheduled condition and in an
// Event; beyond maxWorkers it is still PoolFull. The scheduler's verdict is written here through the pods/status
// subresource as kube-scheduler writes it (this control plane has no scheduler); the workers that run are the real
// Lease renewer (worker/lease.ts) without the rest of a worker.
import { PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Clients } from "../../operator/kube/client.ts";
import {
  admin,
  cameraManifest,
  createCr,
  freshNamespace,
  getCr,
  type OperatorProc,
  operatorKubeconfig,
  poolManifest,
  startOperator,
  waitFor,
} from "../setup/kube.ts";
import { type WorkerLeases, workerLeases } from "../setup/worker-leases.ts";

type Obj = Record<string, any>;
// A message in the form kube-scheduler writes for a GPU pod when every GPU is taken.
const SCHEDULER_MESSAGE =
  "0/4 nodes are available: 1 Insufficient nvidia.com/gpu, 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling.";
let c: Clients;
let ns: string;
let op: OperatorProc;
let leases: WorkerLeases;

const cam = (name: string) => getCr<Obj>(c, "cameradetections", ns, name);
const scheduled = async (name: string) =>
  ((await cam(name)).status?.conditions ?? []).find((x: Obj) => x.type === "Scheduled");
const setPodScheduled = (name: string, status: Obj) =>
  c.core.patchNamespacedPodStatus(
    { name, namespace: ns, body: { status } },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "unsched");
  op = startOperator(await operatorKubeconfig(c, ns), ns);
  leases = workerLeases(c, ns);
});
afterAll(async () => {
  await leases?.close();
  await op?.stop();
});

it("says WorkerUnschedulable with the pending pod and the scheduler's message; PoolFull beyond maxWorkers", {
  timeout: 90_000,
}, async () => {
  // One camera per GPU worker (the default resources ask nvidia.com/gpu: 1), up to three workers.
  await createCr(
    c,
    "detectorpools",
    ns,
    poolManifest("g", { camerasPerWorker: 1, maxWorkers: 3, failover: { tolerationSeconds: 12 } }),
  );
  leases.start("g-worker-0", "g-worker-1");
  for (const name of ["a", "b", "c"]) await createCr(c, "cameradetections", ns, cameraManifest(name, "g"));
  // The third worker's pod, as the StatefulSet controller makes it; the scheduler finds no GPU for it.
  await c.core.createNamespacedPod({
    namespace: ns,
    body: {
      metadata: { name: "g-worker-2", labels: { "app.kubernetes.io/name": "vigil-worker", "vigil.dev/pool": "g" } },
      spec: {
        containers: [{ name: "worker", image: "vigil", resources: { limits: { "nvidia.com/gpu": "1" } } }],
      },
    },
  });
  await setPodScheduled("g-worker-2", {
    phase: "Pending",
    conditions: [
      {
        type: "PodScheduled",
        status: "False",
        reason: "Unschedulable",
        message: SCHEDULER_MESSAGE,
        lastTransitionTime: new Date(),
      },
    ],
  });

  // Once the two running workers have taken a and b, c waits for the third.
  const waiting = await waitFor("a, b placed and c waiting for the unschedulable worker", async () => {
    const [a, b, s] = await Promise.all(["a", "b", "c"].map(scheduled));
    return a?.status === "True" && b?.status === "True" && s?.reason === "WorkerUnschedulable" && s;
  });
  expect(waiting).toMatchObject({ status: "False" });
  expect(waiting.message).toBe(`worker pod g-worker-2 cannot be scheduled: ${SCHEDULER_MESSAGE}`);
  expect((await cam("c")).status.phase).toBe("Unschedulable");
  expect((await cam("c")).metadata.labels?.["vigil.dev/worker"]).toBeUndefined();
  for (const name of ["a", "b"]) expect(await scheduled(name)).toMatchObject({ status: "True", reason: "Assigned" });

  const events = async () => (await c.core.listNamespacedEvent({ namespace: ns })).items;
  const onCamera = await waitFor("the camera's Event", async () =>
    (await events()).find((e) => e.involvedObject.name === "c" && e.reason === "WorkerUnschedulable"),
  );
  expect(onCamera.type).toBe("Warning");
  expect(onCamera.message).toContain("g-worker-2");
  expect(onCamera.message).toContain(SCHEDULER_MESSAGE);
  const onPool = await waitFor("the pool's Event", async () =>
    (await events()).find((e) => e.involvedObject.name === "g" && e.reason === "WorkerUnschedulable"),
  );
  expect(onPool.message).toBe(`worker pod g-worker-2 cannot be scheduled: ${SCHEDULER_MESSAGE}`);
  const pool = await waitFor("the pool's status", async () => {
    const p = await getCr<Obj>(c, "detectorpools", ns, "g");
    return p.status?.unassignedCameras === 1 && p;
  });
  expect(pool.status.workers.find((w: Obj) => w.name === "g-worker-2")).toMatchObject({
    phase: "Unschedulable",
    cameras: 0,
    message: SCHEDULER_MESSAGE,
  });
  expect(pool.status.conditions.find((x: Obj) => x.type === "CapacityAvailable")).toMatchObject({
    status: "False",
    reason: "WorkerUnschedulable",
  });

  // A fourth camera is beyond maxWorkers × camerasPerWorker: that one is PoolFull, as before.
  await createCr(c, "cameradetections", ns, cameraManifest("d", "g"));
  const full = await waitFor("d PoolFull", async () => {
    const s = await scheduled("d");
    return s?.reason === "PoolFull" && s;
  });
  expect(full.message).toBe("DetectorPool g is full: 3 cameras at maxWorkers=3 × camerasPerWorker=1");
  expect((await scheduled("c"))?.reason).toBe("WorkerUnschedulable");
  await waitFor("PoolFull Event on the pool", async () =>
    (await events()).some((e) => e.involvedObject.name === "g" && e.reason === "PoolFull"),
  );

  // The worker pods tolerate the GPU taint and leave a dead node after the pool's tolerationSeconds.
  const sts = (await c.objects.read({
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name: "g-worker", namespace: ns },
  })) as Obj;
  expect(sts.spec.template.spec.tolerations).toEqual([
    { key: "node.kubernetes.io/not-ready", operator: "Exists", effect: "NoExecute", tolerationSeconds: 12 },
    { key: "node.kubernetes.io/unreachable", operator: "Exists", effect: "NoExecute", tolerationSeconds: 12 },
    { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" },
  ]);

  // A GPU frees up: the scheduler binds the pod, the worker starts and renews its Lease, and takes the camera.
  await setPodScheduled("g-worker-2", {
    phase: "Running",
    conditions: [{ type: "PodScheduled", status: "True", lastTransitionTime: new Date() }],
  });
  leases.start("g-worker-2");
  const placed = await waitFor("c assigned to g-worker-2", async () => {
    const s = await scheduled("c");
    return s?.status === "True" && s;
  });
  expect(placed.message).toBe("assigned to worker g-worker-2 of pool g");
  expect((await scheduled("d"))?.reason).toBe("PoolFull");
});
