// The volume plan (pure): each pod volume becomes a host directory under the kubelet's state dir, and each
// volumeMount a bind mount of it (or of its subPath) at the real mountPath. emptyDir: a fresh directory per pod;
// persistentVolumeClaim: the path of the hostPath PersistentVolume it is bound to, or else one directory per claim,
// shared by every pod that mounts it (ReadWriteMany, as a test needs it; pod-runner.ts resolves which); secret, configMap, downwardAPI and projected: files written by renderFiles, mounted read-only (the kubelet
// mounts them read-only too). When the pod has no ServiceAccount volume (a cluster without the ServiceAccount
// admission plugin) and does not opt out, the one that plugin would add is added here.
import { join, normalize } from "node:path";
import type { V1Container, V1KeyToPath, V1Pod, V1Volume } from "@kubernetes/client-node";
import { ContainerConfigError, fieldValue } from "./env.ts";

export const SERVICE_ACCOUNT_MOUNT = "/var/run/secrets/kubernetes.io/serviceaccount";
/** What the ServiceAccount admission plugin sets (3607 s: an hour plus 7 s, so a stale token is noticed). */
const DEFAULT_TOKEN_SECONDS = 3607;
const AUTO_SA_VOLUME = "kube-api-access-process-kubelet";

export type FileSource =
  | { kind: "secret" | "configMap"; name: string; items?: V1KeyToPath[]; optional: boolean; mode: number }
  | { kind: "token"; path: string; audience?: string; expirationSeconds: number; mode: number }
  | { kind: "field"; path: string; fieldPath: string; mode: number };

export type PlannedVolume =
  | { name: string; kind: "emptyDir"; hostDir: string }
  | { name: string; kind: "pvc"; hostDir: string; claimName: string; readOnly: boolean }
  | { name: string; kind: "files"; hostDir: string; sources: FileSource[] };

export type Mount = { source: string; target: string; readOnly: boolean };

export type Layout = {
  /** This pod's own directory (emptyDirs and rendered files live below it). */
  podDir: string;
  /** The directory standing for a PersistentVolumeClaim in the pod's namespace. */
  claimDir: (claimName: string) => string;
};

const DEFAULT_MODE = 0o644;

/** The pod's volumes, with the ServiceAccount volume added when the admission plugin did not add one. */
export function podVolumes(pod: V1Pod, layout: Layout): PlannedVolume[] {
  return allVolumes(pod).map((v) => planVolume(v, layout));
}

function allVolumes(pod: V1Pod): V1Volume[] {
  const vols = pod.spec?.volumes ?? [];
  return needsServiceAccountVolume(pod) ? [...vols, serviceAccountVolume()] : vols;
}

function needsServiceAccountVolume(pod: V1Pod): boolean {
  if (pod.spec?.automountServiceAccountToken === false) return false;
  return !(pod.spec?.containers ?? []).some((c) =>
    (c.volumeMounts ?? []).some((m) => cleanPath(m.mountPath) === SERVICE_ACCOUNT_MOUNT),
  );
}

/** The projected volume kube-apiserver's ServiceAccount admission plugin injects (plugin/pkg/admission/serviceaccount). */
export function serviceAccountVolume(): V1Volume {
  return {
    name: AUTO_SA_VOLUME,
    projected: {
      defaultMode: DEFAULT_MODE,
      sources: [
        { serviceAccountToken: { path: "token", expirationSeconds: DEFAULT_TOKEN_SECONDS } },
        { configMap: { name: "kube-root-ca.crt", items: [{ key: "ca.crt", path: "ca.crt" }] } },
        { downwardAPI: { items: [{ path: "namespace", fieldRef: { fieldPath: "metadata.namespace" } }] } },
      ],
    },
  };
}

