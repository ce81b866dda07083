// vitest globalSetup: one real kube-apiserver + etcd per test run (hack/cluster.sh), with Vigil's CRDs installed.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { buildDist } from "../../hack/build.ts";
import { serverSideApply } from "../../operator/kube/apply.ts";
import { loadKubeConfig, makeClients } from "../../operator/kube/client.ts";
import { applyCrds } from "../../operator/kube/crds.ts";
import { workerTokenPolicy } from "./operator-env.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const CLUSTER = join(ROOT, "hack", "cluster.sh");

declare module "vitest" {
  export interface ProvidedContext {
    kubeconfig: string;
    auditLog: string;
  }
}

export default async function setup(project: TestProject) {
  // The operator tests run the operator as it ships (test/setup/operator-env.ts): build it once per run.
  await buildDist();
  const out = execFileSync("bash", [CLUSTER, "up"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  const kubeconfig = /export KUBECONFIG=(\S+)/.exec(out)?.[1];
  if (!kubeconfig) throw new Error(`hack/cluster.sh up printed no KUBECONFIG: ${out}`);
  const env = Object.fromEntries(
    readFileSync(join(ROOT, ".cache", "cluster", "env"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]),
  );
  process.env.KUBECONFIG = kubeconfig;
  const clients = makeClients(loadKubeConfig(kubeconfig));
  await applyCrds(clients.custom);
  // The chart's admission policy for worker tokens, as a cluster with Vigil installed has it.
  for (const o of workerTokenPolicy()) await serverSideApply(clients.objects, o);
  project.provide("kubeconfig", kubeconfig);
  project.provide("auditLog", env.VIGIL_AUDIT_LOG ?? join(ROOT, ".cache", "cluster", "audit.log"));
  return () => {
    if (process.env.VIGIL_KEEP_CLUSTER !== "1") execFileSync("bash", [CLUSTER, "down"], { stdio: "inherit" });
  };
}
