// Helpers shared by integration tests and benchmarks (no vitest here): namespaces, least-privilege
// operator credentials, the operator as a real child process, metric parsing.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  KubeConfig,
  type KubernetesObject,
  PatchStrategy,
  RbacAuthorizationV1Api,
  setHeaderOptions,
} from "@kubernetes/client-node";
import { parse, parseAllDocuments } from "yaml";
import { VIGIL_JS } from "../../hack/build.ts";
import { GROUP, VERSION } from "../../operator/api/meta.ts";
import type { Clients } from "../../operator/kube/client.ts";

export const ROOT = join(import.meta.dirname, "..", "..");

export async function freshNamespace(c: Clients, prefix = "t"): Promise<string> {
  const name = `${prefix}-${randomBytes(4).toString("hex")}`;
  await c.core.createNamespace({ body: { metadata: { name } } });
  return name;
}

/**
 * How a child ended, once what it wrote has been read: on 'close' (its stdio drained), which Node emits after
 * 'exit', when a test may still be missing its last log lines; or 2 s after 'exit' when a process it started
 * still holds its pipes open.
 */
export function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => {
    child.once("exit", (code, signal) => {
      const done = () => resolve({ code, signal });
      const t = setTimeout(done, 2000);
      child.once("close", () => {
        clearTimeout(t);
        done();
      });
    });
  });
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const rules = (file: string) => parse(readFileSync(join(ROOT, "charts", "vigil", "files", file), "utf8"));

/**
 * A ServiceAccount bound to exactly the chart's RBAC rules (files/*.yaml), and a kubeconfig carrying its token:
 * the process under test runs with least privilege, so a missing permission fails a test.
 */
export async function serviceAccountKubeconfig(
  c: Clients,
  namespace: string,
  sa: string,
  files: { cluster?: string; namespace?: string },
  /** Bind the token to this pod, as the kubelet's projected tokens are: the apiserver then knows the pod's name. */
  pod?: { name: string; uid: string },
): Promise<string> {
  const rbac = c.kc.makeApiClient(RbacAuthorizationV1Api);
  // Idempotent: several processes (worker pods) may run as one ServiceAccount, each with its own token.
  const once = (p: Promise<unknown>) =>
    p.catch((err) => {
      if ((err as { code?: number }).code !== 409) throw err;
    });
  await once(c.core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: sa } } }));
  const subjects = [{ kind: "ServiceAccount", name: sa, namespace }];
  if (files.cluster) {
    const role = `${sa}-${namespace}`;
    await once(rbac.createClusterRole({ body: { metadata: { name: role }, rules: rules(files.cluster) } }));
    await once(
      rbac.createClusterRoleBinding({
        body: {
          metadata: { name: role },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
          subjects,
        },
      }),
    );
  }
  if (files.namespace) {
    await once(
      rbac.createNamespacedRole({ namespace, body: { metadata: { name: sa }, rules: rules(files.namespace) } }),
    );
    await once(
      rbac.createNamespacedRoleBinding({
        namespace,
        body: {
          metadata: { name: sa },
          roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: sa },
          subjects,
        },
      }),
    );
  }
  const tr = await c.core.createNamespacedServiceAccountToken({
    name: sa,
    namespace,
    body: {
      spec: {
        audiences: [],
        expirationSeconds: 3600,
        ...(pod ? { boundObjectRef: { apiVersion: "v1", kind: "Pod", name: pod.name, uid: pod.uid } } : {}),
      },
    },
  });
  const kc = new KubeConfig();
  const cluster = c.kc.getCurrentCluster();
  if (!cluster) throw new Error("admin kubeconfig has no cluster");
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: sa, token: tr.status?.token }],
    contexts: [{ name: sa, cluster: cluster.name, user: sa }],
    currentContext: sa,
  });
  const file = join(tmpdir(), `vigil-${sa}-${namespace}${pod ? `-${pod.name}` : ""}.kubeconfig`);
  writeFileSync(file, kc.exportConfig(), { mode: 0o600 });
  return file;
}

