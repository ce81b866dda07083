// A container's environment and arguments as the kubelet resolves them (pure: the pod, the container, and the
// Secrets and ConfigMaps it names, already read): envFrom in order, then env, each `$(VAR)` expanded from what is
// defined before it; fieldRefs from the pod. A missing required Secret, ConfigMap or key is an error naming it, as
// the kubelet's CreateContainerConfigError does; values never appear in errors.
import type { V1Container, V1Pod } from "@kubernetes/client-node";

/** Secret data (decoded) and ConfigMap data by name, in the pod's namespace; absent names were not found. */
export type EnvSources = {
  secrets: ReadonlyMap<string, Record<string, string>>;
  configMaps: ReadonlyMap<string, Record<string, string>>;
};

export class ContainerConfigError extends Error {
  override readonly name = "ContainerConfigError";
}

/** The Secrets and ConfigMaps a container's env and envFrom read, to fetch before resolveEnv. */
export function envReferences(c: V1Container): { secrets: Set<string>; configMaps: Set<string> } {
  const secrets = new Set<string>();
  const configMaps = new Set<string>();
  for (const f of c.envFrom ?? []) {
    if (f.secretRef?.name) secrets.add(f.secretRef.name);
    if (f.configMapRef?.name) configMaps.add(f.configMapRef.name);
  }
  for (const e of c.env ?? []) {
    if (e.valueFrom?.secretKeyRef?.name) secrets.add(e.valueFrom.secretKeyRef.name);
    if (e.valueFrom?.configMapKeyRef?.name) configMaps.add(e.valueFrom.configMapKeyRef.name);
  }
  return { secrets, configMaps };
}

/** The downward API's fieldRef paths the process kubelet knows (the kubelet's env subset, plus uid and hostIP). */
export function fieldValue(pod: V1Pod, path: string): string | undefined {
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (m) return (m[1] === "labels" ? pod.metadata?.labels : pod.metadata?.annotations)?.[m[2] ?? ""] ?? "";
  switch (path) {
    case "metadata.name":
      return pod.metadata?.name;
    case "metadata.namespace":
      return pod.metadata?.namespace;
    case "metadata.uid":
      return pod.metadata?.uid;
    case "spec.nodeName":
      return pod.spec?.nodeName;
    case "spec.serviceAccountName":
      return pod.spec?.serviceAccountName ?? "default";
    case "status.podIP":
      return pod.status?.podIP;
    case "status.podIPs":
      return (pod.status?.podIPs ?? []).map((p) => p.ip).join(",") || pod.status?.podIP;
    case "status.hostIP":
      return pod.status?.hostIP;
    default:
      return undefined;
  }
}

// A valid C identifier-ish name, the kubelet's rule for keys imported by envFrom (others are skipped).
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;

/**
 * `$(VAR)` → the value of VAR when defined, left as written otherwise; `$$` → `$` (so `$$(VAR)` is literal), as
 * k8s.io/kubernetes third_party/forked/golang/expansion does.
 */
export function expand(input: string, vars: Readonly<Record<string, string>>): string {
  let out = "";
  for (let i = 0; i < input.length; i++) {
    const ch = input[i];
    if (ch !== "$" || i + 1 >= input.length) {
      out += ch;
      continue;
    }
    const next = input[i + 1];
    if (next === "$") {
      out += "$";
      i++;
    } else if (next === "(") {
      const end = input.indexOf(")", i + 2);
      if (end < 0) {
        out += input.slice(i);
        break;
      }
      const name = input.slice(i + 2, end);
      out += Object.hasOwn(vars, name) ? vars[name] : `$(${name})`;
      i = end;
    } else out += ch;
  }
  return out;
}

/** The container's own variables (envFrom, then env), in the kubelet's order and precedence over `base`. */
export function resolveEnv(
  pod: V1Pod,
  c: V1Container,
  sources: EnvSources,
  base: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const out: Record<string, string> = { ...base };
  for (const f of c.envFrom ?? []) {
    const ref = f.secretRef ?? f.configMapRef;
    if (!ref) continue;
    const kind = f.secretRef ? "Secret" : "ConfigMap";
    const data = (f.secretRef ? sources.secrets : sources.configMaps).get(ref.name ?? "");
    if (!data) {
      if (ref.optional) continue;
      throw new ContainerConfigError(`envFrom: ${kind} "${ref.name}" not found`);
    }
    for (const [k, v] of Object.entries(data)) {
      const name = `${f.prefix ?? ""}${k}`;
      if (ENV_NAME.test(name)) out[name] = v;
    }
  }
  for (const e of c.env ?? []) {
    const v = envValue(pod, e, sources, out);
    if (v !== undefined) out[e.name] = v;
  }
  return out;
}

function envValue(
  pod: V1Pod,
  e: NonNullable<V1Container["env"]>[number],
  sources: EnvSources,
  defined: Record<string, string>,
): string | undefined {
  if (e.value !== undefined) return expand(e.value, defined);
  const from = e.valueFrom;
  if (!from) return "";
  if (from.fieldRef) {
    const v = fieldValue(pod, from.fieldRef.fieldPath);
    if (v === undefined)
      throw new ContainerConfigError(`env ${e.name}: fieldRef ${from.fieldRef.fieldPath} has no value`);
    return v;
  }
  const key = from.secretKeyRef ?? from.configMapKeyRef;
  if (key) {
    const kind = from.secretKeyRef ? "Secret" : "ConfigMap";
    const data = (from.secretKeyRef ? sources.secrets : sources.configMaps).get(key.name ?? "");
    const v = data?.[key.key];
    if (v !== undefined) return v;
    if (key.optional) return undefined;
    throw new ContainerConfigError(
      data
        ? `env ${e.name}: couldn't find key ${key.key} in ${kind} ${pod.metadata?.namespace}/${key.name}`
        : `env ${e.name}: ${kind} "${key.name}" not found`,
    );
  }
  throw new ContainerConfigError(`env ${e.name}: this valueFrom is not supported by the process kubelet`);
}

/** The container's arguments with `$(VAR)` expanded from its environment, as the kubelet expands command and args. */
export const expandArgs = (c: V1Container, env: Readonly<Record<string, string>>): string[] =>
  (c.args ?? []).map((a) => expand(a, env));
