// How a worker pod reads its cameras' credentials: not as itself (the shared worker ServiceAccount reads no
// Secrets) but as its own ServiceAccount (own-identity.ts), which the operator binds to exactly the Secrets of the
// cameras assigned to this worker.
import { CoreV1Api, type KubeConfig, type V1Secret } from "@kubernetes/client-node";
import { statusCode, withSignal } from "../operator/kube/client.ts";
import { createOwnIdentity, type OwnIdentity } from "./own-identity.ts";

/** A read is one small object: far longer means a dead connection, which must not hold the camera's events. */
const REQUEST_TIMEOUT_MS = 10_000;

export type SecretReader = { read(name: string): Promise<V1Secret> };

export function createSecretReader(
  kc: KubeConfig,
  namespace: string,
  podName: string,
  identity: OwnIdentity = createOwnIdentity(kc, namespace, podName),
): SecretReader {
  return {
    async read(name) {
      for (let attempt = 0; ; attempt++) {
        const client = await identity.client(CoreV1Api); // a refused token request is final: the policy or RBAC said no
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
          if (code === 401) identity.invalidate();
          else await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
        }
      }
    },
  };
}
