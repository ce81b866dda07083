// How a worker pod reads its cameras' credentials: not as itself (the shared worker ServiceAccount reads no
// Secrets) but with a short-lived token of its own ServiceAccount, named like the pod, which the operator binds
// to exactly the Secrets of the cameras assigned to this worker (operator/controllers/workload.ts workerIdentity).
// The chart's ValidatingAdmissionPolicy lets a pod request a token only for the ServiceAccount named like itself.
import { CoreV1Api, type KubeConfig, type V1Secret } from "@kubernetes/client-node";
import { kubeConfigWithToken, statusCode, withSignal } from "../operator/kube/client.ts";

/** The shortest lifetime the TokenRequest API grants; renewed after 80 % of it. */
const TOKEN_SECONDS = 600;
/** A read is one small object: far longer means a dead connection, which must not hold the camera's events. */
const REQUEST_TIMEOUT_MS = 10_000;

export type SecretReader = { read(name: string): Promise<V1Secret> };

export function createSecretReader(
  kc: KubeConfig,
  namespace: string,
  podName: string,
  now: () => number = Date.now,
): SecretReader {
  const core = kc.makeApiClient(CoreV1Api);
  let current: { api: CoreV1Api; renewAt: number } | undefined;
  let pending: Promise<CoreV1Api> | undefined;

  async function mint(): Promise<CoreV1Api> {
    const tr = await core.createNamespacedServiceAccountToken(
      { name: podName, namespace, body: { spec: { audiences: [], expirationSeconds: TOKEN_SECONDS } } },
      withSignal(AbortSignal.timeout(REQUEST_TIMEOUT_MS)),
    );
    const token = tr.status?.token;
    if (!token) throw new Error(`no token for ServiceAccount ${podName}`);
    const own = kubeConfigWithToken(kc, podName, token);
    const api = own.makeApiClient(CoreV1Api);
    current = { api, renewAt: now() + TOKEN_SECONDS * 800 };
    return api;
  }

  const api = (): Promise<CoreV1Api> => {
    if (current && now() < current.renewAt) return Promise.resolve(current.api);
    pending ??= mint().finally(() => {
      pending = undefined;
    });
    return pending;
  };

  return {
    async read(name) {
      for (let attempt = 0; ; attempt++) {
        const client = await api(); // a refused token request is final: the policy or RBAC said no
        try {
          return await client.readNamespacedSecret(
            { name, namespace },
            withSignal(AbortSignal.timeout(REQUEST_TIMEOUT_MS)),
          );
        } catch (err) {
          const code = statusCode(err);
          // 401: the token was revoked (its ServiceAccount recreated): a new one. 403: the operator writes the Role
          // just before it gives us the camera, and the apiserver's RBAC cache follows within moments.
          if ((code !== 401 && code !== 403) || attempt >= 4) throw err;
          if (code === 401) current = undefined;
          else await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
        }
      }
    },
  };
}
