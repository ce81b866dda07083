// The README's development path: `npx vigil operator` (bin/vigil.ts through npx, not dist) against a control plane that
// has nothing but Vigil's CRDs, with a kubeconfig whose context names the namespace to work in. No vigil-system:
// whether another test made one or not must not matter, so the Lease is looked for where it belongs.
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AppsV1Api, KubeConfig, type KubernetesObject, Watch } from "@kubernetes/client-node";
import { afterEach, beforeAll, expect, inject, it } from "vitest";
import { parse } from "yaml";
import { statefulSetName } from "../../operator/controllers/workload.ts";
import { apiError, type Clients, loadKubeConfig, makeClients, withSignal } from "../../operator/kube/client.ts";
import {
  admin,
  cameraManifest,
  createCr,
  exitOf,
  freePort,
  freshNamespace,
  getCr,
  ROOT,
  serviceAccountKubeconfig,
  waitFor,
} from "../setup/kube.ts";
import { workerLeases } from "../setup/worker-leases.ts";

type Obj = Record<string, any>;
let c: Clients;
let ns: string;
let kubeconfig: string;
const running: ChildProcess[] = [];

/** The admin kubeconfig, its context naming `namespace`, as a developer's would after `kubectl config set-context`. */
function kubeconfigFor(namespace: string): string {
  const kc = new KubeConfig();
  kc.loadFromFile(inject("kubeconfig"));
  const ctx = kc.getContextObject(kc.getCurrentContext());
  if (!ctx) throw new Error("admin kubeconfig has no current context");
  const out = new KubeConfig();
  out.loadFromOptions({
    clusters: kc.clusters,
    users: kc.users,
    contexts: [{ ...ctx, namespace }],
    currentContext: ctx.name,
  });
  const file = join(tmpdir(), `vigil-dev-${namespace}.kubeconfig`);
  writeFileSync(file, out.exportConfig(), { mode: 0o600 });
  return file;
}

/** `npx vigil operator` as a developer runs it; only the health port (and, on this shared control plane, the
 * namespace it watches) are set. Nothing names the lease namespace unless `env` does. */
function npxOperator(env: Record<string, string> = {}) {
  const { VIGIL_NAMESPACE: _n, POD_NAMESPACE: _p, POD_NAME: _m, ...inherited } = process.env;
  const child = spawn("npx", ["vigil", "operator"], {
    cwd: ROOT,
    env: {
      ...inherited,
      KUBECONFIG: kubeconfig,
      VIGIL_WATCH_NAMESPACE: ns,
      VIGIL_HEALTH_PORT: "0", // the OS's choice
      VIGIL_HEALTH_HOST: "127.0.0.1",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // its own process group: npx runs the command in a child of its own
  });
  running.push(child);
  let out = "";
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  child.stderr?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  const exited = exitOf(child).then((e) => e.code);
  return {
    /** What the operator printed, without npm's own warnings about this machine's npm configuration. */
    lines: () => out.split("\n").filter((l) => l && !l.startsWith("npm warn")),
    /** Ctrl-C, as a developer stops it: SIGINT to the whole process group. Resolves with the operator's exit code. */
    stop: async () => {
      if (child.pid && child.exitCode === null) process.kill(-child.pid, "SIGINT");
      await exited;
      const last = out.split("\n").findLast((l) => l.includes('"operator stopped"'));
      return last ? (JSON.parse(last) as { exitCode: number }).exitCode : undefined;
    },
  };
}

/** Every line is one pino record and no value in it spans lines: no HTTP dump, no stack trace. */
function expectOneLineRecords(lines: string[]): Obj[] {
  const records = lines.map((l) => {
    try {
      return JSON.parse(l) as Obj;
    } catch {
      throw new Error(`not a log record: ${l.slice(0, 300)}`);
    }
  });
  const multiLine = lines.filter((l) => /\\n|HTTP-Code|Headers:/.test(l));
  expect(multiLine).toEqual([]);
  return records;
}

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "dev");
  kubeconfig = kubeconfigFor(ns);
});
afterEach(async () => {
  for (const p of running.splice(0))
    if (p.pid && p.exitCode === null && p.signalCode === null) process.kill(-p.pid, "SIGKILL");
});