export const operatorKubeconfig = (c: Clients, namespace: string, sa = "vigil-operator") =>
  serviceAccountKubeconfig(c, namespace, sa, {
    cluster: "operator-cluster-rules.yaml",
    namespace: "operator-namespace-rules.yaml",
  });

export type OperatorProc = {
  proc: Promise<ChildProcess>;
  port: Promise<number>;
  logs: string[];
  metrics: () => Promise<string>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
};

/**
 * A loopback port nothing listens on right now (bind 0, read, release): for a client that must find no server
 * there, and for servers that cannot be asked to bind port 0 themselves: redis-server (which then retries if it
 * was taken meanwhile), and a Node inspector that SIGUSR1 opens later at a port the test must know beforehand.
 * Servers that can bind 0 do, and say which port they got.
 */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * `vigil operator` as a real process, watching one namespace: dist/vigil.js, what the image runs (hack/build.ts;
 * the integration tests' globalSetup and the bench build it first).
 */
export function startOperator(kubeconfig: string, namespace: string, env: Record<string, string> = {}): OperatorProc {
  const logs: string[] = [];
  const child = spawn(process.execPath, [VIGIL_JS, "operator"], {
    env: {
      ...process.env,
      KUBECONFIG: kubeconfig,
      VIGIL_WATCH_NAMESPACE: namespace,
      VIGIL_NAMESPACE: namespace,
      VIGIL_HEALTH_PORT: "0", // the OS's choice, read back from the "health server listening" line
      VIGIL_HEALTH_HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const onData = (buf: Buffer) => logs.push(...buf.toString().split("\n").filter(Boolean));
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = exitOf(child).then((e) => e.code);
  // Ready to use once the health server answers. Its port is read from the OS's socket table, not from a log line
  // that a quieter LOG_LEVEL (the bench's warn) would leave out.
  const listening = waitFor(
    "operator health port",
    async () => (child.exitCode === null ? listeningPorts(child.pid ?? -1)[0] : Promise.reject(new Error("exited"))),
    30_000,
    50,
  ).then(async (p) => {
    await waitFor("operator health server", async () => (await fetch(`http://127.0.0.1:${p}/healthz`)).ok, 30_000, 50);
    return p;
  });
  listening.catch(() => undefined); // a test that expects the process to fail need not await it
  return {
    proc: Promise.resolve(child),
    port: listening,
    logs,
    metrics: async () => (await fetch(`http://127.0.0.1:${await listening}/metrics`)).text(),
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** A metric's value summed over label sets matching `labels` (substring match on the label text). */
export function metricValue(text: string, name: string, labels = ""): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (labels && !line.includes(labels)) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/**
 * A worker pod of a pool, reported Ready the way a kubelet would (no kubelet here), through the status subresource,
 * with the worker container's restartCount.
 */
export async function readyWorkerPod(
  c: Clients,
  namespace: string,
  pool: string,
  name: string,
  { restartCount = 0, serviceAccountName }: { restartCount?: number; serviceAccountName?: string } = {},
) {
  const pod = await c.core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name, labels: { "app.kubernetes.io/name": "vigil-worker", "vigil.dev/pool": pool } },
      spec: { ...(serviceAccountName ? { serviceAccountName } : {}), containers: [{ name: "worker", image: "vigil" }] },
    },
  });
  await c.core.patchNamespacedPodStatus(
    {
      name,
      namespace,
      body: {
        status: {
          conditions: [{ type: "Ready", status: "True", lastTransitionTime: new Date() }],
          containerStatuses: [
            { name: "worker", image: "vigil", imageID: "", ready: true, restartCount, started: true },
          ],
        },
      },
    },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
  return { name, uid: pod.metadata?.uid ?? "" };
}

export const crPath = (plural: string, namespace: string, name = "") =>
  `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${plural}${name ? `/${name}` : ""}`;

/** A minimal DetectorPool: the model path need not exist (no worker runs it in these tests). */
export const poolManifest = (name: string, spec: Record<string, unknown> = {}) =>
  ({
    apiVersion: `${GROUP}/${VERSION}`,
    kind: "DetectorPool",
    metadata: { name },
    spec: { model: { uri: "file:///m.onnx" }, ...spec },
  }) as KubernetesObject;

/** A minimal CameraDetection on a pool. */
export const cameraManifest = (name: string, pool: string, spec: Record<string, unknown> = {}) =>
  ({
    apiVersion: `${GROUP}/${VERSION}`,
    kind: "CameraDetection",
    metadata: { name },
    spec: { source: { url: `rtsp://127.0.0.1/${name}` }, poolRef: { name: pool }, ...spec },
  }) as KubernetesObject;

export async function createCr(
  c: Clients,
  plural: string,
  namespace: string,
  body: KubernetesObject,
): Promise<unknown> {
  return c.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, body });
}

export async function getCr<T = Record<string, unknown>>(
  c: Clients,
  plural: string,
  namespace: string,
  name: string,
): Promise<T> {
  return (await c.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural, name })) as T;
}

