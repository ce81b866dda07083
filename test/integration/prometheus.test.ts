// A real Prometheus (Debian's) with the chart's rendered rules, scraping real processes: the operator, a worker on
// vtest.avi over RTSP (as the pod the operator assigned the camera to) and the gateway, each under the job the
// chart's monitors give it. Every dashboard panel's query returns series over the run, and VigilStreamStalled
// fires once the RTSP server is killed, never before (its `for` shortened to 2 s through the chart's value).
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { KubernetesObject } from "@kubernetes/client-node";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import type { Clients } from "../../operator/kube/client.ts";
import {
  admin,
  createCr,
  freshNamespace,
  getCr,
  listeningPort,
  type OperatorProc,
  operatorKubeconfig,
  readyWorkerPod,
  serviceAccountKubeconfig,
  startOperator,
} from "../setup/kube.ts";
import {
  dashboardOf,
  type Obj,
  type PanelQuery,
  type Prometheus,
  panelQueries,
  renderChart,
  startPrometheus,
  writeRulesFile,
} from "../setup/prometheus.ts";
import {
  childProcesses,
  FIXTURES,
  type GatewayProc,
  type Service,
  startGateway,
  startRedis,
  startRtsp,
  startWorker,
  waitFor,
} from "../setup/services.ts";

const POD = "p-worker-0";
const STALLED = "VigilStreamStalled";
let c: Clients;
let ns: string;
let dir: string;
let queries: PanelQuery[];
let prom: Prometheus;
let redis: Service;
let rtsp: Service;
let op: OperatorProc;
let worker: ChildProcess;
let gateway: GatewayProc;
const workerLogs: string[] = [];
let start: number;

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "prom");
  dir = mkdtempSync(join(tmpdir(), "vigil-prom-test-"));
  const objects = await renderChart("vigil", ns, { set: ["monitoring.prometheusRule.streamStalledFor=2s"] });
  // 1 s scrapes: Grafana's $__rate_interval would be 4 of them.
  queries = panelQueries(dashboardOf(objects).dashboard, "4s");
  prom = await startPrometheus({
    jobs: ["vigil-operator", "vigil-worker", "vigil-gateway"],
    ruleFiles: [writeRulesFile(objects, dir)],
  });
  start = Date.now();
  // The labels the Prometheus Operator would give the chart's targets (namespace, pod; pool for workers).
  const target = (port: number, pod: string, extra: Record<string, string> = {}) => [
    { address: `127.0.0.1:${port}`, labels: { namespace: ns, pod, ...extra } },
  ];

  redis = await startRedis();
  rtsp = await startRtsp(join(FIXTURES, "vtest.avi"));
  op = startOperator(await operatorKubeconfig(c, ns), ns);
  prom.setTargets("vigil-operator", target(await op.port, "vigil-operator-0"));
  await createCr(c, "detectorpools", ns, {
    apiVersion: "vigil.dev/v1alpha1",
    kind: "DetectorPool",
    metadata: { name: "p" },
    spec: { model: { uri: "file:///models/yolov8n.onnx" }, camerasPerWorker: 4, maxWorkers: 1 },
  } as KubernetesObject);
  await createCr(c, "cameradetections", ns, {
    apiVersion: "vigil.dev/v1alpha1",
    kind: "CameraDetection",
    metadata: { name: "door" },
    spec: {
      source: { url: `rtsp://127.0.0.1:${rtsp.port}/cam1` },
      poolRef: { name: "p" },
      detection: { targetFps: 5 },
      zones: [
        {
          name: "all",
          polygon: [
            [0, 0],
            [1, 0],
            [1, 1],
            [0, 1],
          ],
        },
      ],
      rules: [{ name: "someone", presence: { zone: "all" } }],
    },
  } as KubernetesObject);
  // The pod this worker plays (no kubelet here), with a token bound to it as the kubelet's projected one is.
  const pod = await readyWorkerPod(c, ns, "p", POD, { serviceAccountName: "vigil-worker" });
  const kubeconfig = await serviceAccountKubeconfig(
    c,
    ns,
    "vigil-worker",
    { namespace: "worker-namespace-rules.yaml" },
    pod,
  );
  const w = await startWorker([], redis.port, { KUBECONFIG: kubeconfig, POD_NAME: POD, POD_NAMESPACE: ns }, workerLogs);
  worker = w.proc;
  // Cameras go only to workers that run: this one, once it renews its Lease.
  await waitFor(
    "camera assigned",
    async () => {
      const cam = await getCr<Obj>(c, "cameradetections", ns, "door");
      return cam.metadata.labels?.["vigil.dev/worker"] === POD;
    },
    60_000,
  );
  prom.setTargets("vigil-worker", target(w.port, POD, { pool: `${ns}/p` }));
  gateway = await startGateway([], redis.port, {
    KUBECONFIG: inject("kubeconfig"),
    VIGIL_WATCH_NAMESPACE: ns,
    VIGIL_API_TOKEN: "prometheus-test-token-0123456789",
  });
  const healthPort = await listeningPort(gateway.proc, () => gateway.logs.join(""), "gateway listening", "healthPort");
  prom.setTargets("vigil-gateway", target(healthPort, "vigil-gateway-0"));
}, 120_000);

