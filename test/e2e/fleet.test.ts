// Vigil installed with `helm install` on the simulated GPU cluster (kube-scheduler, kube-controller-manager, one kwok
// per node; hack/cluster.sh up --full), every pod of Vigil's image run as a real process by the process kubelet:
// the operator (2 replicas), the gateway and the GPU workers running YOLOv8n on vtest.avi over RTSP. Then the
// failures the issue lists, each timed: a worker killed, no room, the operator leader killed, an upgrade, and a node
// lost (the kwok chaos stage, and its kwok killed). The printed times are the goals.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { V1Pod } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { GROUP, VERSION } from "../../operator/api/meta.ts";
import {
  applyCameras,
  CHART,
  cameraManifest,
  cluster,
  type Fleet,
  helm,
  isReady,
  poolManifest,
  runningPods,
  startFleet,
  watchCameras,
} from "../setup/fleet.ts";
import { createCr, getCr, waitFor } from "../setup/operator-env.ts";
import {
  kubernetesTargets,
  monitorScrapeConfig,
  type Obj,
  type Prometheus,
  startPrometheus,
  writeRulesFile,
  writeTargets,
} from "../setup/prometheus.ts";

type Camera = {
  metadata: { labels?: Record<string, string> };
  status?: { worker?: string; conditions?: { type: string; status: string; reason?: string; message?: string }[] };
};

const CAMERAS = 6;
const POOL = "gpu";
const log = (msg: string) => process.stdout.write(`[fleet] ${msg}\n`);

let f: Fleet;
let watch: ReturnType<typeof watchCameras>;
const names = Array.from({ length: CAMERAS }, (_, i) => `cam-${i}`);

const camera = (name: string) => getCr<Camera>(f.c, "cameradetections", f.namespace, name);
const workerOf = async (name: string) => (await camera(name)).status?.worker;
const workerPods = () => runningPods(f.c, f.namespace, `vigil.dev/pool=${POOL}`);
const nodeOf = async (pod: string) =>
  (await f.c.core.readNamespacedPod({ name: pod, namespace: f.namespace })).spec?.nodeName;

/** Waits until every camera in `which` streams on a worker other than `not` (after `since`); returns the seconds. */
async function allStreaming(which: string[], since: number, timeoutMs: number, not?: (name: string) => string) {
  const times = await waitFor(
    `cameras ${which.join(", ")} streaming`,
    async () => {
      const t = which.map((n) => watch.firstAfter(n, since, not?.(n))?.at);
      return t.every((x) => x !== undefined) ? t.map((x) => ((x as number) - since) / 1000) : undefined;
    },
    timeoutMs,
    250,
  );
  return Object.fromEntries(which.map((n, i) => [n, times[i] as number]));
}

let prom: Prometheus | undefined;
let discovery: NodeJS.Timeout | undefined;
const rulesDir = mkdtempSync(join(tmpdir(), "vigil-fleet-rules-"));

beforeAll(async () => {
  f = await startFleet({ kubeconfig: inject("fullKubeconfig"), monitoring: true });
  watch = watchCameras(f);
}, 300_000);

// What the cases changed on the cluster the e2e files share, undone in afterAll even when a case fails: the next file
// counts on three free GPU nodes (test/e2e/full-cluster.test.ts found the fleet's pod Terminating on a dead node).
let addedNode: string | undefined;
let chaosNode: string | undefined;
let killedNode: string | undefined;

afterAll(async () => {
  if (chaosNode) await cluster("node", "chaos", chaosNode, "off");
  // Back up, so that its pods can terminate.
  if (killedNode) await cluster("node", "start", killedNode);
  clearInterval(discovery);
  await prom?.stop();
  rmSync(rulesDir, { recursive: true, force: true });
  await watch?.stop();
  await f?.stop();
  if (addedNode) await cluster("node", "delete", addedNode);
});

