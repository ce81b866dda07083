// A worker pod's own identity: not the shared worker ServiceAccount it runs as (which reads no Secrets and writes no
// Lease), but a short-lived token of its own ServiceAccount, named like the pod, which the operator binds to exactly
// the Secrets of this worker's cameras and to this worker's Lease (operator/controllers/workload.ts workerIdentity).
// The chart's ValidatingAdmissionPolicy lets a pod request a token only for the ServiceAccount named like itself.
// One token serves the Secret reader and the Lease renewer.
import { type ApiConstructor, type ApiType, CoreV1Api, type KubeConfig } from "@kubernetes/client-node";
import { kubeConfigWithToken, withSignal } from "../operator/kube/client.ts";

/** The shortest lifetime the TokenRequest API grants; renewed after 80 % of it. */
const TOKEN_SECONDS = 600;
/** A token request is one small object: far longer means a dead connection. */
const REQUEST_TIMEOUT_MS = 10_000;

export type OwnIdentity = {
  /** An API client authenticated as this worker's own ServiceAccount; the token is renewed before it expires. */
  client<T extends ApiType>(api: ApiConstructor<T>): Promise<T>;
  /** The apiserver refused the token (401: its ServiceAccount was recreated): the next call asks for a new one. */
  invalidate(): void;
};

export function createOwnIdentity(
  kc: KubeConfig,
  namespace: string,
  podName: string,
  now: () => number = Date.now,
): OwnIdentity {
  const core = kc.makeApiClient(CoreV1Api);
  let current: { kc: KubeConfig; renewAt: number; clients: Map<unknown, ApiType> } | undefined;
  let pending: Promise<NonNullable<typeof current>> | undefined;

  async function mint(): Promise<NonNullable<typeof current>> {
    const tr = await core.createNamespacedServiceAccountToken(
      { name: podName, namespace, body: { spec: { audiences: [], expirationSeconds: TOKEN_SECONDS } } },
      withSignal(AbortSignal.timeout(REQUEST_TIMEOUT_MS)),
    );
    const token = tr.status?.token;
    if (!token) throw new Error(`no token for ServiceAccount ${podName}`);
    current = { kc: kubeConfigWithToken(kc, podName, token), renewAt: now() + TOKEN_SECONDS * 800, clients: new Map() };
    return current;
  }

  const fresh = (): Promise<NonNullable<typeof current>> => {
    if (current && now() < current.renewAt) return Promise.resolve(current);
    pending ??= mint().finally(() => {
      pending = undefined;
    });
    return pending;
  };

  return {
    async client<T extends ApiType>(api: ApiConstructor<T>): Promise<T> {
      const own = await fresh();
      let c = own.clients.get(api) as T | undefined;
      if (!c) {
        c = own.kc.makeApiClient(api);
        own.clients.set(api, c);
      }
      return c;
    },
    invalidate() {
      current = undefined;
    },
  };
}
