// Standard Webhooks verification with node:crypto alone, as a receiver of Vigil's alarms would write it (copy it):
// the secret is `whsec_` + base64 of the key; a request is genuine when one of the space-separated `v1,<base64>`
// entries of `webhook-signature` is HMAC-SHA256(key, `${webhook-id}.${webhook-timestamp}.${raw body}`), compared
// in constant time, and its timestamp is within the tolerance of now (a captured request cannot be replayed later).
// Pure. The `standardwebhooks` package checks it in test/unit/demo-webhook-verify.test.ts.
import { createHmac, timingSafeEqual } from "node:crypto";

export type Verified = { ok: true; id: string; timestampSeconds: number } | { ok: false; reason: string };

/** Five minutes either way, as the spec's reference libraries. */
export const TOLERANCE_SECONDS = 300;

export function verifyWebhook(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  rawBody: string | Buffer,
  nowSeconds: number,
  toleranceSeconds = TOLERANCE_SECONDS,
): Verified {
  const header = (name: string) => {
    const v = headers[name];
    return Array.isArray(v) ? v.join(" ") : v;
  };
  const id = header("webhook-id");
  const ts = header("webhook-timestamp");
  const signatures = header("webhook-signature");
  if (!id || !ts || !signatures)
    return { ok: false, reason: "missing webhook-id, webhook-timestamp or webhook-signature" };
  if (!/^\d+$/.test(ts)) return { ok: false, reason: "webhook-timestamp is not whole seconds" };
  const timestampSeconds = Number(ts);
  if (Math.abs(nowSeconds - timestampSeconds) > toleranceSeconds)
    return {
      ok: false,
      reason: `webhook-timestamp is ${nowSeconds - timestampSeconds} s off (tolerance ${toleranceSeconds} s)`,
    };
  if (!secret.startsWith("whsec_")) return { ok: false, reason: "the secret is not in whsec_ form" };
  const key = Buffer.from(secret.slice("whsec_".length), "base64");
  const expected = createHmac("sha256", key).update(`${id}.${ts}.`).update(rawBody).digest();
  for (const entry of signatures.split(" ")) {
    const [version, sig] = entry.split(",", 2);
    if (version !== "v1" || !sig) continue;
    const given = Buffer.from(sig, "base64");
    if (given.length === expected.length && timingSafeEqual(given, expected)) return { ok: true, id, timestampSeconds };
  }
  return { ok: false, reason: "no v1 signature matches" };
}
