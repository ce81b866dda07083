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

let c: Clients;
let ns: string;
let executor: ReturnType<typeof createKubernetesExecutor>;

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
});
afterAll(async () => {
  await executor?.stop();
});

it("places cameras on pool workers and reports them as WorkerInfo", { timeout: 30_000 }, async () => {
  await createCr(c, "detectorpools", ns, poolManifest("p", { camerasPerWorker: 2, maxWorkers: 2 }));
  for (const name of ["a", "b", "c"]) await createCr(c, "cameradetections", ns, cameraManifest(name, "p"));
  const workers = await waitFor("two workers with three cameras", async () => {
    const w = executor.workers();
    return w.length === 2 && w.reduce((n, x) => n + x.cameras.length, 0) === 3 && w;
  });
  expect(workers.map((w) => w.name).sort()).toEqual(["p-worker-0", "p-worker-1"]);
  expect(workers.every((w) => w.pool === "p" && w.state === "starting" && w.restarts === 0)).toBe(true);
  // What the kubelet reports on the pod is what the executor says: Ready, after three restarts.
  await readyWorkerPod(c, ns, "p", "p-worker-0", { restartCount: 3 });
  const w0 = await waitFor("p-worker-0 running", async () => {
    const w = executor.workers().find((x) => x.name === "p-worker-0");
    return w?.state === "running" && w;
  });
  expect(w0.restarts).toBe(3);
  expect("pid" in w0).toBe(false); // a pod: no local process id to give
  expect(executor.workers().find((x) => x.name === "p-worker-1")).toMatchObject({ state: "starting", restarts: 0 });
});