it("reconciles crds/samples in the context's namespace, with its lease there", { timeout: 120_000 }, async () => {
  // What the samples reference: the cameras' credentials and the alarm webhook.
  for (const [name, data] of [
    ["camera-entrance-credentials", { username: "viewer", password: "entrance-secret" }],
    ["nvr-credentials", { username: "viewer", password: "nvr-secret" }],
    [
      "alarm-webhook",
      { url: "https://hooks.example.internal/alarm", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" },
    ],
  ] as const)
    await c.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name }, stringData: data } });
  const samples = readdirSync(join(ROOT, "crds", "samples")).map(
    (f) => parse(readFileSync(join(ROOT, "crds", "samples", f), "utf8")) as KubernetesObject,
  );
  for (const s of samples) await createCr(c, s.kind === "DetectorPool" ? "detectorpools" : "cameradetections", ns, s);

  const op = await npxOperator({ LOG_LEVEL: "info" });
  const lease = await waitFor(
    "the operator's Lease in the context's namespace",
    async () => (await c.coordination.readNamespacedLease({ name: "vigil-operator", namespace: ns })).spec,
    60_000,
    200,
  );
  expect(lease.holderIdentity).toBeTruthy();
  const sts = await waitFor(
    "the pool's StatefulSet",
    async () =>
      await c.kc
        .makeApiClient(AppsV1Api)
        .readNamespacedStatefulSet({ name: statefulSetName("yolov8n"), namespace: ns }),
    60_000,
    200,
  );
  expect(sts.spec?.replicas).toBe(1); // two cameras, eight per worker
  // Its worker's heartbeat (no worker process here): cameras go only to a worker that runs.
  const leases = workerLeases(c, ns);
  leases.start(`${statefulSetName("yolov8n")}-0`);
  const pool = await waitFor("the pool's status", async () => {
    const p = await getCr<Obj>(c, "detectorpools", ns, "yolov8n");
    return p.status?.assignedCameras === 2 && p.status;
  });
  expect(pool).toMatchObject({ replicas: 1, capacity: 32, assignedCameras: 2, unassignedCameras: 0 });
  for (const name of ["entrance", "production-line"]) {
    const status = await waitFor(`${name}'s status`, async () => {
      const cam = await getCr<Obj>(c, "cameradetections", ns, name);
      return cam.status?.phase === "Scheduled" && cam.status;
    });
    expect(status).toMatchObject({ pool: "yolov8n", worker: `${statefulSetName("yolov8n")}-0` });
  }
  await leases.close();
  expect(await op.stop()).toBe(0);
  const records = expectOneLineRecords(op.lines());
  expect(records.filter((r) => r.level >= 40)).toEqual([]);
});

it("logs an API error as one line: code, reason and the apiserver's message", { timeout: 60_000 }, async () => {
  const missing = `${ns}-missing`;
  const op = await npxOperator({ VIGIL_NAMESPACE: missing });
  const failure = await waitFor(
    "a failed lease attempt in the log",
    async () => op.lines().find((l) => l.includes("lease acquire failed")),
    60_000,
    200,
  );
  expect(await op.stop()).toBe(0);
  expect(JSON.parse(failure)).toMatchObject({
    lease: `${missing}/vigil-operator`,
    err: `404 NotFound: namespaces "${missing}" not found`,
  });
  expectOneLineRecords(op.lines());
});

it("renders the apiserver's errors, a refused watch and a refused connection as one line each", async () => {
  const failure = (p: Promise<unknown>) =>
    p.then(
      () => "no error",
      (err) => apiError(err),
    );
  expect(await failure(c.coordination.readNamespacedLease({ name: "nope", namespace: ns }))).toBe(
    '404 NotFound: leases.coordination.k8s.io "nope" not found',
  );
  await c.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "twice" } } });
  expect(
    await failure(c.core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: "twice" } } })),
  ).toBe('409 AlreadyExists: configmaps "twice" already exists');
  const invalid = await failure(
    createCr(c, "cameradetections", ns, cameraManifest("bad", "p", { source: { url: "rtsp://u:p@10.0.0.1/s" } })),
  );
  expect(invalid).toMatch(/^422 Invalid: CameraDetection\.vigil\.dev "bad" is invalid: spec\.source\.url: /);
  expect(invalid).not.toContain("\n");

  // A ServiceAccount without any RBAC: its requests are forbidden, its watches refused.
  const nobody = loadKubeConfig(await serviceAccountKubeconfig(c, ns, "nobody", {}));
  expect(await failure(makeClients(nobody).core.listNamespacedPod({ namespace: ns }))).toBe(
    `403 Forbidden: pods is forbidden: User "system:serviceaccount:${ns}:nobody" cannot list resource "pods" in API group "" in the namespace "${ns}"`,
  );
  const refused = await new Promise<unknown>((resolve) => {
    void new Watch(nobody).watch(`/api/v1/namespaces/${ns}/pods`, {}, () => undefined, resolve);
  });
  expect(apiError(refused)).toBe("403 Forbidden");

  const closed = new KubeConfig();
  closed.loadFromOptions({
    clusters: [{ name: "closed", server: `https://127.0.0.1:${await freePort()}`, skipTLSVerify: true }],
    users: [{ name: "u", token: "t" }],
    contexts: [{ name: "closed", cluster: "closed", user: "u" }],
    currentContext: "closed",
  });
  expect(await failure(makeClients(closed).core.listNamespacedPod({ namespace: ns }))).toMatch(
    /^TypeError: fetch failed \(connect ECONNREFUSED 127\.0\.0\.1:\d+\)$/,
  );
  const late = c.core.listNamespacedPod({ namespace: ns }, withSignal(AbortSignal.timeout(0)));
  expect(await failure(late)).toBe("TimeoutError: The operation was aborted due to timeout");
});
