// The chart's monitoring objects, rendered by the real helm CLI, and a real Prometheus (Debian's package) to load
// their rules and scrape Vigil's processes: shared by test/integration/chart-rules.test.ts and prometheus.test.ts.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import {
  type CoreV1Api,
  type CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type V1Pod,
} from "@kubernetes/client-node";
import { parse, parseAllDocuments, stringify } from "yaml";
import { z } from "zod";
import { freePort, ROOT, waitFor } from "./operator-env.ts";

export type Obj = Record<string, any>;
export const CHART = join(ROOT, "charts", "vigil");
export const PROMETHEUS = "/usr/bin/prometheus";
export const PROMTOOL = "/usr/bin/promtool";
/** What the chart's monitoring objects are gated on; helm template has no cluster to ask. */
export const MONITORING_API = ["monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor"];

const run = promisify(execFile);

/** `helm template` of the chart (hack/helm.sh), with or without the Prometheus Operator's API, as objects. */
export async function renderChart(
  release: string,
  namespace: string,
  { set = [], monitoringApi = true }: { set?: string[]; monitoringApi?: boolean } = {},
): Promise<Obj[]> {
  const args = ["template", release, CHART, "--namespace", namespace, ...set.flatMap((s) => ["--set", s])];
  if (monitoringApi) args.push(...MONITORING_API.flatMap((v) => ["--api-versions", v]));
  const { stdout } = await run("bash", [join(ROOT, "hack", "helm.sh"), ...args], { cwd: ROOT, maxBuffer: 16 << 20 });
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

/** The Go module that publishes the Prometheus Operator's CRDs (example/prometheus-operator-crd/). */
export const PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0";
const CRD_API = { group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions" };

/**
 * Installs the Prometheus Operator's ServiceMonitor, PodMonitor and PrometheusRule CRDs, from its Go module (the Go
 * module proxy, then Go's cache), as plain JSON (client-node's typed serializer would drop raw schema keys), and
 * waits until they are served. Returns their names.
 */
export async function installPrometheusOperatorCrds(custom: CustomObjectsApi): Promise<string[]> {
  // From /, so that no go.mod or go.work around takes part.
  const { stdout } = await run("go", ["mod", "download", "-json", PROMETHEUS_OPERATOR], { cwd: "/" });
  const { Dir } = z.object({ Dir: z.string() }).parse(JSON.parse(stdout));
  const names: string[] = [];
  for (const plural of ["servicemonitors", "podmonitors", "prometheusrules"]) {
    const file = join(Dir, "example", "prometheus-operator-crd", `monitoring.coreos.com_${plural}.yaml`);
    const body = parse(readFileSync(file, "utf8")) as Obj;
    names.push(body.metadata.name);
    await custom.patchClusterCustomObject(
      { ...CRD_API, name: body.metadata.name, body, fieldManager: "vigil-test", force: true },
      setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply),
    );
  }
  for (const name of names)
    await waitFor(`CRD ${name} established`, async () => {
      const crd = (await custom.getClusterCustomObject({ ...CRD_API, name })) as Obj;
      return crd.status?.conditions?.some((c: Obj) => c.type === "Established" && c.status === "True");
    });
  return names;
}

export const ofKind = (objects: Obj[], kind: string) => objects.filter((o) => o.kind === kind);

/** The PrometheusRule's spec.groups as a plain rules file (what Prometheus and promtool read), in `dir`. */
export function writeRulesFile(objects: Obj[], dir: string, name = "rules.yaml"): string {
  const rules = ofKind(objects, "PrometheusRule");
  if (rules.length !== 1) throw new Error(`expected one PrometheusRule, rendered ${rules.length}`);
  const file = join(dir, name);
  writeFileSync(file, stringify({ groups: rules[0]?.spec.groups }));
  return file;
}

const dashboardJson = z.object({
  title: z.string(),
  uid: z.string(),
  templating: z.object({ list: z.array(z.looseObject({ name: z.string(), allValue: z.string().optional() })) }),
  panels: z.array(
    z.looseObject({
      id: z.int(),
      type: z.string(),
      title: z.string(),
      targets: z.array(z.looseObject({ expr: z.string(), refId: z.string() })).optional(),
    }),
  ),
});
export type Dashboard = z.infer<typeof dashboardJson>;

/** The dashboard ConfigMap's JSON, checked against the fields the tests use. */
export function dashboardOf(objects: Obj[]): { configMap: Obj; dashboard: Dashboard } {
  const maps = ofKind(objects, "ConfigMap").filter((c) => c.metadata?.labels?.grafana_dashboard !== undefined);
  if (maps.length !== 1) throw new Error(`expected one dashboard ConfigMap, rendered ${maps.length}`);
  const configMap = maps[0] as Obj;
  const files = Object.values(configMap.data ?? {}) as string[];
  if (files.length !== 1) throw new Error(`the dashboard ConfigMap holds ${files.length} files`);
  return { configMap, dashboard: dashboardJson.parse(JSON.parse(files[0] ?? "")) };
}

export type PanelQuery = { panel: string; refId: string; expr: string };

/** Every query of every panel (rows hold none), with Grafana's variables as Prometheus must see them. */
export function panelQueries(d: Dashboard, rateInterval: string): PanelQuery[] {
  const all = new Map(d.templating.list.filter((v) => v.allValue).map((v) => [v.name, v.allValue as string]));
  return d.panels
    .filter((p) => p.type !== "row")
    .flatMap((p) =>
      (p.targets ?? []).map((t) => ({
        panel: p.title,
        refId: t.refId,
        // $__rate_interval is Grafana's (at least 4 scrape intervals); "All" of a variable is its allValue.
        expr: t.expr
          .replaceAll("$__rate_interval", rateInterval)
          .replace(/\$(\w+)/g, (m, name: string) => all.get(name) ?? m),
      })),
    );
}

export type Prometheus = {
  url: string;
  proc: ChildProcess;
  output: string[];
  query: (expr: string) => Promise<Obj[]>;
  queryRange: (expr: string, startMs: number, endMs: number, stepS: number) => Promise<Obj[]>;
  alerts: () => Promise<Obj[]>;
  /** The job's targets from now on (file-based discovery: processes that chose their port can join later). */
  setTargets: (job: string, targets: { address: string; labels: Record<string, string> }[]) => void;
  stop: () => Promise<void>;
};

const apiAnswer = z.object({ status: z.literal("success"), data: z.any() });

/**
 * Debian's Prometheus server on a loopback port, with a temporary data directory, scraping the targets given to
 * setTargets for each of `jobs` and evaluating `ruleFiles`, every `intervalS` seconds. Resolves once it is ready.
 */
export async function startPrometheus(opts: {
  jobs: string[];
  ruleFiles: string[];
  intervalS?: number;
  /** More scrape jobs, as written (e.g. from ServiceMonitors: monitorScrapeConfig). */
  scrapeConfigs?: Obj[];
}): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-prometheus-"));
  const interval = `${opts.intervalS ?? 1}s`;
  const config = join(dir, "prometheus.yml");
  const targetsFile = (job: string) => join(dir, `targets-${job}.json`);
  const setTargets: Prometheus["setTargets"] = (job, targets) => writeTargets(targetsFile(job), targets);
  for (const job of opts.jobs) setTargets(job, []);
  writeFileSync(
    config,
    stringify({
      global: { scrape_interval: interval, evaluation_interval: interval, scrape_timeout: interval },
      rule_files: opts.ruleFiles,
      scrape_configs: [
        ...opts.jobs.map((job) => ({
          job_name: job,
          file_sd_configs: [{ files: [targetsFile(job)], refresh_interval: interval }],
        })),
        ...(opts.scrapeConfigs ?? []),
      ],
    }),
  );
  // Prometheus takes no port 0 it would report: a port free a moment ago, tried again if it was taken meanwhile.
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const output: string[] = [];
    const proc = spawn(
      PROMETHEUS,
      [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, "data")}`,
        `--web.listen-address=127.0.0.1:${port}`,
        "--log.level=warn",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    for (const s of [proc.stdout, proc.stderr]) s?.on("data", (b: Buffer) => output.push(b.toString()));
    const exited = new Promise<void>((r) => proc.once("exit", () => r()));
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitFor(
        "prometheus ready",
        async () => {
          if (proc.exitCode !== null) throw new Error(`prometheus exited: ${output.join("").slice(-1000)}`);
          return (await fetch(`${url}/-/ready`)).ok;
        },
        30_000,
        100,
      );
    } catch (err) {
      proc.kill("SIGKILL");
      await exited;
      if (/address already in use/.test(output.join("")) && attempt < 10) continue;
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    const api = async (path: string, params: Record<string, string> = {}) => {
      const res = await fetch(`${url}/api/v1/${path}?${new URLSearchParams(params)}`);
      const body = await res.json();
      const ok = apiAnswer.safeParse(body);
      if (!ok.success) throw new Error(`prometheus ${path} ${JSON.stringify(params)}: ${JSON.stringify(body)}`);
      return ok.data.data as Obj;
    };
    return {
      url,
      proc,
      output,
      query: async (expr) => (await api("query", { query: expr })).result,
      queryRange: async (expr, startMs, endMs, stepS) =>
        (
          await api("query_range", {
            query: expr,
            start: String(startMs / 1000),
            end: String(endMs / 1000),
            step: String(stepS),
          })
        ).result,
      alerts: async () => (await api("alerts")).alerts,
      setTargets,
      stop: async () => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
        await exited;
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
}

/** Prometheus' name for a Kubernetes label in discovery metadata: every character not [a-zA-Z0-9_] becomes `_`. */
const metaName = (label: string) => label.replace(/[^a-zA-Z0-9_]/g, "_");

/** Writes file-based discovery targets whole, then renames: Prometheus watches the file and must never read half. */
export function writeTargets(file: string, targets: { address: string; labels: Record<string, string> }[]): void {
  writeFileSync(`${file}.tmp`, JSON.stringify(targets.map((t) => ({ targets: [t.address], labels: t.labels }))));
  renameSync(`${file}.tmp`, file);
}

/**
 * The scrape job the Prometheus Operator generates from a ServiceMonitor (role endpoints) or a PodMonitor (role pod),
 * for its first endpoint: kept are the targets whose Service (or pod) carries the selector's labels and whose port
 * has the endpoint's name; they are labelled namespace, service, pod and container as the operator does, then the
 * monitor's own relabelings apply. There is no Prometheus Operator here (a Go controller), and Debian builds
 * Prometheus without Kubernetes discovery ("field kubernetes_sd_configs not found"): the targets come from
 * `file`, written by kubernetesTargets with the same __meta_kubernetes_* labels that discovery would give.
 */
export function monitorScrapeConfig(monitor: Obj, file: string, intervalS: number): Obj {
  const pod = monitor.kind === "PodMonitor";
  const endpoint = (pod ? monitor.spec.podMetricsEndpoints : monitor.spec.endpoints)[0] as Obj;
  const on = pod ? "pod" : "service";
  const keep = Object.entries((monitor.spec.selector?.matchLabels ?? {}) as Record<string, string>).map(([k, v]) => ({
    action: "keep",
    source_labels: [
      `__meta_kubernetes_${on}_label_${metaName(k)}`,
      `__meta_kubernetes_${on}_labelpresent_${metaName(k)}`,
    ],
    regex: `(${v});true`,
  }));
  const ns = monitor.spec.namespaceSelector ?? {};
  const names: string[] | undefined = ns.any ? undefined : (ns.matchNames ?? [monitor.metadata.namespace]);
  const relabel = (r: Obj) => ({
    action: r.action ?? "replace",
    ...(r.sourceLabels ? { source_labels: r.sourceLabels } : {}),
    ...(r.separator !== undefined ? { separator: r.separator } : {}),
    ...(r.targetLabel ? { target_label: r.targetLabel } : {}),
    ...(r.regex ? { regex: r.regex } : {}),
    ...(r.replacement !== undefined ? { replacement: r.replacement } : {}),
  });
  return {
    job_name: `${pod ? "podMonitor" : "serviceMonitor"}/${monitor.metadata.namespace}/${monitor.metadata.name}/0`,
    // The monitors say 30s; a test has no 30 s to wait for each scrape.
    scrape_interval: `${intervalS}s`,
    scrape_timeout: `${intervalS}s`,
    metrics_path: endpoint.path ?? "/metrics",
    file_sd_configs: [{ files: [file], refresh_interval: `${intervalS}s` }],
    relabel_configs: [
      ...(names
        ? [{ action: "keep", source_labels: ["__meta_kubernetes_namespace"], regex: `(${names.join("|")})` }]
        : []),
      ...keep,
      {
        action: "keep",
        source_labels: [pod ? "__meta_kubernetes_pod_container_port_name" : "__meta_kubernetes_endpoint_port_name"],
        regex: endpoint.port,
      },
      ...(pod ? [{ action: "drop", source_labels: ["__meta_kubernetes_pod_phase"], regex: "(Failed|Succeeded)" }] : []),
      { source_labels: ["__meta_kubernetes_namespace"], target_label: "namespace" },
      ...(pod ? [] : [{ source_labels: ["__meta_kubernetes_service_name"], target_label: "service" }]),
      { source_labels: ["__meta_kubernetes_pod_name"], target_label: "pod" },
      { source_labels: ["__meta_kubernetes_pod_container_name"], target_label: "container" },
      ...((endpoint.relabelings ?? []) as Obj[]).map(relabel),
    ],
  };
}

type Target = { address: string; labels: Record<string, string> };
const labelMeta = (kind: string, labels: Record<string, string> | undefined) =>
  Object.fromEntries(
    Object.entries(labels ?? {}).flatMap(([k, v]) => [
      [`__meta_kubernetes_${kind}_label_${metaName(k)}`, v],
      [`__meta_kubernetes_${kind}_labelpresent_${metaName(k)}`, "true"],
    ]),
  );

/**
 * What Prometheus' Kubernetes discovery finds for a monitor, read with client-node: for role pod, every container
 * port of every pod with an IP; for role endpoints, every port of every ready pod behind each Service, with the
 * Service's and the pod's metadata. Only the __meta_kubernetes_* labels the relabelings above read.
 */
export async function kubernetesTargets(core: CoreV1Api, monitor: Obj): Promise<Target[]> {
  const ns = monitor.spec.namespaceSelector ?? {};
  const namespaces: (string | undefined)[] = ns.any ? [undefined] : (ns.matchNames ?? [monitor.metadata.namespace]);
  const out: Target[] = [];
  for (const namespace of namespaces) {
    const pods = namespace
      ? (await core.listNamespacedPod({ namespace })).items
      : (await core.listPodForAllNamespaces()).items;
    const podMeta = (p: V1Pod) => ({
      __meta_kubernetes_namespace: p.metadata?.namespace ?? "",
      __meta_kubernetes_pod_name: p.metadata?.name ?? "",
      __meta_kubernetes_pod_phase: p.status?.phase ?? "",
      ...labelMeta("pod", p.metadata?.labels),
    });
    if (monitor.kind === "PodMonitor") {
      for (const p of pods) {
        if (!p.status?.podIP) continue;
        for (const c of p.spec?.containers ?? [])
          for (const port of c.ports ?? [])
            out.push({
              address: `${p.status.podIP}:${port.containerPort}`,
              labels: {
                ...podMeta(p),
                __meta_kubernetes_pod_container_name: c.name,
                __meta_kubernetes_pod_container_port_name: port.name ?? "",
              },
            });
      }
      continue;
    }
    // The Services' endpoints as the endpoints controller computes them (its Ready pods matching the selector, each
    // Service port resolved to the container port): here it cannot store them, as pod IPs are loopback addresses
    // ("may not be in the loopback range"), so they are worked out the same way.
    const services = namespace
      ? (await core.listNamespacedService({ namespace })).items
      : (await core.listServiceForAllNamespaces()).items;
    const ready = (p: V1Pod) =>
      Boolean(p.status?.podIP) &&
      !p.metadata?.deletionTimestamp &&
      (p.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");
    for (const svc of services) {
      const selector = Object.entries(svc.spec?.selector ?? {});
      if (selector.length === 0) continue;
      const members = pods.filter(
        (p) =>
          p.metadata?.namespace === svc.metadata?.namespace &&
          ready(p) &&
          selector.every(([k, v]) => p.metadata?.labels?.[k] === v),
      );
      for (const p of members)
        for (const port of svc.spec?.ports ?? []) {
          const target = port.targetPort ?? port.port;
          const container = p.spec?.containers.find((c) =>
            (c.ports ?? []).some((x) => (typeof target === "string" ? x.name === target : x.containerPort === target)),
          );
          const number =
            typeof target === "string"
              ? container?.ports?.find((x) => x.name === target)?.containerPort
              : Number(target);
          if (number === undefined) continue;
          out.push({
            address: `${p.status?.podIP}:${number}`,
            labels: {
              ...podMeta(p),
              __meta_kubernetes_service_name: svc.metadata?.name ?? "",
              ...labelMeta("service", svc.metadata?.labels),
              __meta_kubernetes_endpoint_port_name: port.name ?? "",
              ...(container ? { __meta_kubernetes_pod_container_name: container.name } : {}),
            },
          });
        }
    }
  }
  return out;
}