function planVolume(v: V1Volume, layout: Layout): PlannedVolume {
  const hostDir = join(layout.podDir, "volumes", safeName(v.name));
  if (v.emptyDir) return { name: v.name, kind: "emptyDir", hostDir };
  if (v.persistentVolumeClaim) {
    const claimName = v.persistentVolumeClaim.claimName;
    return {
      name: v.name,
      kind: "pvc",
      hostDir: layout.claimDir(claimName),
      claimName,
      readOnly: v.persistentVolumeClaim.readOnly === true,
    };
  }
  if (v.secret) {
    const mode = v.secret.defaultMode ?? DEFAULT_MODE;
    const name = v.secret.secretName ?? "";
    return { name: v.name, kind: "files", hostDir, sources: [keyed("secret", name, v.secret, mode)] };
  }
  if (v.configMap) {
    const mode = v.configMap.defaultMode ?? DEFAULT_MODE;
    return {
      name: v.name,
      kind: "files",
      hostDir,
      sources: [keyed("configMap", v.configMap.name ?? "", v.configMap, mode)],
    };
  }
  if (v.downwardAPI) {
    const mode = v.downwardAPI.defaultMode ?? DEFAULT_MODE;
    return { name: v.name, kind: "files", hostDir, sources: fieldFiles(v.downwardAPI.items ?? [], mode) };
  }
  if (v.projected) {
    const mode = v.projected.defaultMode ?? DEFAULT_MODE;
    const sources = (v.projected.sources ?? []).flatMap((s): FileSource[] => {
      if (s.secret) return [keyed("secret", s.secret.name ?? "", s.secret, mode)];
      if (s.configMap) return [keyed("configMap", s.configMap.name ?? "", s.configMap, mode)];
      if (s.downwardAPI) return fieldFiles(s.downwardAPI.items ?? [], mode);
      if (s.serviceAccountToken) {
        const t = s.serviceAccountToken;
        return [
          {
            kind: "token",
            path: t.path,
            ...(t.audience ? { audience: t.audience } : {}),
            expirationSeconds: t.expirationSeconds ?? 3600,
            // The kubelet writes a token 0600, owned by the pod's user (renderFiles' owner rule), whatever defaultMode.
            mode: 0o600,
          },
        ];
      }
      throw new ContainerConfigError(`volume ${v.name}: this projected source is not supported by the process kubelet`);
    });
    return { name: v.name, kind: "files", hostDir, sources };
  }
  throw new ContainerConfigError(`volume ${v.name}: this volume type is not supported by the process kubelet`);
}

const keyed = (
  kind: "secret" | "configMap",
  name: string,
  src: { items?: V1KeyToPath[]; optional?: boolean },
  mode: number,
): FileSource => ({ kind, name, ...(src.items ? { items: src.items } : {}), optional: src.optional === true, mode });

function fieldFiles(items: { path: string; fieldRef?: { fieldPath: string }; mode?: number }[], mode: number) {
  return items.map((i): FileSource => {
    if (!i.fieldRef)
      throw new ContainerConfigError(`downwardAPI ${i.path}: only fieldRef is supported by the process kubelet`);
    return { kind: "field", path: i.path, fieldPath: i.fieldRef.fieldPath, mode: i.mode ?? mode };
  });
}

/** The bind mounts for one container, in mount order (a parent path before the paths inside it). */
export function containerMounts(pod: V1Pod, c: V1Container, volumes: PlannedVolume[]): Mount[] {
  const byName = new Map(volumes.map((v) => [v.name, v]));
  const mounts = [...(c.volumeMounts ?? [])];
  if (needsServiceAccountVolume(pod)) mounts.push({ name: AUTO_SA_VOLUME, mountPath: SERVICE_ACCOUNT_MOUNT });
  return mounts
    .map((m): Mount => {
      const v = byName.get(m.name);
      if (!v) throw new ContainerConfigError(`volumeMount ${m.mountPath}: no volume named ${m.name}`);
      if (m.subPathExpr) throw new ContainerConfigError(`volumeMount ${m.mountPath}: subPathExpr is not supported`);
      if (!m.mountPath.startsWith("/"))
        throw new ContainerConfigError(`volumeMount ${m.name}: mountPath ${m.mountPath} is not absolute`);
      const sub = m.subPath ? relativeInside(m.subPath, `volumeMount ${m.mountPath}: subPath`) : "";
      return {
        source: sub ? join(v.hostDir, sub) : v.hostDir,
        target: cleanPath(m.mountPath),
        readOnly: m.readOnly === true || v.kind === "files" || (v.kind === "pvc" && v.readOnly),
      };
    })
    .sort((a, b) => depth(a.target) - depth(b.target));
}

