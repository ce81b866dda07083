// Integration-test access to the run's control plane (started by the globalSetup in cluster.ts).
import { inject } from "vitest";
import { type Clients, loadKubeConfig, makeClients } from "../../operator/kube/client.ts";

export * from "./operator-env.ts";

export function admin(): Clients {
  return makeClients(loadKubeConfig(inject("kubeconfig")));
}