describe("Vigil on the simulated GPU cluster", () => {
  const before = new Map<string, string | undefined>();

  it("installs: the operator (2 replicas) and the gateway run as processes under the process kubelet", async () => {
    const pods = await waitFor(
      "operator and gateway pods ready",
      async () => {
        const ops = (await runningPods(f.c, f.namespace, "app.kubernetes.io/component=operator")).filter(isReady);
        const gws = (await runningPods(f.c, f.namespace, "app.kubernetes.io/component=gateway")).filter(isReady);
        return ops.length === 2 && gws.length >= 1 ? [...ops, ...gws] : undefined;
      },
      120_000,
      500,
    );
    const procs = f.kubelet.processes();
    for (const p of pods)
      expect(
        procs.some((x) => x.pod === p.metadata?.name),
        p.metadata?.name,
      ).toBe(true);
    expect(await f.api<{ cameras: unknown[] }>("/api/v1/cameras")).toEqual({ cameras: [] });
  });

  it(`runs: a DetectorPool and ${CAMERAS} RTSP cameras all stream; stats flow through the gateway`, async () => {
    await createCr(
      f.c,
      "detectorpools",
      f.namespace,
      poolManifest(POOL, { camerasPerWorker: 3, minWorkers: 3, maxWorkers: 3 }),
    );
    const at = await applyCameras(f, POOL, names);
    const times = await allStreaming(names, at, 240_000);
    log(`apply → first stats per camera (s): ${JSON.stringify(times)}`);
    for (const n of names) before.set(n, await workerOf(n));
    // Placed on workers that run (the first to be ready may take a full share), none over camerasPerWorker.
    const load = new Map<string, number>();
    for (const w of before.values()) load.set(w ?? "", (load.get(w ?? "") ?? 0) + 1);
    expect(load.has("")).toBe(false);
    for (const [w, n] of load) expect(n, w).toBeLessThanOrEqual(3);
    const pool = await getCr<{ status: { readyWorkers: number } }>(f.c, "detectorpools", f.namespace, POOL);
    expect(pool.status.readyWorkers).toBe(3);
    // Three GPU nodes, one GPU each: the scheduler put one worker on each.
    const nodes = new Set(await Promise.all((await workerPods()).map((p) => p.spec?.nodeName)));
    expect(nodes.size).toBe(3);
  }, 300_000);

  it("monitoring: a Prometheus set up from the chart's ServiceMonitors, PodMonitor and PrometheusRule scrapes every process", async () => {
    const list = async (plural: string) =>
      (
        (await f.c.custom.listNamespacedCustomObject({
          group: "monitoring.coreos.com",
          version: "v1",
          namespace: f.namespace,
          plural,
        })) as { items: Obj[] }
      ).items;
    const monitors = [...(await list("servicemonitors")), ...(await list("podmonitors"))];
    expect(monitors.map((m) => m.metadata.name).sort()).toEqual(
      ["gateway", "operator", "worker"].map((c) => `${f.release}-${c}`),
    );
    // Kubernetes discovery, as Prometheus would do it, every second into each monitor's targets file.
    const files = monitors.map((_, i) => join(rulesDir, `targets-${i}.json`));
    const discover = async () => {
      for (const [i, m] of monitors.entries()) writeTargets(files[i]!, await kubernetesTargets(f.c.core, m));
    };
    await discover();
    discovery = setInterval(() => void discover().catch(() => undefined), 1000);
    prom = await startPrometheus({
      jobs: [],
      ruleFiles: [writeRulesFile(await list("prometheusrules"), rulesDir)],
      scrapeConfigs: monitors.map((m, i) => monitorScrapeConfig(m, files[i]!, 1)),
    });
    const at = Date.now();
    // Every process of the release, found through the Services' endpoints and the pods, as its job: 2 operator
    // replicas, 2 gateways, 3 workers, all up.
    const up = await waitFor(
      "every Vigil process scraped",
      async () => {
        const series = await prom!.query(`up{namespace="${f.namespace}"}`);
        const byJob = new Map<string, number>();
        for (const s of series) if (s.value[1] === "1") byJob.set(s.metric.job, (byJob.get(s.metric.job) ?? 0) + 1);
        const want = { "vigil-operator": 2, "vigil-gateway": 2, "vigil-worker": 3 };
        return Object.entries(want).every(([j, n]) => byJob.get(j) === n) ? series : undefined;
      },
      60_000,
      500,
    );
    log(`Prometheus scraping ${up.length} targets ${((Date.now() - at) / 1000).toFixed(1)} s after it started`);
    expect(up.every((s) => s.value[1] === "1")).toBe(true);
    // The leader reports the pool; every camera's last frame is fresh, per worker pod and pool.
    const ready = await waitFor(
      "the pool's Ready workers in Prometheus",
      async () => (await prom!.query(`max(vigil_pool_workers{namespace="${f.namespace}",phase="Ready"})`))[0]?.value[1],
      30_000,
      500,
    );
    expect(Number(ready)).toBe(3);
    const frames = await prom.query(
      `time() - vigil_stream_last_frame_timestamp_seconds{job="vigil-worker",namespace="${f.namespace}"}`,
    );
    expect(frames.map((s) => s.metric.camera).sort()).toEqual(names.map((n) => `${f.namespace}/${n}`).sort());
    for (const s of frames) expect(Number(s.value[1]), s.metric.camera).toBeLessThan(10);
    expect(new Set(frames.map((s) => s.metric.pool))).toEqual(new Set([`${f.namespace}/${POOL}`]));
    // The chart's rules load and evaluate, and none fires while everything streams.
    const rules = await waitFor(
      "the chart's rules evaluated",
      async () => {
        const res = await fetch(`${prom!.url}/api/v1/rules`);
        const groups = ((await res.json()) as { data: { groups: { rules: Obj[] }[] } }).data.groups;
        const all = groups.flatMap((g) => g.rules);
        return all.length > 0 && all.every((r) => r.lastEvaluation && !r.lastEvaluation.startsWith("0001"))
          ? all
          : undefined;
      },
      30_000,
      500,
    );
    expect(rules.filter((r) => r.health !== "ok").map((r) => `${r.name}: ${r.lastError}`)).toEqual([]);
    expect((await prom.alerts()).filter((a) => a.labels.namespace === f.namespace)).toEqual([]);
  }, 120_000);

  it("no room: a pool wanting a worker with no GPU free says WorkerUnschedulable; a new GPU node schedules it", async () => {
    await createCr(f.c, "detectorpools", f.namespace, poolManifest("extra", { camerasPerWorker: 1, maxWorkers: 1 }));
    const at = Date.now();
    await createCr(
      f.c,
      "cameradetections",
      f.namespace,
      cameraManifest("extra-cam", "extra", `rtsp://127.0.0.1:${f.rtsp[0]?.port}/cam1`),
    );
    const cond = await waitFor(
      "extra-cam Scheduled=False WorkerUnschedulable",
      async () => {
        const c = (await camera("extra-cam")).status?.conditions?.find((x) => x.type === "Scheduled");
        return c?.reason === "WorkerUnschedulable" ? c : undefined;
      },
      60_000,
      250,
    );
    expect(cond.status).toBe("False");
    expect(cond.message).toMatch(/extra-worker-0/);
    const events = await f.c.core.listNamespacedEvent({ namespace: f.namespace });
    const ev = events.items.find((e) => e.reason === "WorkerUnschedulable");
    expect(ev?.message).toMatch(/extra-worker-0/);
    expect(ev?.message).toMatch(/nvidia\.com\/gpu/); // the scheduler's own reason, e.g. "Insufficient nvidia.com/gpu"
    log(`WorkerUnschedulable after ${((Date.now() - at) / 1000).toFixed(1)} s: ${cond.message}`);

    const added = Date.now();
    addedNode = "gpu-3";
    await cluster("node", "add", "gpu-3", "--gpus", "1");
    f.cameraNames.push("extra-cam");
    const t = await allStreaming(["extra-cam"], added, 120_000);
    log(`gpu-3 added → extra-cam streaming in ${t["extra-cam"]} s`);
    expect(await nodeOf("extra-worker-0")).toBe("gpu-3");
    // Free gpu-3 again: the spare node for the failures below.
    f.cameraNames.pop();
    for (const [plural, name] of [
      ["detectorpools", "extra"],
      ["cameradetections", "extra-cam"],
    ] as const)
      await f.c.custom.deleteNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: f.namespace,
        plural,
        name,
      });
    await waitFor(
      "the extra pool's worker gone",
      async () => (await runningPods(f.c, f.namespace, "vigil.dev/pool=extra")).length === 0,
      60_000,
      500,
    );
  }, 300_000);

  it("worker dies: SIGKILL one worker process; its cameras stream on another worker within 15 s", async () => {
    const victim = before.get(names[0]!)!;
    const moved = names.filter((n) => before.get(n) === victim);
    const proc = f.kubelet.processes().find((p) => p.pod === victim && p.namespace === f.namespace);
    expect(proc, `process of ${victim}`).toBeDefined();
    const at = Date.now();
    process.kill(proc!.pid, "SIGKILL");
    const times = await allStreaming(moved, at, 60_000, () => victim);
    const worst = Math.max(...Object.values(times));
    log(`worker ${victim} SIGKILLed → its cameras streaming elsewhere in ${JSON.stringify(times)} s (worst ${worst})`);
    // Where the cameras are now, first: the scenarios after this one start from there, whatever this one says.
    for (const n of names) before.set(n, await workerOf(n));
    expect(worst).toBeLessThanOrEqual(15);
  }, 120_000);

  it("leader dies: SIGKILL the operator leader; the other replica leads and nothing is reassigned", async () => {
    const lease = await f.c.coordination.readNamespacedLease({ name: `${f.release}-operator`, namespace: f.namespace });
    const leader = lease.spec?.holderIdentity;
    const proc = f.kubelet.processes().find((p) => leader?.startsWith(`${p.pod}_`));
    expect(proc, `leader process ${leader}`).toBeDefined();
    const at = Date.now();
    process.kill(proc!.pid, "SIGKILL");
    const next = await waitFor(
      "a new operator leader",
      async () => {
        const l = await f.c.coordination.readNamespacedLease({ name: `${f.release}-operator`, namespace: f.namespace });
        const h = l.spec?.holderIdentity;
        // Another replica, not the killed leader's pod restarted by its kubelet (a new process, a new identity).
        return h && !h.startsWith(`${proc?.pod}_`) ? h : undefined;
      },
      60_000,
      250,
    );
    log(`operator leader ${leader} SIGKILLed → ${next} leads after ${((Date.now() - at) / 1000).toFixed(1)} s`);
    // The new leader reconciles everything once it leads; give it time, then nothing moved and all still stream.
    await new Promise((r) => setTimeout(r, 10_000));
    for (const n of names) expect(await workerOf(n), n).toBe(before.get(n));
    for (const n of names) expect(watch.longestGap(n, at, Date.now()), n).toBeLessThan(15_000);
  }, 120_000);

  it("upgrade: helm upgrade with a changed value and image tag rolls the workers one at a time; no camera unserved > 15 s", async () => {
    const at = Date.now();
    const oldPods = new Map((await workerPods()).map((p) => [p.metadata?.name, p.metadata?.uid]));
    await helm(
      f.kubeconfig,
      "upgrade",
      f.release,
      CHART,
      "--namespace",
      f.namespace,
      ...[...f.values, "image.tag=0.1.0-upgrade", "operator.logLevel=debug"].flatMap((v) => ["--set", v]),
    );
    // Every worker pod replaced, and never two down at once.
    let maxDown = 0;
    await waitFor(
      "every worker pod replaced and ready",
      async () => {
        const pods = await workerPods();
        const fresh = pods.filter((p) => oldPods.get(p.metadata?.name) !== p.metadata?.uid);
        maxDown = Math.max(maxDown, 3 - pods.filter(isReady).length);
        return fresh.length === 3 && fresh.every(isReady) && fresh.every(imageIs("0.1.0-upgrade"));
      },
      240_000,
      250,
    );
    await new Promise((r) => setTimeout(r, 5_000));
    const gaps = Object.fromEntries(names.map((n) => [n, watch.longestGap(n, at, Date.now())]));
    const longest = Math.max(...Object.values(gaps));
    log(
      `upgrade: longest gap without stats per camera (ms) ${JSON.stringify(gaps)}; longest ${longest} ms; max workers down at once ${maxDown}`,
    );
    for (const n of names) before.set(n, await workerOf(n));
    expect(maxDown).toBeLessThanOrEqual(1);
    expect(longest).toBeLessThanOrEqual(15_000);
  }, 300_000);

  it("node lost (chaos stage, then its kwok killed): the cameras recover within 60 s", async () => {
    // 1. The kwok chaos stage: the node turns NotReady, the controller-manager taints it, and the worker pod (short
    // tolerationSeconds) is evicted; its cameras move.
    const victimWorker = before.get(names[0]!)!;
    const node = (await nodeOf(victimWorker))!;
    const moved = names.filter((n) => before.get(n) === victimWorker);
    let at = Date.now();
    chaosNode = node;
    await cluster("node", "chaos", node, "on");
    let times = await allStreaming(moved, at, 90_000, () => victimWorker);
    let worst = Math.max(...Object.values(times));
    log(`node ${node} NotReady (chaos) → cameras of ${victimWorker} streaming elsewhere in ${JSON.stringify(times)} s`);
    expect(worst).toBeLessThanOrEqual(60);
    await cluster("node", "chaos", node, "off");
    chaosNode = undefined;
    for (const n of names) before.set(n, await workerOf(n));

    // 2. A node whose kwok dies (and its processes with it, as a powered-off machine).
    const busy = [...new Set(before.values())].filter((w): w is string => Boolean(w));
    const target = busy[0]!;
    const deadNode = (await nodeOf(target))!;
    const lost = names.filter((n) => before.get(n) === target);
    at = Date.now();
    killedNode = deadNode;
    await cluster("node", "kill", deadNode);
    await f.kubelet.killNode(deadNode);
    times = await allStreaming(lost, at, 90_000, () => target);
    worst = Math.max(...Object.values(times));
    log(`node ${deadNode} killed → cameras of ${target} streaming elsewhere in ${JSON.stringify(times)} s`);
    expect(worst).toBeLessThanOrEqual(60);
  }, 300_000);
});

const imageIs = (tag: string) => (p: V1Pod) => (p.spec?.containers ?? []).every((c) => c.image?.endsWith(`:${tag}`));
