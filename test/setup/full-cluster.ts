// vitest globalSetup of the e2e project: the simulated GPU cluster (`hack/cluster.sh up --full`: etcd, kube-apiserver,
// kube-scheduler, kube-controller-manager, one kwok per node), with Vigil's CRDs installed.
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { buildDist } from "../../hack/build.ts";
import { loadKubeConfig, makeClients } from "../../operator/kube/client.ts";
import { applyCrds } from "../../operator/kube/crds.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const CLUSTER = join(ROOT, "hack", "cluster.sh");

declare module "vitest" {
  export interface ProvidedContext {
    /** The full cluster's admin kubeconfig (.cache/cluster-full/kubeconfig). */
    fullKubeconfig: string;
  }
}

export default async function setup(project: TestProject) {
  // The process kubelet runs dist/vigil.js, as the image does: build it once per run.
  await buildDist();
  const out = execFileSync("bash", [CLUSTER, "up", "--full"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
  });
  const kubeconfig = /export KUBECONFIG=(\S+)/.exec(out)?.[1];
  if (!kubeconfig) throw new Error(`hack/cluster.sh up --full printed no KUBECONFIG: ${out}`);
  await applyCrds(makeClients(loadKubeConfig(kubeconfig)).custom);
  project.provide("fullKubeconfig", kubeconfig);
  return () => {
    if (process.env.VIGIL_KEEP_CLUSTER !== "1") execFileSync("bash", [CLUSTER, "down", "--full"], { stdio: "inherit" });
  };
}
