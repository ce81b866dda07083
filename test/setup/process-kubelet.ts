// The process kubelet: test infrastructure standing in for a kubelet and a container runtime on the kwok nodes.
// kwok marks pods Running and gives them IPs, but runs nothing; this watches every pod bound to a node and, for
// the containers of Vigil's image, runs the real process (`node dist/vigil.js <args>`) as the pod would: its env and
// envFrom resolved, its volumes bind-mounted at their mountPaths in a private mount namespace, a ServiceAccount
// token from the TokenRequest API, the pod's user, restarts with the kubelet's backoff, probes, status on
// pods/status. What it is not: no image is pulled or unpacked (the repo's dist/ and node_modules are the image), no
// network namespace (pods bind their pod IP, a loopback address that works here), no cgroups or resource limits, no
// Service network (KUBERNETES_SERVICE_HOST is the apiserver's 127.0.0.1). See README, "The process kubelet".
//
//   library: const k = await startProcessKubelet({ kubeconfig }); … k.killNode("gpu-1"); … await k.stop();
//   CLI:     npx node test/setup/process-kubelet.ts [--kubeconfig FILE] [--namespace NS] [--state-dir DIR]
//            [--image-repository REPO]   (KUBECONFIG, else .cache/cluster-full/kubeconfig; stops on SIGINT/SIGTERM)
import { readFileSync, rmSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { V1Pod } from "@kubernetes/client-node";
import pino, { type Logger } from "pino";
import { loadKubeConfig, makeClients } from "../../operator/kube/client.ts";
import { Informer, stripManagedFields } from "../../operator/kube/informer.ts";
import { type BackoffPolicy, KUBELET_BACKOFF } from "./kubelet/backoff.ts";
import type { LogTail } from "./kubelet/container.ts";
import { isImageOf } from "./kubelet/image.ts";
import { PodRunner } from "./kubelet/pod-runner.ts";

const ROOT = join(import.meta.dirname, "..", "..");
export const VIGIL_IMAGE_REPOSITORY = "ghcr.io/vigil-dev/vigil";

export type ProcessKubeletOptions = {
  kubeconfig: string;
  /** The checkout whose dist/vigil.js and node_modules stand for the image (default: this one). */
  repoRoot?: string;
  imageRepository?: string;
  /**
   * Only this namespace's pods (default: all). Two kubelets serving the same pods would run each twice: a test
   * that starts its own kubelet on a shared cluster keeps to its namespace.
   */
  namespace?: string;
  /** Volumes, logs and the kubelet's own log (default <repoRoot>/.cache/process-kubelet/<namespace|all>; emptied at start). */
  stateDir?: string;
  backoff?: Partial<BackoffPolicy>;
  /** The longest SIGTERM→SIGKILL wait, whatever the pod asks (default 30 s). */
  maxGraceSeconds?: number;
  log?: Logger;
};

export type ProcessInfo = {
  pod: string;
  namespace: string;
  node: string;
  pid: number;
  container: string;
  uid: string;
  podIP: string | undefined;
};

export type ProcessKubelet = {
  stop(): Promise<void>;
  /** SIGKILL every process on that node and stop serving it (no restarts, no status writes), as a powered-off node. */
  killNode(name: string): Promise<void>;
  /** Power the node on again: its pods that still exist are started anew. */
  startNode(name: string): void;
  processes(): ProcessInfo[];
  /** The tail of a pod's output (one container's, or all of them, each line prefixed by its container's name). */
  logs(namespace: string, pod: string, container?: string): string;
  stateDir: string;
};

export async function startProcessKubelet(o: ProcessKubeletOptions): Promise<ProcessKubelet> {
  if (process.getuid?.() !== 0)
    throw new Error("the process kubelet must run as root (unshare --mount, mount --bind, setpriv to the pod's user)");
  const repoRoot = o.repoRoot ?? ROOT;
  const stateDir = o.stateDir ?? join(repoRoot, ".cache", "process-kubelet", o.namespace ?? "all");
  const vigilJs = join(repoRoot, "dist", "vigil.js");
  try {
    readFileSync(vigilJs);
  } catch {
    throw new Error(`${vigilJs} is missing: run npm run build first (the process kubelet runs what the image ships)`);
  }
  // A new cluster each run: volumes, claims and logs of an earlier run would only confuse.
  rmSync(stateDir, { recursive: true, force: true });
  // 0700: Secret files and tokens live below; the pods reach their volumes through the bind mounts, not this path.
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const log =
    o.log ??
    pino({ level: "info", base: { component: "process-kubelet" } }, pino.destination(join(stateDir, "kubelet.log")));

  const kc = loadKubeConfig(o.kubeconfig);
  const clients = makeClients(kc);
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error(`${o.kubeconfig}: no current cluster`);
  const caPem = cluster.caData
    ? Buffer.from(cluster.caData, "base64")
    : cluster.caFile
      ? readFileSync(cluster.caFile)
      : Buffer.alloc(0);
  const apiserverPort = new URL(cluster.server).port || "443";

  const runners = new Map<string, PodRunner>();
  const deadNodes = new Set<string>();
  const tails = new Map<string, Map<string, LogTail>>();
  const imageRepository = o.imageRepository ?? VIGIL_IMAGE_REPOSITORY;
  let stopped = false;

  const deps = {
    core: clients.core,
    repoRoot,
    stateDir,
    imageRepository,
    nodeBinary: process.execPath,
    apiserverPort,
    caPem,
    backoff: { ...KUBELET_BACKOFF, ...o.backoff },
    maxGraceSeconds: o.maxGraceSeconds ?? 30,
    configRetryMs: 5000,
    log,
    tails,
    ipFree: async (ip: string, uid: string) => {
      const holders = [...runners.values()].filter((r) => r.uid !== uid && r.podIP === ip && r.terminating);
      await Promise.all(holders.map((r) => r.done()));
    },
  };

  const ours = (pod: V1Pod) =>
    !!pod.spec?.nodeName &&
    !deadNodes.has(pod.spec.nodeName) &&
    (pod.spec.containers ?? []).some((c) => isImageOf(c.image, imageRepository));

  const forget = (r: PodRunner) =>
    void r.done().then(() => {
      if (runners.get(r.uid) === r) runners.delete(r.uid);
    });

  const sync = (pod: V1Pod) => {
    if (stopped || !ours(pod)) return;
    const uid = pod.metadata?.uid ?? "";
    let r = runners.get(uid);
    if (!r) {
      const phase = pod.status?.phase;
      if (pod.metadata?.deletionTimestamp || phase === "Succeeded" || phase === "Failed") return;
      r = new PodRunner(pod, deps);
      runners.set(uid, r);
    }
    r.update(pod);
    if (pod.metadata?.deletionTimestamp) forget(r);
  };

  const informer = new Informer<V1Pod>(kc, {
    path: o.namespace ? `/api/v1/namespaces/${o.namespace}/pods` : "/api/v1/pods",
    list: () =>
      o.namespace ? clients.core.listNamespacedPod({ namespace: o.namespace }) : clients.core.listPodForAllNamespaces(),
    transform: stripManagedFields,
    relistMs: 5 * 60_000,
    log,
  });
  informer.on({
    add: sync,
    update: sync,
    delete: (pod) => {
      const r = runners.get(pod.metadata?.uid ?? "");
      if (!r) return;
      void r.terminate(r.graceSeconds(pod));
      forget(r);
    },
  });
  informer.start();
  await informer.waitForSync();
  log.info({ stateDir, imageRepository, apiserverPort, namespace: o.namespace ?? "(all)" }, "process kubelet started");

  // Children are in their own process groups; if this process exits without stop() (a test runner tearing down),
  // they would outlive it. The kernel's parent-death signal is no help here: measured on these VMs, a
  // PR_SET_PDEATHSIG child survived its parent's SIGKILL.
  const killAll = () => {
    for (const r of runners.values()) for (const p of r.processes()) safeKill(p.pid);
  };
  process.once("exit", killAll);

  return {
    stateDir,
    async stop() {
      if (stopped) return;
      stopped = true;
      informer.stop();
      await Promise.all([...runners.values()].map((r) => r.kill()));
      runners.clear();
      process.removeListener("exit", killAll);
      log.info("process kubelet stopped");
    },
    async killNode(name) {
      deadNodes.add(name);
      const on = [...runners.values()].filter((r) => r.node === name);
      await Promise.all(on.map((r) => r.kill()));
      for (const r of on) runners.delete(r.uid);
      log.info({ node: name, pods: on.length }, "node powered off");
    },
    startNode(name) {
      deadNodes.delete(name);
      for (const pod of informer.list((p) => p.spec?.nodeName === name)) sync(pod);
      log.info({ node: name }, "node powered on");
    },
    processes() {
      return [...runners.values()].flatMap((r) =>
        r.processes().map((p) => ({
          pod: r.name,
          namespace: r.namespace,
          node: r.node,
          pid: p.pid,
          container: p.container,
          uid: r.uid,
          podIP: r.podIP,
        })),
      );
    },
    logs(namespace, pod, container) {
      const byContainer = tails.get(`${namespace}/${pod}`);
      if (!byContainer) return "";
      if (container) return byContainer.get(container)?.text() ?? "";
      if (byContainer.size === 1) return [...byContainer.values()][0]?.text() ?? "";
      return [...byContainer]
        .flatMap(([name, t]) =>
          t
            .text()
            .split("\n")
            .filter(Boolean)
            .map((l) => `[${name}] ${l}`),
        )
        .join("\n");
    },
  };
}

function safeKill(pid: number): void {
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      kubeconfig: { type: "string" },
      "state-dir": { type: "string" },
      "image-repository": { type: "string" },
      namespace: { type: "string" },
    },
  });
  const kubeconfig = values.kubeconfig ?? process.env.KUBECONFIG ?? join(ROOT, ".cache", "cluster-full", "kubeconfig");
  const log = pino({ level: process.env.LOG_LEVEL ?? "info", base: { component: "process-kubelet" } }, process.stderr);
  const k = await startProcessKubelet({
    kubeconfig,
    log,
    ...(values["state-dir"] ? { stateDir: values["state-dir"] } : {}),
    ...(values["image-repository"] ? { imageRepository: values["image-repository"] } : {}),
    ...(values.namespace ? { namespace: values.namespace } : {}),
  });
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    for (const s of ["SIGINT", "SIGTERM"] as const) process.once(s, () => resolve(s));
  });
  log.info({ signal }, "stopping");
  await k.stop();
}
