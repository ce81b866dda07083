// Failover with real worker processes, the operator and the real apiserver: each worker renews its own Lease (as
// its own ServiceAccount, through the operator's per-worker Role). A worker SIGKILLed has its camera streaming on
// the other worker within the 15 s; one that comes back takes no camera away; one stopped with SIGTERM
// releases its Lease, and its camera moves at once.
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Clients } from "../../operator/kube/client.ts";
import {
  admin,
  cameraManifest,
  createCr,
  exitOf,
  freshNamespace,
  getCr,
  type OperatorProc,
  operatorKubeconfig,
  poolManifest,
  readyWorkerPod,
  serviceAccountKubeconfig,
  startOperator,
} from "../setup/kube.ts";
import {
  childProcesses,
  FIXTURES,
  type Service,
  startRedis,
  startRtsp,
  startWorker,
  waitFor,
} from "../setup/services.ts";

type Obj = Record<string, any>;
const PODS = ["p-worker-0", "p-worker-1"] as const;
/** The goal: from a worker process dying to its cameras streaming elsewhere. */
const MOVE_GOAL_MS = 15_000;
let c: Clients;
let ns: string;
let op: OperatorProc;
let redis: Service;
let rtsp: Service;
const kubeconfigs: string[] = [];
const workers: (ChildProcess | undefined)[] = [];
const logs: string[][] = [[], []];

const cam = () => getCr<Obj>(c, "cameradetections", ns, "door");
const lease = (pod: string) => c.coordination.readNamespacedLease({ name: pod, namespace: ns });
const workerOf = async (pod: string) =>
  ((await getCr<Obj>(c, "detectorpools", ns, "p")).status?.workers ?? []).find((w: Obj) => w.name === pod);
const streams = (i: number) =>
  childProcesses(workers[i]?.pid ?? -1).filter((p) => p.cmdline.includes(`127.0.0.1:${rtsp.port}`));

async function start(i: number): Promise<void> {
  const env = { KUBECONFIG: kubeconfigs[i] ?? "", POD_NAME: PODS[i] ?? "", POD_NAMESPACE: ns };
  workers[i] = (await startWorker([], redis.port, env, logs[i])).proc;
}

/** As a container dies: the worker and its ffmpeg, at once, with no chance to release anything. */
async function kill(i: number): Promise<void> {
  const w = workers[i];
  if (!w) return;
  const children = childProcesses(w.pid ?? -1);
  const exited = new Promise((r) => w.once("exit", r));
  w.kill("SIGKILL");
  for (const p of children)
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {}
  await exited;
}

/**
 * Worker `to` alone streams the camera and reports it Streaming, with a frame seen after `since`: ms from `since`
 * to that, and to the operator's move (the camera's label).
 */
async function streamingOn(to: number, since: number): Promise<{ moveMs: number; labelMs: number }> {
  let seen = "";
  let labelMs = -1;
  await waitFor(
    `camera streaming on ${PODS[to]}`,
    async () => {
      const o = await cam();
      const health = (o.status?.conditions ?? []).find((x: Obj) => x.type === "StreamHealthy");
      const owners = (o.metadata.managedFields ?? [])
        .filter((m: Obj) => m.subresource === "status" && m.manager.startsWith("vigil-worker-"))
        .filter((m: Obj) => Object.keys(m.fieldsV1?.["f:status"] ?? {}).length > 0)
        .map((m: Obj) => m.manager);
      if (labelMs < 0 && o.metadata.labels?.["vigil.dev/worker"] === PODS[to]) labelMs = Date.now() - since;
      seen = `label ${o.metadata.labels?.["vigil.dev/worker"]}, StreamHealthy ${health?.reason}, owners ${owners}, lastFrameTime ${o.status?.lastFrameTime}`;
      return (
        o.metadata.labels?.["vigil.dev/worker"] === PODS[to] &&
        streams(to).length === 1 &&
        health?.reason === "Streaming" &&
        owners.join(",") === `vigil-worker-${PODS[to]}` &&
        Date.parse(o.status?.lastFrameTime) >= Math.floor(since / 1000) * 1000
      );
    },
    60_000,
    100,
  ).catch((err) => {
    throw new Error(`${err}\nlast seen: ${seen}`);
  });
  return { moveMs: Date.now() - since, labelMs };
}

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "fo");
  redis = await startRedis();
  rtsp = await startRtsp(join(FIXTURES, "vtest.avi"), { auth: "viewer:fo-Secret-pw" });
  op = startOperator(await operatorKubeconfig(c, ns), ns);
  await c.core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: "door-creds" }, stringData: { username: "viewer", password: "fo-Secret-pw" } },
  });
  await createCr(c, "detectorpools", ns, poolManifest("p", { camerasPerWorker: 2, minWorkers: 2, maxWorkers: 2 }));
  await createCr(
    c,
    "cameradetections",
    ns,
    cameraManifest("door", "p", {
      source: { url: `rtsp://127.0.0.1:${rtsp.port}/cam1`, credentialsSecretRef: { name: "door-creds" } },
      detection: { targetFps: 2 },
    }),
  );
  // The pods these processes play (no kubelet here), each with a token bound to its pod.
  for (const [i, pod] of PODS.entries()) {
    const bound = await readyWorkerPod(c, ns, "p", pod, { serviceAccountName: "vigil-worker" });
    kubeconfigs.push(
      await serviceAccountKubeconfig(c, ns, "vigil-worker", { namespace: "worker-namespace-rules.yaml" }, bound),
    );
    await start(i);
  }
}, 120_000);

