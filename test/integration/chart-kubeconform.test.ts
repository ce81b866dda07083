// kubeconform, offline (hack/kubeconform.sh): the chart with every optional part on, validated against strict
// schemas made from this run's apiserver (/openapi/v2), our CRDs and the prometheus-operator v0.85.0 CRDs. Nothing
// is fetched from a schema site; a kind without a schema fails; an unknown field anywhere fails.
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ALL_ON_VALUES, CHART, MONITORING_API, render } from "../setup/chart-render.ts";
import { ROOT } from "../setup/kube.ts";

const SCRIPT = join(ROOT, "hack", "kubeconform.sh");
const run = promisify(execFile);

type Result = { kind: string; name: string; version: string; status: string; msg?: string };
type Report = { resources: Result[]; summary: { valid: number; invalid: number; errors: number; skipped: number } };

let dir: string;

/** hack/kubeconform.sh with KUBECONFIG at this run's apiserver; kubeconform's JSON report (it exits 1 on invalid). */
async function kubeconform(...args: string[]): Promise<Report> {
  const out = await run("bash", [SCRIPT, ...args], {
    cwd: ROOT,
    env: { ...process.env, KUBECONFIG: inject("kubeconfig") },
    maxBuffer: 16 << 20,
  }).catch((err: { stdout?: string; stderr?: string }) => {
    if (!err.stdout?.startsWith("{")) throw new Error(`hack/kubeconform.sh ${args.join(" ")}: ${err.stderr}`);
    return { stdout: err.stdout };
  });
  return JSON.parse(out.stdout) as Report;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "vigil-kubeconform-"));
  let t = Date.now();
  // The first run builds kubeconform from its Go module (~15 s here); later runs find it in the cache.
  await run("bash", [SCRIPT, "build"], { cwd: ROOT });
  const buildMs = Date.now() - t;
  t = Date.now();
  await run("bash", [SCRIPT, "schemas", dir], { cwd: ROOT, env: { ...process.env, KUBECONFIG: inject("kubeconfig") } });
  console.log(`kubeconform: build (or cache) ${buildMs} ms, schemas ${Date.now() - t} ms`);
}, 600_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("hack/kubeconform.sh", () => {
  it("writes strict schemas for the apiserver's kinds, our CRDs and the prometheus-operator CRDs", () => {
    const files = readdirSync(dir);
    for (const f of [
      "deployment-apps-v1.json",
      "service-v1.json",
      "ingress-networking-v1.json",
      "networkpolicy-networking-v1.json",
      "poddisruptionbudget-policy-v1.json",
      "validatingadmissionpolicy-admissionregistration-v1.json",
      "detectorpool-vigil-v1alpha1.json",
      "cameradetection-vigil-v1alpha1.json",
      "assessmentpool-vigil-v1alpha1.json",
      "servicemonitor-monitoring-v1.json",
      "podmonitor-monitoring-v1.json",
      "prometheusrule-monitoring-v1.json",
    ])
      expect(files, f).toContain(f);
    // A built-in kind refers to the one shared definitions file, closed at every level.
    const read = (f: string) => JSON.parse(readFileSync(join(dir, f), "utf8"));
    expect(read("deployment-apps-v1.json")).toEqual({
      $ref: "_definitions.json#/definitions/io.k8s.api.apps.v1.Deployment",
    });
    const defs = read("_definitions.json").definitions;
    expect(defs["io.k8s.api.apps.v1.Deployment"].additionalProperties).toBe(false);
    expect(defs["io.k8s.api.core.v1.Container"].additionalProperties).toBe(false);
    expect(read("servicemonitor-monitoring-v1.json").properties.spec.additionalProperties).toBe(false);
  });

  it("validates the chart with every optional part on: every rendered object valid, none skipped", async () => {
    const report = await kubeconform("chart", dir, "--", "-output", "json", "-verbose");
    const rendered = await render("vigil", "vigil-system", "-f", ALL_ON_VALUES, ...MONITORING_API);
    const key = (kind: string, name: string) => `${kind}/${name}`;
    const failed = report.resources.filter((r) => r.status !== "statusValid");
    expect(failed).toEqual([]);
    expect(report.summary).toEqual({ valid: rendered.length, invalid: 0, errors: 0, skipped: 0 });
    expect(report.resources.map((r) => key(r.kind, r.name)).sort()).toEqual(
      rendered.map((o) => key(o.kind ?? "", o.metadata?.name ?? "")).sort(),
    );
    const kinds = new Set(rendered.map((o) => o.kind));
    for (const k of [
      "Deployment",
      "Service",
      "Ingress",
      "NetworkPolicy",
      "PodDisruptionBudget",
      "ValidatingAdmissionPolicy",
    ])
      expect(kinds, k).toContain(k);
    // The assessor is on there, with its RBAC and monitor.
    const names = new Set(rendered.map((o) => key(o.kind ?? "", o.metadata?.name ?? "")));
    for (const k of [
      "Deployment/vigil-assessor",
      "ClusterRole/vigil-assessor",
      "Role/vigil-assessor-lease",
      "NetworkPolicy/vigil-assessor",
      "ServiceMonitor/vigil-assessor",
    ])
      expect(names, k).toContain(k);
    // The monitoring templates (templates/monitoring-*.yaml) render with the Prometheus Operator's API announced.
    if (readdirSync(join(CHART, "templates")).some((f) => f.startsWith("monitoring-")))
      for (const k of ["ServiceMonitor", "PodMonitor", "PrometheusRule", "ConfigMap"]) expect(kinds, k).toContain(k);
  });

  it("rejects what the apiserver would: unknown fields at any depth, wrong types, kinds without a schema", async () => {
    const file = join(dir, "..", `${dir.split("/").pop()}-bad.yaml`);
    const docs = [
      // Valid, with what a strict-but-wrong schema would refuse: a numeric quantity, a named port.
      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: fine}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers:\n        - {name: c, image: i, resources: {requests: {cpu: 1}}, livenessProbe: {httpGet: {port: http}}}",
      // Valid monitoring objects, as the chart's monitoring templates write them.
      "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: sm-fine, labels: {release: kps}}\nspec:\n  selector: {matchLabels: {app.kubernetes.io/part-of: vigil}}\n  endpoints: [{port: http-metrics, interval: 30s, path: /metrics}]",
      "apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata: {name: pm-fine}\nspec:\n  selector: {matchLabels: {app.kubernetes.io/name: vigil-worker}}\n  namespaceSelector: {any: true}\n  podMetricsEndpoints: [{port: metrics, interval: 15s}]",
      "apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\nmetadata: {name: pr-fine}\nspec:\n  groups:\n    - name: vigil\n      rules:\n        - {alert: StreamStalled, expr: 'rate(x[1m]) == 0', for: 1m, labels: {severity: warning}, annotations: {summary: s}}",
      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: typo}\nspec:\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec:\n      containers:\n        - {name: c, image: i, imagePullPolice: Always}",
      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: wrongtype}\nspec:\n  replicas: two\n  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    spec: {containers: [{name: c, image: i}]}",
      "apiVersion: v1\nkind: Service\nmetadata: {name: root}\nspec: {ports: [{port: 80}]}\nextra: 1",
      "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata: {name: sm}\nspec:\n  selector: {}\n  endpoints: [{port: http-metrics, intervall: 30s}]",
      "apiVersion: vigil.dev/v1alpha1\nkind: DetectorPool\nmetadata: {name: pool}\nspec: {model: {uri: 'file:///m.onnx'}, replicaz: 2}",
      "apiVersion: vigil.dev/v1alpha1\nkind: AssessmentPool\nmetadata: {name: apool-fine}\nspec: {provider: {baseURL: 'https://llm.example/v1', model: qwen-vl-max}, keysSecretRef: {name: keys}, strategy: priority}",
      "apiVersion: vigil.dev/v1alpha1\nkind: AssessmentPool\nmetadata: {name: apool}\nspec: {provider: {baseURL: 'https://llm.example/v1', model: m}, keysSecretRef: {name: keys}, cooldownSecond: 5}",
      "apiVersion: example.com/v1\nkind: Unknown\nmetadata: {name: nothing}",
    ];
    writeFileSync(file, docs.join("\n---\n"));
    try {
      const report = await kubeconform("validate", dir, "-output", "json", "-summary", "-verbose", file);
      const by = Object.fromEntries(report.resources.map((r) => [r.name, r]));
      for (const name of ["fine", "sm-fine", "pm-fine", "pr-fine", "apool-fine"])
        expect(by[name]?.status, name).toBe("statusValid");
      expect(by.typo?.msg).toContain(
        "at '/spec/template/spec/containers/0': additional properties 'imagePullPolice' not allowed",
      );
      expect(by.wrongtype?.msg).toContain("at '/spec/replicas'");
      expect(by.root?.msg).toContain("at '': additional properties 'extra' not allowed");
      expect(by.sm?.msg).toContain("at '/spec/endpoints/0': additional properties 'intervall' not allowed");
      expect(by.pool?.msg).toContain("at '/spec': additional properties 'replicaz' not allowed");
      expect(by.apool?.msg).toContain("at '/spec': additional properties 'cooldownSecond' not allowed");
      expect(by.nothing).toMatchObject({ status: "statusError", msg: "could not find schema for Unknown" });
      expect(report.summary).toEqual({ valid: 5, invalid: 6, errors: 1, skipped: 0 });
    } finally {
      rmSync(file, { force: true });
    }
  });

  it("validates the README's samples (crds/samples/)", async () => {
    const samples = readdirSync(join(ROOT, "crds", "samples")).map((f) => join(ROOT, "crds", "samples", f));
    const report = await kubeconform("validate", dir, "-output", "json", "-summary", ...samples);
    expect(report.summary.valid).toBeGreaterThanOrEqual(samples.length);
    expect(report.summary).toMatchObject({ invalid: 0, errors: 0, skipped: 0 });
  });
});
