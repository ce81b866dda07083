// Integration-test access to the run's control plane (started by the globalSetup in cluster.ts).
import { inject } from "vitest";
import { type Clients, loadKubeConfig, makeClients } from "../../operator/kube/client.ts";

export * from "./operator-env.ts";

export function admin(): Clients {
  return makeClients(loadKubeConfig(inject("kubeconfig")));
}

type EnvVar = {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string }; secretKeyRef?: { name: string; key: string; optional?: boolean } };
};

/**
 * A container's environment as the kubelet resolves it: plain values, fieldRefs from the pod's metadata, and
 * secretKeyRefs from Secrets (a missing optional key is left unset, a missing required one is an error).
 */
export function resolveEnv(
  env: EnvVar[],
  fields: Record<string, string>,
  secrets: Record<string, Record<string, string>> = {},
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of env) {
    const ref = e.valueFrom?.secretKeyRef;
    const field = e.valueFrom?.fieldRef?.fieldPath;
    const v = e.value ?? (field ? fields[field] : ref ? secrets[ref.name]?.[ref.key] : undefined);
    if (v === undefined && ref && !ref.optional) throw new Error(`${e.name}: Secret ${ref.name} has no key ${ref.key}`);
    if (v === undefined && field) throw new Error(`${e.name}: no field ${field}`);
    if (v !== undefined) out[e.name] = v;
  }
  return out;
}
