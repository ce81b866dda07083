// Standard Webhooks v1 signing (symmetric): the secret is `whsec_` + base64 of 24–64 random bytes, and each
// attempt is signed as `v1,` + base64(HMAC-SHA256(key, `${webhook-id}.${webhook-timestamp}.${body}`)). Pure; the
// spec's own test vector and the `standardwebhooks` package check it (test/unit/webhook-sign.test.ts).
import { createHash, createHmac, randomBytes } from "node:crypto";
import { inspect } from "node:util";
import type { DeliveryType } from "../messages.ts";

const PREFIX = "whsec_";
/** The spec: "at least 24 bytes (192 bits, 512 maximum)". */
const MIN_KEY_BYTES = 24;
const MAX_KEY_BYTES = 64;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * A parsed signing key. The bytes sit in a private field: neither JSON (pino), util.inspect (console.log) nor a
 * template string shows them.
 */
export class SigningKey {
  readonly #bytes: Buffer;
  constructor(bytes: Buffer) {
    this.#bytes = Buffer.from(bytes);
  }
  get length(): number {
    return this.#bytes.length;
  }
  hmac(parts: (string | Buffer)[]): string {
    const h = createHmac("sha256", this.#bytes);
    for (const p of parts) h.update(p);
    return h.digest("base64");
  }
  toString(): string {
    return "whsec_<redacted>";
  }
  toJSON(): string {
    return "whsec_<redacted>";
  }
  [inspect.custom](): string {
    return "SigningKey(whsec_<redacted>)";
  }
}

/**
 * Parses a `whsec_<base64>` signing secret. Throws an error that says what is wrong with it and never quotes it.
 */
export function parseSigningSecret(secret: string): SigningKey {
  const s = typeof secret === "string" ? secret.trim() : "";
  if (!s.startsWith(PREFIX)) throw new Error("signing secret: must start with whsec_ (the Standard Webhooks form)");
  const b64 = s.slice(PREFIX.length);
  if (!b64 || !BASE64.test(b64))
    throw new Error("signing secret: the part after whsec_ must be standard base64 (A-Z a-z 0-9 + /, = padding)");
  const bytes = Buffer.from(b64, "base64");
  if (bytes.length < MIN_KEY_BYTES || bytes.length > MAX_KEY_BYTES)
    throw new Error(`signing secret: must hold ${MIN_KEY_BYTES} to ${MAX_KEY_BYTES} random bytes, has ${bytes.length}`);
  return new SigningKey(bytes);
}

/** A new random signing secret in the spec's form (32 bytes): for tests, demos and `kubectl create secret`. */
export function generateSigningSecret(): string {
  return `${PREFIX}${randomBytes(32).toString("base64")}`;
}

/** `v1,<base64 signature>` of one attempt. `body` must be the exact bytes sent. */
export function sign(key: SigningKey, webhookId: string, timestampSeconds: number, body: string | Buffer): string {
  if (!Number.isSafeInteger(timestampSeconds))
    throw new Error(`webhook-timestamp: ${timestampSeconds} is not whole seconds`);
  return `v1,${key.hmac([`${webhookId}.${timestampSeconds}.`, body])}`;
}

export type WebhookHeaders = {
  "webhook-id": string;
  "webhook-timestamp": string;
  "webhook-signature": string;
};

export function headers(webhookId: string, timestampSeconds: number, signature: string): WebhookHeaders {
  return {
    "webhook-id": webhookId,
    "webhook-timestamp": String(timestampSeconds),
    "webhook-signature": signature,
  };
}

/**
 * The `webhook-id` of one delivery type of one alarm: `msg_` + 32 base64url characters of
 * SHA-256(`<alarm id>|<type>`), 192 bits. Derived, not stored, so every retry and every replica sends the same
 * id and a receiver can deduplicate on it. Not the raw pair: an alarm id holds `/` and `:`, and both it (a camera
 * name may hold dots) and the type (`alarm.raised`) hold `.`, which the spec forbids in an id because the signed
 * content is `id.timestamp.body`. base64url is header-safe and has no dot.
 */
export function webhookId(alarmId: string, type: DeliveryType): string {
  return `msg_${createHash("sha256").update(`${alarmId}|${type}`).digest("base64url").slice(0, 32)}`;
}
