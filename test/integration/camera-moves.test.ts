// A camera moved between two live workers (real processes in pod mode, real apiserver, real RTSP server behind
// credentials from a Secret) by relabelling it, as the operator does: after every move exactly one worker runs
// its ffmpeg (the OS process table says so), and the stream health in its status belongs to that worker alone.
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import type { KubernetesObject } from "@kubernetes/client-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { DetectorPool } from "../../operator/api/detector-pool.ts";
import { workerIdentity } from "../../operator/controllers/workload.ts";
import { serverSideApply } from "../../operator/kube/apply.ts";
import type { Clients } from "../../operator/kube/client.ts";
import {
  admin,
  cameraManifest,
  createCr,
  freshNamespace,
  getCr,
  mergePatchCr,
  poolManifest,
  readyWorkerPod,
  serviceAccountKubeconfig,
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
const PODS = ["mv-0", "mv-1"] as const;
let c: Clients;
let ns: string;
let redis: Service;
let rtsp: Service;
const workers: ChildProcess[] = [];
const logs: string[][] = [[], []];

const cam = () => getCr<Obj>(c, "cameradetections", ns, "door");
const streams = (i: number) =>
  childProcesses(workers[i]?.pid ?? -1).filter((p) => p.cmdline.includes(`127.0.0.1:${rtsp.port}`));
const relabel = (pod: string) =>
  mergePatchCr(c, "cameradetections", ns, "door", { metadata: { labels: { "vigil.dev/worker": pod } } });
/** The worker field managers owning anything in the status (the operator's own manager is not one of them). */
const statusOwners = (o: Obj): string[] =>
  (o.metadata.managedFields ?? [])
    .filter(
      (m: Obj) =>
        m.subresource === "status" &&
        m.manager.startsWith("vigil-worker") &&
        Object.keys(m.fieldsV1?.["f:status"] ?? {}).length > 0,
    )
    .map((m: Obj) => m.manager);

/** Waits until worker `to` alone streams the camera and alone reports it, with frames seen after `since`. */
async function settledOn(to: number, since: number, fps?: number): Promise<Obj> {
  let seen = "";
  return waitFor(
    `camera settled on ${PODS[to]}`,
    async () => {
      const o = await cam();
      const health = (o.status?.conditions ?? []).find((x: Obj) => x.type === "StreamHealthy");
      const mine = streams(to);
      const other = streams(1 - to);
      seen = `ffmpeg on ${PODS[to]}: ${mine.length}, on ${PODS[1 - to]}: ${other.length}; status owners: ${statusOwners(o).join(",") || "none"}; StreamHealthy: ${health?.reason}; fps: ${o.status?.fps}; lastFrameTime: ${o.status?.lastFrameTime}`;
      return (
        mine.length === 1 &&
        other.length === 0 &&
        (fps === undefined || mine[0]!.cmdline.includes(`fps=${fps},`)) &&
        health?.reason === "Streaming" &&
        statusOwners(o).join(",") === `vigil-worker-${PODS[to]}` &&
        o.status?.fps > 0 &&
        Date.parse(o.status?.lastFrameTime) >= Math.floor(since / 1000) * 1000 &&
        o
      );
    },
    60_000,
    200,
  ).catch((err) => {
    throw new Error(`${err}\nlast seen: ${seen}`);
  });
}

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "mv");
  redis = await startRedis();
  rtsp = await startRtsp(join(FIXTURES, "vtest.avi"), { auth: "viewer:mv-Secret-pw" });
  await c.core.createNamespacedSecret({
    namespace: ns,
    body: { metadata: { name: "door-creds" }, stringData: { username: "viewer", password: "mv-Secret-pw" } },
  });
  const manifest = cameraManifest("door", "p", {
    source: { url: `rtsp://127.0.0.1:${rtsp.port}/cam1`, credentialsSecretRef: { name: "door-creds" } },
    detection: { targetFps: 5 },
  });
  await createCr(c, "cameradetections", ns, {
    ...manifest,
    metadata: { name: "door", labels: { "vigil.dev/worker": PODS[0] } },
  } as KubernetesObject);
  // What the operator gives each worker pod: its own identity (both may read the camera's Secret here, as the camera
  // goes back and forth), and a token bound to the pod, as the kubelet's projected one is.
  const pool = (await createCr(c, "detectorpools", ns, poolManifest("p"))) as DetectorPool;
  for (const [i, pod] of PODS.entries()) {
    for (const o of workerIdentity(pool, pod, ["door-creds"])) await serverSideApply(c.objects, o);
    const bound = await readyWorkerPod(c, ns, "p", pod, { serviceAccountName: "vigil-worker" });
    const kubeconfig = await serviceAccountKubeconfig(
      c,
      ns,
      "vigil-worker",
      { namespace: "worker-namespace-rules.yaml" },
      bound,
    );
    workers.push(
      (await startWorker([], redis.port, { KUBECONFIG: kubeconfig, POD_NAME: pod, POD_NAMESPACE: ns }, logs[i])).proc,
    );
  }
}, 90_000);

afterAll(async () => {
  if (process.env.DEBUG_WORKER) console.log(logs.map((l) => l.join("")).join("\n----\n"));
  const leftovers = workers.flatMap((w) => childProcesses(w.pid ?? -1));
  for (const w of workers) w.kill("SIGTERM");
  for (const p of leftovers)
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {}
  await rtsp?.stop("SIGKILL");
  await redis?.stop();
});

it("moves back and forth: one worker streams it, and the status fields are that worker's", {
  timeout: 300_000,
}, async () => {
  await settledOn(0, 0);
  for (const to of [1, 0, 1, 0]) {
    const at = Date.now();
    await relabel(PODS[to]!);
    await settledOn(to, at);
  }
});

it("a burst of moves ends on the last worker named, the other stopped", { timeout: 120_000 }, async () => {
  for (const to of [1, 0, 1, 0, 1]) await relabel(PODS[to]!);
  const at = Date.now();
  await relabel(PODS[0]);
  await settledOn(0, at);
});

it("a burst of spec updates ends with the newest spec running", { timeout: 120_000 }, async () => {
  for (const fps of [3, 4, 6, 7, 8])
    await mergePatchCr(c, "cameradetections", ns, "door", { spec: { detection: { targetFps: fps } } });
  const at = Date.now();
  await mergePatchCr(c, "cameradetections", ns, "door", { spec: { detection: { targetFps: 2 } } });
  await settledOn(0, at, 2);
  expect(streams(0)).toHaveLength(1);
});

it("a worker that dies without letting go: the next one takes the whole report over", {
  timeout: 120_000,
}, async () => {
  // As a pod's container dies: the worker and its ffmpeg, at once, with no chance to release the camera.
  const dead = workers[0]!;
  const children = childProcesses(dead.pid ?? -1);
  dead.kill("SIGKILL");
  for (const p of children) process.kill(p.pid, "SIGKILL");
  await new Promise((r) => dead.once("exit", r));
  expect(statusOwners(await cam())).toEqual(["vigil-worker-mv-0"]);
  const at = Date.now();
  await relabel(PODS[1]);
  const o = await settledOn(1, at);
  expect(logs[1]!.join("")).toContain("took over the stream health report from another worker");
  expect(o.status.conditions.filter((x: Obj) => x.type === "StreamHealthy")).toHaveLength(1);
});