/** An absolute path without `.`, `..`, doubled or trailing slashes. */
const cleanPath = (p: string) => normalize(p).replace(/(.)\/+$/, "$1");

const depth = (p: string) => p.split("/").filter(Boolean).length;

export type FileSpec = { path: string; content: Buffer; mode: number; ownedByUser: boolean };

/** Secret and ConfigMap data (bytes) by name, and tokens by their path in the volume. */
export type FileInputs = {
  secrets: ReadonlyMap<string, Record<string, Buffer>>;
  configMaps: ReadonlyMap<string, Record<string, Buffer>>;
  tokens: ReadonlyMap<string, string>;
};

/** The files of a secret/configMap/downwardAPI/projected volume, as the kubelet would write them. */
export function renderFiles(pod: V1Pod, v: PlannedVolume, inputs: FileInputs): FileSpec[] {
  if (v.kind !== "files") return [];
  const out: FileSpec[] = [];
  const add = (path: string, content: Buffer, mode: number, ownedByUser = false) =>
    out.push({ path: relativeInside(path, `volume ${v.name}: path`), content, mode, ownedByUser });
  for (const s of v.sources) {
    if (s.kind === "token") {
      const token = inputs.tokens.get(s.path);
      if (token === undefined) throw new ContainerConfigError(`volume ${v.name}: no token for ${s.path}`);
      add(s.path, Buffer.from(token), s.mode, true);
    } else if (s.kind === "field") {
      const value = fieldValue(pod, s.fieldPath);
      if (value === undefined) throw new ContainerConfigError(`volume ${v.name}: fieldRef ${s.fieldPath} has no value`);
      add(s.path, Buffer.from(value), s.mode);
    } else {
      const label = s.kind === "secret" ? "Secret" : "ConfigMap";
      const data = (s.kind === "secret" ? inputs.secrets : inputs.configMaps).get(s.name);
      if (!data) {
        if (s.optional) continue;
        throw new ContainerConfigError(`volume ${v.name}: ${label} "${s.name}" not found`);
      }
      const items: V1KeyToPath[] = s.items ?? Object.keys(data).map((key) => ({ key, path: key }));
      for (const item of items) {
        const content = data[item.key];
        if (content === undefined) {
          if (s.optional) continue;
          throw new ContainerConfigError(`volume ${v.name}: couldn't find key ${item.key} in ${label} ${s.name}`);
        }
        add(item.path, content, item.mode ?? s.mode);
      }
    }
  }
  return out;
}

/** The tokens a volume needs from the TokenRequest API. */
export const tokenSources = (v: PlannedVolume) =>
  v.kind === "files" ? v.sources.filter((s): s is Extract<FileSource, { kind: "token" }> => s.kind === "token") : [];

/** The Secrets and ConfigMaps the volumes read. */
export function volumeReferences(volumes: PlannedVolume[]): { secrets: Set<string>; configMaps: Set<string> } {
  const secrets = new Set<string>();
  const configMaps = new Set<string>();
  for (const v of volumes)
    if (v.kind === "files")
      for (const s of v.sources) {
        if (s.kind === "secret") secrets.add(s.name);
        if (s.kind === "configMap") configMaps.add(s.name);
      }
  return { secrets, configMaps };
}

/** A relative path that stays inside its directory (no absolute path, no `..`), as the API validates it. */
function relativeInside(p: string, what: string): string {
  const n = normalize(p);
  if (p.startsWith("/") || n === ".." || n.startsWith("../") || n === ".")
    throw new ContainerConfigError(`${what} ${p} must be a relative path inside the volume`);
  return n;
}

/** A volume or pod name as one path segment (they are DNS labels already; this only guards the state dir). */
export const safeName = (s: string) => s.replace(/[^A-Za-z0-9._-]/g, "_");