afterAll(async () => {
  if (process.env.DEBUG_WORKER) console.log(logs.map((l) => l.join("")).join("\n----\n"), op?.logs.join("\n"));
  for (const i of [0, 1]) await kill(i);
  await op?.stop();
  await rtsp?.stop("SIGKILL");
  await redis?.stop();
});

it("each worker renews its own Lease, named like its pod, every 2 s for 6 s", { timeout: 60_000 }, async () => {
  for (const pod of PODS) {
    const first = await waitFor(`${pod}'s Lease held`, async () => {
      const l = await lease(pod);
      return Boolean(l.spec?.holderIdentity) && l;
    });
    expect(first.spec?.holderIdentity).toMatch(new RegExp(`^${pod}_[0-9a-f]{8}$`));
    expect(first.spec?.leaseDurationSeconds).toBe(6);
    expect(first.metadata?.labels?.["vigil.dev/pool"]).toBe("p");
    expect(first.metadata?.ownerReferences?.[0]).toMatchObject({ kind: "DetectorPool", name: "p" });
    // MicroTime: six fractional digits.
    expect(JSON.stringify(await lease(pod))).toMatch(/"renewTime":"[^"]+\.\d{6}Z"/);
    const renewed = await waitFor(
      `${pod}'s Lease renewed`,
      async () => {
        const l = await lease(pod);
        return String(l.spec?.renewTime) !== String(first.spec?.renewTime) && l;
      },
      10_000,
    );
    expect(renewed.spec?.holderIdentity).toBe(first.spec?.holderIdentity);
    expect((await workerOf(pod))?.phase).toBe("Ready");
  }
});

it("moves the camera of a SIGKILLed worker to the other one within 15 s; a worker back keeps none of it", {
  timeout: 180_000,
}, async () => {
  const on = PODS.indexOf(
    await waitFor(
      "camera streaming",
      async () => {
        const o = await cam();
        const up = (o.status?.conditions ?? []).some(
          (x: Obj) => x.type === "StreamHealthy" && x.reason === "Streaming",
        );
        return up && o.status?.worker;
      },
      60_000,
    ),
  );
  expect(on).toBeGreaterThanOrEqual(0);
  const other = 1 - on;
  const killedAt = Date.now();
  await kill(on);
  const { moveMs, labelMs } = await streamingOn(other, killedAt);
  console.log(
    JSON.stringify({ event: "worker SIGKILL", from: PODS[on], to: PODS[other], labelMs, moveMs, goalMs: MOVE_GOAL_MS }),
  );
  expect(moveMs).toBeLessThanOrEqual(MOVE_GOAL_MS);
  expect(await workerOf(PODS[on] ?? "")).toMatchObject({ phase: "Lost", cameras: 0 });
  const events = await c.core.listNamespacedEvent({ namespace: ns });
  expect(events.items.some((e) => e.reason === "WorkerLost" && e.message?.includes(PODS[on] ?? "-"))).toBe(true);

  // Restarted (as the kubelet restarts a container): Ready again, and the camera stays where it streams.
  await start(on);
  await waitFor(`${PODS[on]} Ready again`, async () => (await workerOf(PODS[on] ?? ""))?.phase === "Ready", 60_000);
  await new Promise((r) => setTimeout(r, 3000));
  expect((await cam()).metadata.labels?.["vigil.dev/worker"]).toBe(PODS[other]);
  expect(streams(on)).toHaveLength(0);
});

it("a worker stopped with SIGTERM releases its Lease, and its camera moves at once", { timeout: 120_000 }, async () => {
  const from = PODS.indexOf((await cam()).status?.worker);
  expect(from).toBeGreaterThanOrEqual(0);
  const to = 1 - from;
  const w = workers[from];
  const exited = w ? exitOf(w).then((e) => e.code) : Promise.resolve(null);
  const stoppedAt = Date.now();
  w?.kill("SIGTERM");
  const { moveMs, labelMs } = await streamingOn(to, stoppedAt);
  expect(await exited).toBe(0);
  workers[from] = undefined;
  console.log(JSON.stringify({ event: "worker SIGTERM", from: PODS[from], to: PODS[to], labelMs, moveMs }));
  expect(moveMs).toBeLessThanOrEqual(MOVE_GOAL_MS);
  const released = await lease(PODS[from] ?? "");
  expect(released.spec?.holderIdentity).toBeUndefined();
  expect(logs[from]?.join("")).toContain("worker Lease released");
});
