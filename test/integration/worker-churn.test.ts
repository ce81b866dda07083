// Cameras added and removed at a high rate on a real worker (pod mode, real apiserver, real RTSP server): every
// stream the worker stopped must really be gone from the OS process table, including the ffmpeg it was still
// spawning when the camera went away.
import type { ChildProcess } from "node:child_process";
import { join } from "node:path";
import type { KubernetesObject } from "@kubernetes/client-node";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { Clients } from "../../operator/kube/client.ts";
import {
  admin,
  cameraManifest,
  createCr,
  freshNamespace,
  mergePatchCr,
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

const POD = "churn-0";
const CAMERAS = ["c0", "c1", "c2", "c3"];
let c: Clients;
let ns: string;
let redis: Service;
let rtsp: Service;
let worker: ChildProcess;
const logs: string[] = [];

const streams = () => childProcesses(worker.pid ?? -1).filter((p) => p.cmdline.includes(`127.0.0.1:${rtsp.port}`));
const label = (name: string, worker: string | null) =>
  mergePatchCr(c, "cameradetections", ns, name, { metadata: { labels: { "vigil.dev/worker": worker } } });

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "churn");
  redis = await startRedis();
  rtsp = await startRtsp(join(FIXTURES, "vtest.avi"));
  for (const name of CAMERAS)
    await createCr(c, "cameradetections", ns, {
      ...cameraManifest(name, "p", { source: { url: `rtsp://127.0.0.1:${rtsp.port}/cam1` } }),
      metadata: { name },
    } as KubernetesObject);
  const kubeconfig = await serviceAccountKubeconfig(c, ns, "vigil-worker", {
    namespace: "worker-namespace-rules.yaml",
  });
  ({ proc: worker } = await startWorker(
    [],
    redis.port,
    { KUBECONFIG: kubeconfig, POD_NAME: POD, POD_NAMESPACE: ns },
    logs,
  ));
  await waitFor("worker listening", async () => logs.join("").includes("worker listening"), 60_000);
}, 90_000);

afterAll(async () => {
  if (process.env.DEBUG_WORKER) console.log(logs.join(""));
  // Whatever the worker leaves behind outlives it (reparented): end it here, not on a shared machine's CPUs.
  const leftovers = worker ? childProcesses(worker.pid ?? -1) : [];
  worker?.kill("SIGTERM");
  for (const p of leftovers)
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {}
  await rtsp?.stop("SIGKILL");
  await redis?.stop();
});

it("leaves no ffmpeg behind when cameras are added, changed and removed in a tight loop", {
  timeout: 120_000,
}, async () => {
  // First every camera streams, so the loop below starts from a worker that runs ffmpeg.
  await Promise.all(CAMERAS.map((n) => label(n, POD)));
  await waitFor("one ffmpeg per camera", async () => streams().length === CAMERAS.length, 30_000);
  // Then the churn: removed, added, changed (a new spec restarts the stream), with no pause in between, so
  // stops land while the next ffmpeg is still being prepared and spawned.
  for (let round = 0; round < 12; round++) {
    await Promise.all(CAMERAS.map((n) => label(n, null)));
    await Promise.all(CAMERAS.map((n) => label(n, POD)));
    await Promise.all(
      CAMERAS.map((n) =>
        mergePatchCr(c, "cameradetections", ns, n, { spec: { detection: { targetFps: 5 + (round % 3) } } }),
      ),
    );
  }
  await Promise.all(CAMERAS.map((n) => label(n, null)));

  let left: { pid: number; cmdline: string }[] = [];
  await waitFor(
    "no ffmpeg left",
    async () => {
      left = streams();
      return left.length === 0;
    },
    20_000,
  ).catch((err) => {
    throw new Error(`${err}: ${left.length} ffmpeg still running: ${left.map((p) => p.pid).join(", ")}`);
  });
  // A child spawned after its camera went away would appear late: give it the stall timeout (5 s) to show up.
  await new Promise((r) => setTimeout(r, 6000));
  expect(streams()).toEqual([]);
  expect(worker.exitCode).toBeNull();
});
