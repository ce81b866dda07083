// The chart's monitoring (charts/vigil/templates/monitoring-*.yaml), rendered by the real helm CLI: the objects
// appear only where the Prometheus Operator's API is served and each only when enabled, every monitor reaches a
// metrics port that exists under a fixed job, the PrometheusRule passes `promtool check rules` and its unit tests
// (test/rules/vigil-alerts.test.yaml: each alert firing and not), every dashboard panel has a valid query, and
// the real apiserver takes every object, no field dropped, against the Prometheus Operator's own CRDs.
import { execFile } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { detectorPool } from "../../operator/api/detector-pool.ts";
import { WORKER_PORT, workerStatefulSet } from "../../operator/controllers/workload.ts";
import { apiMessage } from "../../operator/kube/client.ts";
import { admin, freshNamespace, ROOT } from "../setup/kube.ts";
import {
  CHART,
  dashboardOf,
  installPrometheusOperatorCrds,
  type Obj,
  ofKind,
  PROMTOOL,
  panelQueries,
  renderChart,
  writeRulesFile,
} from "../setup/prometheus.ts";

const run = promisify(execFile);
const promtool = async (cwd: string, ...args: string[]) => {
  try {
    return (await run(PROMTOOL, args, { cwd })).stdout;
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    throw new Error(`promtool ${args.join(" ")} failed:\n${e.stdout ?? ""}${e.stderr ?? ""}`);
  }
};
const REL = "mon";
const NS = "vigil-system";
const ALERTS = [
  "VigilStreamStalled",
  "VigilCameraUnschedulable",
  "VigilPoolFull",
  "VigilWorkerLost",
  "VigilReconcileErrors",
  "VigilAlarmDeadLettersGrowing",
];
const MONITORING_KINDS = ["ServiceMonitor", "PodMonitor", "PrometheusRule"];
const monitoring = (objects: Obj[]) =>
  objects
    .filter((o) => MONITORING_KINDS.includes(o.kind) || o.metadata?.labels?.grafana_dashboard)
    .map((o) => `${o.kind}/${o.metadata.name}`)
    .sort();
const labelsMatch = (selector: Record<string, string>, labels: Record<string, string> = {}) =>
  Object.entries(selector).every(([k, v]) => labels[k] === v);
const jobOf = (endpoint: Obj) =>
  (endpoint.relabelings ?? []).find((r: Obj) => r.targetLabel === "job" && r.action === "replace")?.replacement;

