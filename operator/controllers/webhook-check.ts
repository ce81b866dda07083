// The camera's WebhookReady condition: does the Secret its alarm.webhookSecretRef names exist and hold a usable
// `url` and `secret` (whsec_…)? Said on the camera, so `kubectl describe cam` shows why its alarms wait, before
// any alarm does. The operator only reads the Secret (it holds `get`, never list or watch), so the answer is
// cached for a while (a good answer, 10 s), and a camera whose Secret is not ready is looked at again after
// RECHECK_MS.
import type { CoreV1Api } from "@kubernetes/client-node";
import { parseSigningSecret } from "../../alarms/webhook/sign.ts";
import { apiError, isNotFound } from "../kube/client.ts";
import type { ConditionInput } from "../kube/conditions.ts";

export const WEBHOOK_RECHECK_MS = 30_000;
const CACHE_MS = 10_000;

export function createWebhookCheck(core: CoreV1Api) {
  const cache = new Map<string, { at: number; cond: ConditionInput }>();

  async function read(namespace: string, name: string): Promise<ConditionInput> {
    const ref = `Secret ${namespace}/${name}`;
    let data: Record<string, string> | undefined;
    try {
      data = (await core.readNamespacedSecret({ name, namespace })).data ?? {};
    } catch (err) {
      if (isNotFound(err))
        return bad("WebhookSecretMissing", `${ref} (alarm.webhookSecretRef) does not exist; alarms wait for it`);
      return {
        type: "WebhookReady",
        status: "Unknown",
        reason: "SecretUnreadable",
        message: `${ref}: ${apiError(err)}`,
      };
    }
    const text = (k: string) => (data?.[k] ? Buffer.from(data[k] as string, "base64").toString("utf8") : "");
    const url = text("url");
    const secret = text("secret");
    if (!url) return bad("WebhookSecretInvalid", `${ref} has no key "url" (the endpoint); alarms wait for it`);
    if (!/^https?:\/\//.test(url) || !URL.canParse(url))
      return bad("WebhookSecretInvalid", `${ref} key "url" is not an http(s) URL; alarms wait for it`);
    if (!secret)
      return bad("WebhookSecretInvalid", `${ref} has no key "secret" (the whsec_ signing key); alarms wait for it`);
    try {
      parseSigningSecret(secret);
    } catch (err) {
      // The parser's message names what is wrong, never the value.
      return bad("WebhookSecretInvalid", `${ref} key "secret": ${(err as Error).message}; alarms wait for it`);
    }
    return { type: "WebhookReady", status: "True", reason: "SecretFound", message: `${ref} holds url and secret` };
  }

  return {
    /** The condition for a camera's webhook Secret, or undefined when the camera sends no webhook. */
    async condition(namespace: string, secretName: string | undefined): Promise<ConditionInput | undefined> {
      if (!secretName) return undefined;
      const key = `${namespace}/${secretName}`;
      const hit = cache.get(key);
      if (hit && Date.now() - hit.at < CACHE_MS) return hit.cond;
      const cond = await read(namespace, secretName);
      // Only a good answer is kept: a camera waiting for its Secret reads it at each look (every RECHECK_MS).
      if (cond.status === "True") cache.set(key, { at: Date.now(), cond });
      else cache.delete(key);
      return cond;
    },
  };
}

const bad = (reason: string, message: string): ConditionInput => ({
  type: "WebhookReady",
  status: "False",
  reason,
  message,
});