afterAll(async () => {
  if (process.env.DEBUG_WORKER) console.log(workerLogs.join(""), op?.logs.join("\n"), prom?.output.join(""));
  const leftovers = childProcesses(worker?.pid ?? -1);
  worker?.kill("SIGTERM");
  gateway?.proc.kill("SIGTERM");
  for (const p of leftovers)
    try {
      process.kill(p.pid, "SIGKILL");
    } catch {}
  await op?.stop();
  await prom?.stop();
  await rtsp?.stop("SIGKILL");
  await redis?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const stalledSeries = (from: number, to: number) => prom.queryRange(`ALERTS{alertname="${STALLED}"}`, from, to, 1);

it("answers every dashboard panel's query with series from the real processes", { timeout: 90_000 }, async () => {
  let empty: string[] = [];
  await waitFor(
    "every panel query has series",
    async () => {
      const results = await Promise.all(queries.map((q) => prom.queryRange(q.expr, start, Date.now(), 1)));
      empty = queries.filter((_, i) => results[i]?.length === 0).map((q) => `${q.panel} ${q.refId}: ${q.expr}`);
      return empty.length === 0;
    },
    60_000,
    1_000,
  ).catch((err) => {
    throw new Error(`${err}\nno series yet for:\n${empty.join("\n")}`);
  });
  console.log(`every panel had series ${((Date.now() - start) / 1000).toFixed(1)} s after Prometheus started`);

  // The values are the camera's and the pool's, not just any series.
  const camera = `${ns}/door`;
  const fps = await prom.query(`sum by (camera) (rate(vigil_frames_total{job="vigil-worker"}[4s]))`);
  expect(fps.find((s) => s.metric.camera === camera)?.value[1]).toSatisfy((v: string) => Number(v) > 0);
  const phases = await prom.query(`max by (pool, phase) (vigil_pool_workers{job="vigil-operator"})`);
  expect(phases.find((s) => s.metric.pool === `${ns}/p` && s.metric.phase === "Ready")?.value[1]).toBe("1");
  const scheduled = await prom.query(`vigil_camera_condition{job="vigil-operator", condition="Scheduled"}`);
  expect(scheduled.map((s) => [s.metric.camera, s.metric.status, s.metric.reason])).toEqual([
    [camera, "True", "Assigned"],
  ]);
  const age = await prom.query(`time() - vigil_stream_last_frame_timestamp_seconds{camera="${camera}"}`);
  expect(Number(age[0]?.value[1])).toBeLessThan(10);
  // Streaming: the stalled alert was never pending nor firing.
  expect(await stalledSeries(start, Date.now())).toEqual([]);
});

it("fires VigilStreamStalled once the RTSP server is killed, and not before", { timeout: 90_000 }, async () => {
  const killed = Date.now();
  await rtsp.stop("SIGKILL");
  const firing = await waitFor(
    `${STALLED} firing`,
    async () =>
      (await prom.alerts()).find(
        (a) => a.labels.alertname === STALLED && a.labels.camera === `${ns}/door` && a.state === "firing",
      ),
    60_000,
    500,
  );
  console.log(`${STALLED} firing ${((Date.now() - killed) / 1000).toFixed(1)} s after the RTSP server was killed`);
  expect(firing.labels).toMatchObject({ severity: "warning", camera: `${ns}/door` });
  expect(firing.annotations.summary).toMatch(new RegExp(`^Camera ${ns}/door has sent no frame for [\\d.]+s$`));
  // Never before the kill, pending first (for: 2s), then firing.
  expect(await stalledSeries(start, killed - 1_000)).toEqual([]);
  // The rule's ALERTS samples reach the TSDB with the evaluation that turned the alert firing.
  const states = await waitFor("ALERTS firing stored", async () => {
    const seen = (await stalledSeries(killed, Date.now())).map((s) => s.metric.alertstate).sort();
    return seen.includes("firing") && seen;
  });
  expect(states).toEqual(["firing", "pending"]);
});