/** The gateway's monitor comes with the gateway, when the chart's defaults enable it. */
const GATEWAY = parse(readFileSync(join(CHART, "values.yaml"), "utf8")).gateway?.enabled === true;
const ALL = [
  `ConfigMap/${REL}-vigil-dashboard`,
  `PodMonitor/${REL}-vigil-worker`,
  `PrometheusRule/${REL}-vigil`,
  `ServiceMonitor/${REL}-vigil-alarms`,
  ...(GATEWAY ? [`ServiceMonitor/${REL}-vigil-gateway`] : []),
  `ServiceMonitor/${REL}-vigil-operator`,
];
let dir: string;
let objects: Obj[];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-chart-rules-"));
  objects = await renderChart(REL, NS); // the first call in a fresh cache builds helm (minutes)
}, 600_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("charts/vigil monitoring", () => {
  it("renders only where monitoring.coreos.com/v1 is served, and each object only when enabled", async () => {
    expect(monitoring(await renderChart(REL, NS, { monitoringApi: false }))).toEqual([]);
    expect(monitoring(objects)).toEqual(ALL);
    const all = ALL;
    const off = {
      serviceMonitor: all.filter((o) => o.startsWith("ServiceMonitor/")),
      podMonitor: [`PodMonitor/${REL}-vigil-worker`],
      prometheusRule: [`PrometheusRule/${REL}-vigil`],
      dashboard: [`ConfigMap/${REL}-vigil-dashboard`],
    };
    for (const [flag, gone] of Object.entries(off)) {
      const rendered = await renderChart(REL, NS, { set: [`monitoring.${flag}.enabled=false`] });
      expect(monitoring(rendered), flag).toEqual(all.filter((o) => !gone.includes(o)));
    }
    // No alarm service, no monitor for it.
    expect(monitoring(await renderChart(REL, NS, { set: ["alarms.enabled=false"] }))).not.toContain(
      `ServiceMonitor/${REL}-vigil-alarms`,
    );
  });

  it("points every ServiceMonitor at a metrics port of a Service the chart renders, under job vigil-<component>", async () => {
    // The assessor is off by default; on, it gets its own monitor like the others.
    const withAssessor = await renderChart(REL, NS, { set: ["assessor.enabled=true"] });
    for (const [rendered, extra] of [
      [objects, []],
      [withAssessor, ["vigil-assessor"]],
    ] as const) {
      const services = ofKind(rendered, "Service");
      const jobs: string[] = [];
      for (const sm of ofKind(rendered, "ServiceMonitor")) {
        const name = sm.metadata.name as string;
        expect(sm.spec.namespaceSelector, name).toEqual({ matchNames: [NS] });
        const selected = services.filter(
          (s) => s.metadata.namespace === NS && labelsMatch(sm.spec.selector.matchLabels, s.metadata.labels),
        );
        expect(selected.length, `${name} selects a Service`).toBe(1);
        expect(sm.spec.endpoints.length, name).toBe(1);
        const [endpoint] = sm.spec.endpoints;
        const ports = selected[0]?.spec.ports.map((p: Obj) => p.name);
        expect(ports, `${name} port ${endpoint.port}`).toContain(endpoint.port);
        expect(endpoint).toMatchObject({ path: "/metrics", interval: "30s" });
        const component = sm.spec.selector.matchLabels["app.kubernetes.io/component"];
        expect(jobOf(endpoint), name).toBe(`vigil-${component}`);
        jobs.push(jobOf(endpoint));
      }
      expect(jobs.sort()).toEqual(
        ["vigil-alarms", ...extra, ...(GATEWAY ? ["vigil-gateway"] : []), "vigil-operator"].sort(),
      );
    }
  });

  it("points the PodMonitor at the worker pods' metrics port, job vigil-worker, in every namespace or the watched one", async () => {
    const pool = detectorPool.parse({
      apiVersion: "vigil.dev/v1alpha1",
      kind: "DetectorPool",
      metadata: { name: "gpu", namespace: "site-a", uid: "u1" },
      spec: { model: { uri: "file:///m.onnx" } },
    });
    const sts = workerStatefulSet(pool, {
      image: "vigil:1",
      replicas: 1,
      serviceAccountName: "vigil-worker",
      workerEnvSecret: "vigil-worker-env",
    });
    const pod = sts.spec.template;
    const [pm] = ofKind(objects, "PodMonitor");
    expect(labelsMatch(pm?.spec.selector.matchLabels, pod.metadata.labels)).toBe(true);
    const [endpoint] = pm?.spec.podMetricsEndpoints ?? [];
    expect(pod.spec.containers[0]?.ports).toContainEqual({ name: endpoint.port, containerPort: WORKER_PORT });
    expect(jobOf(endpoint)).toBe("vigil-worker");
    // pool="<namespace>/<pool>", as the operator's status gauges name pools.
    expect(endpoint.relabelings).toContainEqual({
      action: "replace",
      sourceLabels: ["__meta_kubernetes_namespace", "__meta_kubernetes_pod_label_vigil_dev_pool"],
      separator: "/",
      targetLabel: "pool",
    });
    expect(pod.metadata.labels["vigil.dev/pool"]).toBe("gpu");
    expect(pm?.spec.namespaceSelector).toEqual({ any: true });
    const watching = await renderChart(REL, NS, { set: ["operator.watchNamespace=cams"] });
    expect(ofKind(watching, "PodMonitor")[0]?.spec.namespaceSelector).toEqual({ matchNames: ["cams"] });
  });

  it("labels each object as the values say, and the dashboard for Grafana's sidecar", async () => {
    const rendered = await renderChart(REL, NS, {
      set: [
        "monitoring.serviceMonitor.labels.release=kps",
        "monitoring.podMonitor.labels.release=kps-pods",
        "monitoring.prometheusRule.labels.role=alert-rules",
        "monitoring.dashboard.labels.grafana_folder=vigil",
        "monitoring.serviceMonitor.interval=15s",
        "monitoring.podMonitor.interval=10s",
      ],
    });
    for (const sm of ofKind(rendered, "ServiceMonitor")) {
      expect(sm.metadata.labels.release).toBe("kps");
      expect(sm.spec.endpoints[0].interval).toBe("15s");
    }
    const [pm] = ofKind(rendered, "PodMonitor");
    expect(pm?.metadata.labels.release).toBe("kps-pods");
    expect(pm?.spec.podMetricsEndpoints[0].interval).toBe("10s");
    expect(ofKind(rendered, "PrometheusRule")[0]?.metadata.labels.role).toBe("alert-rules");
    const { configMap } = dashboardOf(rendered);
    expect(configMap.metadata.labels).toMatchObject({ grafana_dashboard: "1", grafana_folder: "vigil" });
    for (const o of rendered.filter((x) => monitoring([x]).length))
      expect(o.metadata.labels, `${o.kind}/${o.metadata.name}`).toMatchObject({
        "app.kubernetes.io/instance": REL,
        "app.kubernetes.io/part-of": "vigil",
        "app.kubernetes.io/managed-by": "Helm",
      });
  });

  it("is accepted by the apiserver, field for field, against the Prometheus Operator's CRDs", {
    timeout: 120_000,
  }, async () => {
    const c = admin();
    await installPrometheusOperatorCrds(c.custom);
    const ns = await freshNamespace(c, "mon");
    const rendered = (await renderChart(ns, ns)).filter((o) => monitoring([o]).length);
    expect(rendered).toHaveLength(ALL.length);
    for (const o of rendered) {
      const what = `${o.kind}/${o.metadata.name}`;
      // Strict: an unknown or misspelt field is an error, not silently pruned.
      if (o.kind === "ConfigMap") {
        const back = await c.core.createNamespacedConfigMap({ namespace: ns, body: o, fieldValidation: "Strict" });
        expect(back.data, what).toEqual(o.data);
        continue;
      }
      const [group, version] = (o.apiVersion as string).split("/");
      const plural = `${(o.kind as string).toLowerCase()}s`;
      const back = (await c.custom
        .createNamespacedCustomObject({
          group: group ?? "",
          version: version ?? "",
          namespace: ns,
          plural,
          body: o,
          fieldValidation: "Strict",
        })
        .catch((err) => {
          throw new Error(`${what}: ${apiMessage(err)}`);
        })) as Obj;
      expect(back.spec, what).toEqual(o.spec);
    }
  });

  it("has the issue's alerts, and passes promtool check rules and its unit tests (each alert firing and not)", async () => {
    const file = writeRulesFile(objects, dir);
    const groups = parse(readFileSync(file, "utf8")).groups as Obj[];
    expect(groups.flatMap((g) => g.rules.map((r: Obj) => r.alert)).sort()).toEqual([...ALERTS].sort());
    // The rendered rules are the file's, as written: the chart changes nothing with its defaults but `for`.
    const source = parse(readFileSync(join(CHART, "files", "monitoring", "rules.yaml"), "utf8"));
    expect(groups).toEqual(source.groups);
    expect(await promtool(dir, "check", "rules", "rules.yaml")).toContain("SUCCESS: 6 rules found");
    copyFileSync(join(ROOT, "test", "rules", "vigil-alerts.test.yaml"), join(dir, "vigil-alerts.test.yaml"));
    expect(await promtool(dir, "test", "rules", "vigil-alerts.test.yaml")).toContain("SUCCESS");
  });

  it("sets VigilStreamStalled's for from monitoring.prometheusRule.streamStalledFor, and nothing else", async () => {
    const rendered = await renderChart(REL, NS, { set: ["monitoring.prometheusRule.streamStalledFor=7s"] });
    const rules = (o: Obj[]) => ofKind(o, "PrometheusRule")[0]?.spec.groups.flatMap((g: Obj) => g.rules) as Obj[];
    const before = rules(objects);
    const after = rules(rendered);
    expect(after.find((r) => r.alert === "VigilStreamStalled")?.for).toBe("7s");
    expect(before.find((r) => r.alert === "VigilStreamStalled")?.for).toBe("1m");
    expect(after.filter((r) => r.alert !== "VigilStreamStalled")).toEqual(
      before.filter((r) => r.alert !== "VigilStreamStalled"),
    );
  });

  it("ships a dashboard whose every panel has queries, valid PromQL, on the monitors' jobs", async () => {
    const { dashboard } = dashboardOf(objects);
    expect(dashboard.uid).toBe("vigil-overview");
    const panels = dashboard.panels.filter((p) => p.type !== "row");
    const titles = panels.map((p) => p.title);
    for (const want of [
      /frames per second/i,
      /inference time/i,
      /skipped and dropped/i,
      /reconnects/i,
      /events/i,
      /worker health/i,
      /reconciles per second/i,
      /reconcile errors/i,
    ])
      expect(
        titles.some((t) => want.test(t)),
        String(want),
      ).toBe(true);
    for (const p of panels) expect(p.targets?.length ?? 0, p.title).toBeGreaterThan(0);
    const queries = panelQueries(dashboard, "1m");
    const jobs = new Set(["vigil-operator", "vigil-worker", "vigil-gateway", "vigil-alarms"]);
    for (const q of queries) {
      expect(q.expr.trim(), `${q.panel} ${q.refId}`).not.toBe("");
      expect(q.expr, `${q.panel} ${q.refId} has no Grafana variable left`).not.toMatch(/\$/);
      const used = [...q.expr.matchAll(/job="([^"]+)"/g)].map((m) => m[1]);
      expect(used.length, `${q.panel} ${q.refId} selects a job`).toBeGreaterThan(0);
      for (const j of used) expect(jobs.has(j ?? ""), `${q.panel}: job ${j}`).toBe(true);
    }
    // promtool parses PromQL offline only inside rules: each query as a recording rule.
    writeFileSync(
      join(dir, "panels.yaml"),
      stringify({
        groups: [{ name: "panels", rules: queries.map((q, i) => ({ record: `vigil:panel_${i}`, expr: q.expr })) }],
      }),
    );
    expect(await promtool(dir, "check", "rules", "panels.yaml")).toContain(`SUCCESS: ${queries.length} rules found`);
  });
});
