// Where a camera's webhook comes from: the Secret that `spec.alarm.webhookSecretRef` names, in the camera's
// namespace, with keys `url` (the endpoint) and `secret` (the Standard Webhooks signing key, whsec_…). Two sources
// behind one interface: the apiserver in a cluster, the manifests file under `vigil up`. Neither ever puts the url or
// the secret in a reason: reasons go into logs, conditions and Events.
import { createHash } from "node:crypto";
import type { CoreV1Api } from "@kubernetes/client-node";
import { apiError, statusCode, withSignal } from "../operator/kube/client.ts";
import { parseSigningSecret, type SigningKey } from "./webhook/sign.ts";

export type WebhookTarget = {
  url: string;
  secret: SigningKey;
  /** Names this (Secret, url) pair for `AlarmRecords.disableEndpoint`: a new url is a new endpoint, enabled again. */
  endpoint: string;
};
export type WebhookLookup = WebhookTarget | { missing: string };

export interface WebhookSecretSource {
  get(namespace: string, name: string): Promise<WebhookLookup>;
}

export const URL_KEY = "url";
export const SECRET_KEY = "secret";

/** The endpoint key: the Secret and a digest of the url (the url itself may carry a token, so it is not stored). */
export function endpointKey(namespace: string, name: string, url: string): string {
  return `${namespace}/${name}#${createHash("sha256").update(url).digest("hex").slice(0, 16)}`;
}

/** A Secret's decoded keys as a target, or what is wrong with them. */
export function resolveTarget(namespace: string, name: string, data: Record<string, string>): WebhookLookup {
  const where = `Secret ${namespace}/${name}`;
  const url = data[URL_KEY]?.trim();
  const secret = data[SECRET_KEY]?.trim();
  const absent = [URL_KEY, SECRET_KEY].filter((k) => !data[k]?.trim());
  if (absent.length) return { missing: `${where} has no key ${absent.join(" and no key ")}` };
  let u: URL;
  try {
    u = new URL(url as string);
  } catch {
    return { missing: `${where}: key ${URL_KEY} is not a URL` };
  }
  if (u.protocol !== "https:" && u.protocol !== "http:")
    return { missing: `${where}: key ${URL_KEY} must be an http or https URL, is ${u.protocol.replace(/:$/, "")}` };
  try {
    return {
      url: u.href,
      secret: parseSigningSecret(secret as string),
      endpoint: endpointKey(namespace, name, u.href),
    };
  } catch (err) {
    return { missing: `${where}: key ${SECRET_KEY}: ${(err as Error).message.replace(/^signing secret: /, "")}` };
  }
}

/**
 * From the apiserver (CoreV1Api readNamespacedSecret), each answer kept for `ttlMs`: a camera with many alarms
 * reads its Secret once per 10 s, and a fixed Secret is picked up within that. A failed read that may be transient
 * (no answer, 5xx) is not kept, so the next alarm asks again.
 */
export function kubeWebhookSecrets(
  core: CoreV1Api,
  opts: { ttlMs?: number; now?: () => number; timeoutMs?: number } = {},
): WebhookSecretSource {
  const ttlMs = opts.ttlMs ?? 10_000;
  const now = opts.now ?? Date.now;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const cache = new Map<string, { at: number; value: WebhookLookup }>();
  const inFlight = new Map<string, Promise<WebhookLookup>>();

  async function read(namespace: string, name: string): Promise<{ value: WebhookLookup; keep: boolean }> {
    const where = `Secret ${namespace}/${name}`;
    try {
      const s = await core.readNamespacedSecret({ name, namespace }, withSignal(AbortSignal.timeout(timeoutMs)));
      const data = Object.fromEntries(
        Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]),
      );
      return { value: resolveTarget(namespace, name, data), keep: true };
    } catch (err) {
      const code = statusCode(err);
      if (code === 404) return { value: { missing: `${where} not found` }, keep: true };
      if (code === 403)
        return { value: { missing: `${where}: not allowed to read it (${apiError(err)})` }, keep: true };
      return { value: { missing: `${where}: could not be read: ${apiError(err)}` }, keep: false };
    }
  }

  return {
    get(namespace, name) {
      const k = `${namespace}/${name}`;
      const hit = cache.get(k);
      if (hit && now() - hit.at < ttlMs) return Promise.resolve(hit.value);
      let p = inFlight.get(k);
      if (!p) {
        p = read(namespace, name)
          .then(({ value, keep }) => {
            if (keep) cache.set(k, { at: now(), value });
            else cache.delete(k);
            return value;
          })
          .finally(() => inFlight.delete(k));
        inFlight.set(k, p);
      }
      return p;
    },
  };
}

/** From the Secrets in single-host manifests (worker/manifests.ts `secrets`, keyed `<namespace>/<name>`). */
export function staticWebhookSecrets(secrets: ReadonlyMap<string, Record<string, string>>): WebhookSecretSource {
  return {
    async get(namespace, name) {
      const data = secrets.get(`${namespace}/${name}`);
      if (!data) return { missing: `Secret ${namespace}/${name} is not in the manifests` };
      return resolveTarget(namespace, name, data);
    },
  };
}