/**
 * The chart's ValidatingAdmissionPolicy for worker tokens (files/worker-token-policy.yaml), for the worker
 * ServiceAccount the tests use; the globalSetup installs it once per run, as the chart would.
 */
export function workerTokenPolicy(
  name = "vigil-test-worker-tokens",
  serviceAccount = "vigil-worker",
): KubernetesObject[] {
  const text = readFileSync(join(ROOT, "charts", "vigil", "files", "worker-token-policy.yaml"), "utf8")
    .replaceAll("__WORKER_SA__", serviceAccount)
    .replaceAll("__NAME__", name);
  return parseAllDocuments(text).map((d) => d.toJS() as KubernetesObject);
}

/** A JSON merge patch of a custom resource (`null` deletes a key), as the operator labels cameras. */
export async function mergePatchCr(
  c: Clients,
  plural: string,
  namespace: string,
  name: string,
  body: Record<string, unknown>,
): Promise<unknown> {
  return c.custom.patchNamespacedCustomObject(
    { group: GROUP, version: VERSION, namespace, plural, name, body },
    setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
  );
}

/**
 * The port a child process, started on port 0, says it listens on: from its pino line `msg` (`"port":N`; `key`
 * names another field, e.g. the gateway's healthPort). `text` is its output so far. Rejects if it exits first.
 */
export function listeningPort(proc: ChildProcess, text: () => string, msg: string, key = "port"): Promise<number> {
  const find = () => {
    for (const line of text().split("\n")) {
      if (!line.includes(`"msg":"${msg}"`)) continue;
      const m = new RegExp(`"${key}":(\\d+)`).exec(line);
      if (m) return Number(m[1]);
    }
    return undefined;
  };
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      clearInterval(timer);
      proc.off("exit", onExit);
    };
    const onExit = (code: number | null) => {
      cleanup();
      reject(new Error(`exited (${code}) before "${msg}": ${text().slice(-1500)}`));
    };
    // Polled: the caller's own data listeners fill `text`, in whatever order they run.
    const timer = setInterval(() => {
      const port = find();
      if (port === undefined) return;
      cleanup();
      resolve(port);
    }, 20);
    proc.once("exit", onExit);
  });
}

/** The TCP ports process `pid` listens on, from /proc: its socket inodes matched against the kernel's tables. */
export function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m?.[1]) inodes.add(m[1]);
      } catch {}
    }
  } catch {
    return [];
  }
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let lines: string[] = [];
    try {
      lines = readFileSync(table, "utf8").split("\n").slice(1);
    } catch {}
    for (const line of lines) {
      const f = line.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT, st 0A is LISTEN, inode is the tenth field.
      if (f[3] === "0A" && f[9] && inodes.has(f[9])) ports.push(Number.parseInt(f[1]?.split(":")[1] ?? "0", 16));
    }
  }
  return ports;
}
