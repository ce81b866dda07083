// The chart as the real helm CLI renders it (hack/helm.sh), for the chart tests.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import type { KubernetesObject } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { ROOT } from "./operator-env.ts";

export type Obj = KubernetesObject & Record<string, any>;

export const CHART = join(ROOT, "charts", "vigil");
/** Every optional part on (also what hack/kubeconform.sh validates). */
export const ALL_ON_VALUES = join(CHART, "ci", "all-on-values.yaml");
/** The Prometheus Operator's API, as a cluster that serves it announces it (the monitoring templates' gate). */
export const MONITORING_API = ["monitoring.coreos.com/v1", "ServiceMonitor", "PodMonitor", "PrometheusRule"].flatMap(
  (k, i) => ["--api-versions", i === 0 ? k : `monitoring.coreos.com/v1/${k}`],
);

const run = promisify(execFile);

/** hack/helm.sh: the first call in a fresh cache builds helm from its Go module (minutes on 2 cores). */
export const helm = async (...args: string[]) =>
  (await run("bash", [join(ROOT, "hack", "helm.sh"), ...args], { cwd: ROOT, maxBuffer: 16 << 20 })).stdout;

/** helm's error text for a command expected to fail (its stderr), or "succeeded". */
export const helmError = (...args: string[]) =>
  helm(...args).then(
    () => "succeeded",
    (err: { stderr?: string }) => err.stderr ?? String(err),
  );

/** `helm template RELEASE CHART --namespace NAMESPACE ARGS...` as objects. */
export async function render(release: string, namespace: string, ...args: string[]): Promise<Obj[]> {
  const out = await helm("template", release, CHART, "--namespace", namespace, ...args);
  return parseAllDocuments(out)
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);
}

export const named = (objects: Obj[], kind: string, name: string) => {
  const o = objects.find((x) => x.kind === kind && x.metadata?.name === name);
  if (!o) throw new Error(`no ${kind}/${name} in ${objects.map((x) => `${x.kind}/${x.metadata?.name}`).join(", ")}`);
  return o;
};
