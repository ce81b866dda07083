// A pod's volumes on the host (I/O around volumes.ts): directories made and owned by the pod's user, Secret,
// ConfigMap, downward API and token files written (each by rename, so a process never reads half a file), and the
// ServiceAccount tokens requested from the TokenRequest API, bound to the pod, and renewed at 80% of their lifetime
// as the kubelet does.
import { chmodSync, chownSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { CoreV1Api, V1Pod } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { apiError, isNotFound } from "../../../operator/kube/client.ts";
import {
  type FileSource,
  type Mount,
  type PlannedVolume,
  renderFiles,
  tokenSources,
  volumeReferences,
} from "./volumes.ts";

export type Bytes = Map<string, Record<string, Buffer>>;
export type Sources = { secrets: Bytes; configMaps: Bytes };

/** The cluster CA, published by the controller-manager as kube-root-ca.crt; the plain cluster has none. */
export const ROOT_CA_CONFIGMAP = "kube-root-ca.crt";

/** Reads the named Secrets and ConfigMaps of a namespace; names not found are left out (the caller decides). */
export async function readSources(
  core: CoreV1Api,
  namespace: string,
  refs: { secrets: Set<string>; configMaps: Set<string> },
  caPem: Buffer,
): Promise<Sources> {
  const secrets: Bytes = new Map();
  const configMaps: Bytes = new Map();
  const b64 = (d: Record<string, string> | undefined) =>
    Object.fromEntries(Object.entries(d ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64")]));
  const notFound = (err: unknown) => {
    if (!isNotFound(err)) throw err;
    return undefined;
  };
  await Promise.all([
    ...[...refs.secrets].map(async (name) => {
      const s = await core.readNamespacedSecret({ name, namespace }).catch(notFound);
      if (s) secrets.set(name, b64(s.data));
    }),
    ...[...refs.configMaps].map(async (name) => {
      const cm = await core.readNamespacedConfigMap({ name, namespace }).catch(notFound);
      if (cm)
        configMaps.set(name, {
          ...Object.fromEntries(Object.entries(cm.data ?? {}).map(([k, v]) => [k, Buffer.from(v)])),
          ...b64(cm.binaryData),
        });
      // Without a controller-manager nobody publishes it; the kubeconfig's CA is the same certificate.
      else if (name === ROOT_CA_CONFIGMAP) configMaps.set(name, { "ca.crt": caPem });
    }),
  ]);
  return { secrets, configMaps };
}

export const asText = (m: Bytes): Map<string, Record<string, string>> =>
  new Map(
    [...m].map(([name, data]) => [
      name,
      Object.fromEntries(Object.entries(data).map(([k, v]) => [k, v.toString("utf8")])),
    ]),
  );

type TokenSource = Extract<FileSource, { kind: "token" }>;

/** A token for the pod's ServiceAccount, bound to the pod (so it dies with it, and names it to the apiserver). */
export async function requestToken(
  core: CoreV1Api,
  pod: V1Pod,
  src: TokenSource,
): Promise<{ token: string; lifetimeMs: number }> {
  const namespace = pod.metadata?.namespace ?? "default";
  const res = await core.createNamespacedServiceAccountToken({
    name: pod.spec?.serviceAccountName || "default",
    namespace,
    body: {
      spec: {
        audiences: src.audience ? [src.audience] : [],
        expirationSeconds: src.expirationSeconds,
        boundObjectRef: { apiVersion: "v1", kind: "Pod", name: pod.metadata?.name, uid: pod.metadata?.uid },
      },
    },
  });
  const token = res.status?.token;
  if (!token) throw new Error("TokenRequest returned no token");
  const expires = res.status?.expirationTimestamp ? new Date(res.status.expirationTimestamp).getTime() : undefined;
  return { token, lifetimeMs: expires ? expires - Date.now() : src.expirationSeconds * 1000 };
}

export type Owner = { uid: number; gid: number };

function writeAtomic(path: string, content: Buffer, mode: number, owner: Owner | undefined): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode); // writeFileSync's mode passes through the umask
  if (owner) chownSync(tmp, owner.uid, owner.gid);
  renameSync(tmp, path);
}

/** Makes the pod's volumes on the host; stop() ends the token renewals. */
export class PodVolumes {
  private timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  private readonly core: CoreV1Api;
  private readonly volumes: PlannedVolume[];
  private readonly owner: Owner;
  private readonly caPem: Buffer;
  private readonly log: Logger;

  constructor(core: CoreV1Api, volumes: PlannedVolume[], owner: Owner, caPem: Buffer, log: Logger) {
    this.core = core;
    this.volumes = volumes;
    this.owner = owner;
    this.caPem = caPem;
    this.log = log;
  }

  async prepare(pod: V1Pod): Promise<void> {
    const ns = pod.metadata?.namespace ?? "default";
    const sources = await readSources(this.core, ns, volumeReferences(this.volumes), this.caPem);
    for (const v of this.volumes) {
      if (v.kind !== "files") {
        // emptyDir: 0777 as the kubelet makes it; both owned by the pod's user and its fsGroup.
        mkdirSync(v.hostDir, { recursive: true });
        chmodSync(v.hostDir, 0o777);
        chownSync(v.hostDir, this.owner.uid, this.owner.gid);
        continue;
      }
      const tokens = new Map<string, string>();
      for (const t of tokenSources(v)) {
        const { token, lifetimeMs } = await requestToken(this.core, pod, t);
        tokens.set(t.path, token);
        this.renewLater(pod, v, t, lifetimeMs);
      }
      mkdirSync(v.hostDir, { recursive: true, mode: 0o755 });
      chmodSync(v.hostDir, 0o755);
      for (const f of renderFiles(pod, v, { ...sources, tokens }))
        writeAtomic(
          join(v.hostDir, f.path),
          f.content,
          f.mode,
          f.ownedByUser ? this.owner : { uid: 0, gid: this.owner.gid },
        );
    }
  }

  /** subPath sources that do not exist yet are made as directories (the kubelet does so too). */
  ensureMountSources(mounts: Mount[]): void {
    for (const m of mounts)
      if (!existsSync(m.source)) {
        mkdirSync(m.source, { recursive: true, mode: 0o777 });
        chownSync(m.source, this.owner.uid, this.owner.gid);
      }
  }

  private renewLater(pod: V1Pod, v: PlannedVolume, t: TokenSource, lifetimeMs: number): void {
    if (this.stopped) return;
    const timer = setTimeout(
      async () => {
        this.timers.delete(timer);
        try {
          const { token, lifetimeMs: next } = await requestToken(this.core, pod, t);
          if (this.stopped) return;
          writeAtomic(join(v.hostDir, t.path), Buffer.from(token), t.mode, this.owner);
          this.renewLater(pod, v, t, next);
        } catch (err) {
          this.log.warn({ pod: pod.metadata?.name, err: apiError(err) }, "token renewal failed; retrying in 10 s");
          this.renewLater(pod, v, t, 12_500);
        }
      },
      Math.max(1000, lifetimeMs * 0.8),
    );
    timer.unref();
    this.timers.add(timer);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /** Removes the pod's own volume directories (claims are kept, as a PersistentVolume outlives its pods). */
  remove(podDir: string): void {
    this.stop();
    rmSync(join(podDir, "volumes"), { recursive: true, force: true });
  }
}
