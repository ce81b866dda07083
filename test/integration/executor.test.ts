// Both executors behind one interface: the Kubernetes one is the operator, run in-process here against the
// real apiserver, and reports the workers its pools' status describes.
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { operatorEnv } from "../../operator/config.ts";
import { createKubernetesExecutor } from "../../operator/executor.ts";
import type { Clients } from "../../operator/kube/client.ts";
import {
  admin,
  cameraManifest,
  createCr,
  freshNamespace,
  poolManifest,
  readyWorkerPod,
  waitFor,
} from "../setup/kube.ts";
import { type WorkerLeases, workerLeases } from "../setup/worker-leases.ts";

let c: Clients;
let ns: string;
let executor: ReturnType<typeof createKubernetesExecutor>;
let leases: WorkerLeases;

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "ex");
  executor = createKubernetesExecutor(
    operatorEnv.parse({
      KUBECONFIG: inject("kubeconfig"),
      VIGIL_WATCH_NAMESPACE: ns,
      VIGIL_NAMESPACE: ns,
      VIGIL_HEALTH_PORT: "0",
      VIGIL_HEALTH_HOST: "127.0.0.1",
      LOG_LEVEL: "warn",
    }),
  );
  await executor.start();
  leases = workerLeases(c, ns);
});
afterAll(async () => {
  await leases?.close();
  await executor?.stop();
});

it("places cameras on pool workers and reports them as WorkerInfo", { timeout: 30_000 }, async () => {
  await createCr(c, "detectorpools", ns, poolManifest("p", { camerasPerWorker: 2, maxWorkers: 2 }));
  for (const name of ["a", "b", "c"]) await createCr(c, "cameradetections", ns, cameraManifest(name, "p"));
  const starting = await waitFor("two workers, starting", async () => {
    const w = executor.workers();
    return w.length === 2 && w;
  });
  expect(starting.map((w) => w.name).sort()).toEqual(["p-worker-0", "p-worker-1"]);
  // Not running yet (their Leases were never renewed): no cameras for them.
  expect(starting.every((w) => w.pool === "p" && w.state === "starting" && w.cameras.length === 0)).toBe(true);
  leases.start("p-worker-0", "p-worker-1");
  const workers = await waitFor("two running workers with three cameras", async () => {
    const w = executor.workers();
    return w.every((x) => x.state === "running") && w.reduce((n, x) => n + x.cameras.length, 0) === 3 && w;
  });
  expect(workers.every((w) => w.restarts === 0)).toBe(true);
  // What the kubelet reports on the pod is what the executor says: three restarts.
  await readyWorkerPod(c, ns, "p", "p-worker-0", { restartCount: 3 });
  const w0 = await waitFor("p-worker-0's restarts", async () => {
    const w = executor.workers().find((x) => x.name === "p-worker-0");
    return w?.restarts === 3 && w;
  });
  expect(w0.restarts).toBe(3);
  expect("pid" in w0).toBe(false); // a pod: no local process id to give
  expect(executor.workers().find((x) => x.name === "p-worker-1")).toMatchObject({ state: "running", restarts: 0 });
});
