// 1000 CameraDetections across 10 DetectorPools to all-Scheduled, on the real apiserver from hack/cluster.sh.
// Measures wall time, the operator's API requests (from the audit log, by its ServiceAccount) and peak RSS.
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { KubernetesObject } from "@kubernetes/client-node";
import { parse } from "yaml";
import { buildDist } from "../hack/build.ts";
import { GROUP, VERSION } from "../operator/api/meta.ts";
import { type Clients, loadKubeConfig, makeClients } from "../operator/kube/client.ts";
import { applyCrds } from "../operator/kube/crds.ts";
import {
  freshNamespace,
  type OperatorProc,
  operatorKubeconfig,
  ROOT,
  startOperator,
  waitFor,
} from "../test/setup/operator-env.ts";
import { workerLeases } from "../test/setup/worker-leases.ts";

const POOLS = Number(process.env.BENCH_POOLS ?? 10);
const CAMERAS = Number(process.env.BENCH_CAMERAS ?? 1000);
const CREATE_CONCURRENCY = 32;

const chartNodeOptions = (): string =>
  parse(readFileSync(join(ROOT, "charts", "vigil", "values.yaml"), "utf8")).operator?.nodeOptions ?? "";

const CLUSTER = join(ROOT, "hack", "cluster.sh");

export async function benchOperator() {
  // A control plane already up (a developer's, a test run's) is reused and left up; one this run starts, it stops,
  // as the tests' globalSetup does (VIGIL_KEEP_CLUSTER=1 keeps it).
  const wasUp = spawnSync("bash", [CLUSTER, "status"], { stdio: "ignore" }).status === 0;
  const out = execFileSync("bash", [CLUSTER, "up"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  try {
    return await bench(/export KUBECONFIG=(\S+)/.exec(out)?.[1] ?? "");
  } finally {
    if (!wasUp && process.env.VIGIL_KEEP_CLUSTER !== "1")
      execFileSync("bash", [CLUSTER, "down"], { stdio: ["ignore", "ignore", "inherit"] });
  }
}

async function bench(kubeconfig: string) {
  const c = makeClients(loadKubeConfig(kubeconfig));
  await applyCrds(c.custom);
  const ns = await freshNamespace(c, "bench");
  // The operator as deployed: the built dist/vigil.js, with the chart's NODE_OPTIONS unless told otherwise.
  await buildDist();
  const nodeOptions = process.env.BENCH_OPERATOR_NODE_OPTIONS ?? chartNodeOptions();
  const op = startOperator(await operatorKubeconfig(c, ns), ns, {
    LOG_LEVEL: "warn",
    ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}),
  });
  try {
    return await measure(c, ns, op, nodeOptions);
  } finally {
    await op.stop();
  }
}

async function measure(c: Clients, ns: string, op: OperatorProc, nodeOptions: string) {
  await op.port;
  await waitFor("operator ready", async () => (await fetch(`http://127.0.0.1:${await op.port}/readyz`)).ok, 30_000);
  const auditLog = join(ROOT, ".cache", "cluster", "audit.log");
  const perPool = Math.ceil(CAMERAS / POOLS);
  const api = { group: GROUP, version: VERSION, namespace: ns };

  const rss = async (field: string) =>
    Number(
      new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync(`/proc/${(await op.proc).pid}/status`, "utf8"))?.[1] ?? 0,
    ) / 1024;
  // Baseline: the idle operator, mostly @kubernetes/client-node's generated API (about 87 MB by itself).
  const idleRssMb = await rss("VmRSS");
  const auditOffset = statSync(auditLog).size;
  // Every worker's heartbeat, as running workers renew their Leases (cameras go only to those): with the admin's
  // credentials, so the operator's own requests are still told apart in the audit log.
  const leases = workerLeases(c, ns);
  for (let p = 0; p < POOLS; p++)
    for (let i = 0; i < Math.ceil(perPool / 10); i++) leases.start(`pool-${p}-worker-${i}`);
  const t0 = performance.now();
  for (let p = 0; p < POOLS; p++) {
    await c.custom.createNamespacedCustomObject({
      ...api,
      plural: "detectorpools",
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: "DetectorPool",
        metadata: { name: `pool-${p}` },
        spec: {
          model: { uri: "file:///models/yolov8n.onnx" },
          camerasPerWorker: 10,
          maxWorkers: Math.ceil(perPool / 10),
        },
      },
    });
  }
  let next = 0;
  await Promise.all(
    Array.from({ length: CREATE_CONCURRENCY }, async () => {
      while (next < CAMERAS) {
        const i = next++;
        await c.custom.createNamespacedCustomObject({
          ...api,
          plural: "cameradetections",
          body: {
            apiVersion: `${GROUP}/${VERSION}`,
            kind: "CameraDetection",
            metadata: { name: `cam-${i}` },
            spec: { source: { url: `rtsp://10.0.0.1/cam-${i}` }, poolRef: { name: `pool-${i % POOLS}` } },
          } as KubernetesObject,
        });
      }
    }),
  );
  const createdS = (performance.now() - t0) / 1000;
  await waitFor(
    "all cameras Scheduled",
    async () => {
      const list = (await c.custom.listNamespacedCustomObject({ ...api, plural: "cameradetections" })) as {
        items: { status?: { conditions?: { type: string; status: string }[] } }[];
      };
      const n = list.items.filter((x) =>
        x.status?.conditions?.some((k) => k.type === "Scheduled" && k.status === "True"),
      ).length;
      return n === CAMERAS;
    },
    300_000,
    250,
  );
  const seconds = (performance.now() - t0) / 1000;
  await leases.close();
  const peakRssMb =
    Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${(await op.proc).pid}/status`, "utf8"))?.[1] ?? 0) / 1024;
  // Let the audit log catch up with the last responses before counting.
  await new Promise((r) => setTimeout(r, 1000));
  const user = `system:serviceaccount:${ns}:vigil-operator`;
  const byVerb: Record<string, number> = {};
  for (const line of readFileSync(auditLog).subarray(auditOffset).toString().split("\n")) {
    if (!line.includes(user)) continue;
    const e = JSON.parse(line);
    if (e.user?.username !== user || e.stage !== "ResponseComplete") continue;
    byVerb[e.verb] = (byVerb[e.verb] ?? 0) + 1;
  }
  if (process.env.BENCH_HEAPSNAPSHOT) {
    (await op.proc).kill("SIGUSR2");
    await new Promise((r) => setTimeout(r, 8000));
  }
  const m = await op.metrics();
  if (process.env.BENCH_DEBUG)
    console.error(
      m
        .split("\n")
        .filter((l) => /^(nodejs_heap_size|nodejs_external|process_resident|nodejs_heap_space_size_used)/.test(l))
        .join("\n"),
    );
  return {
    bench: "operator",
    cameras: CAMERAS,
    pools: POOLS,
    seconds: Number(seconds.toFixed(2)),
    create_seconds: Number(createdS.toFixed(2)),
    api_requests: Object.values(byVerb).reduce((a, b) => a + b, 0),
    api_requests_by_verb: byVerb,
    operator_peak_rss_mb: Number(peakRssMb.toFixed(1)),
    operator_idle_rss_mb: Number(idleRssMb.toFixed(1)),
    operator_node_options: nodeOptions,
    goal: { seconds: 20, operator_peak_rss_mb: 150 },
  };
}
