// The demo receiver's node:crypto verification against an independent signer, the `standardwebhooks` package.
import { randomBytes } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { verifyWebhook } from "../../hack/demo/verify-webhook.ts";

const secret = `whsec_${randomBytes(32).toString("base64")}`;
const body = JSON.stringify({ type: "alarm.raised", data: { id: "default/lobby:lingering:3:1700000000000" } });
const now = 1_700_000_000;

function signed(id: string, ts: number, payload = body, key = secret) {
  return {
    "webhook-id": id,
    "webhook-timestamp": String(ts),
    "webhook-signature": new Webhook(key).sign(id, new Date(ts * 1000), payload),
  };
}

describe("demo webhook verification (node:crypto)", () => {
  it("accepts what standardwebhooks signs, with the id and time", () => {
    expect(verifyWebhook(secret, signed("msg_abc", now), body, now)).toEqual({
      ok: true,
      id: "msg_abc",
      timestampSeconds: now,
    });
    // Bytes as received, and within the tolerance either way.
    expect(verifyWebhook(secret, signed("msg_abc", now - 299), Buffer.from(body), now).ok).toBe(true);
    expect(verifyWebhook(secret, signed("msg_abc", now + 299), body, now).ok).toBe(true);
  });

  it("finds the matching entry among several (a key rotation sends one per key)", () => {
    const other = `whsec_${randomBytes(32).toString("base64")}`;
    const h = signed("msg_rot", now);
    const old = signed("msg_rot", now, body, other)["webhook-signature"];
    expect(
      verifyWebhook(secret, { ...h, "webhook-signature": `v2,xyz ${old} ${h["webhook-signature"]}` }, body, now),
    ).toMatchObject({ ok: true });
    expect(verifyWebhook(other, h, body, now)).toEqual({ ok: false, reason: "no v1 signature matches" });
  });

  it("rejects a changed body, id or timestamp, a stale or future timestamp and missing headers, saying why", () => {
    const h = signed("msg_abc", now);
    expect(verifyWebhook(secret, h, `${body} `, now)).toEqual({ ok: false, reason: "no v1 signature matches" });
    expect(verifyWebhook(secret, { ...h, "webhook-id": "msg_abd" }, body, now).ok).toBe(false);
    expect(verifyWebhook(secret, { ...h, "webhook-timestamp": String(now + 1) }, body, now).ok).toBe(false);
    expect(verifyWebhook(secret, signed("msg_abc", now - 301), body, now)).toEqual({
      ok: false,
      reason: "webhook-timestamp is 301 s off (tolerance 300 s)",
    });
    expect(verifyWebhook(secret, signed("msg_abc", now + 400), body, now).ok).toBe(false);
    expect(verifyWebhook(secret, { ...h, "webhook-timestamp": "17e8" }, body, now)).toEqual({
      ok: false,
      reason: "webhook-timestamp is not whole seconds",
    });
    expect(verifyWebhook(secret, { "webhook-id": "msg_abc" }, body, now)).toEqual({
      ok: false,
      reason: "missing webhook-id, webhook-timestamp or webhook-signature",
    });
    expect(verifyWebhook(secret.slice(6), h, body, now)).toEqual({
      ok: false,
      reason: "the secret is not in whsec_ form",
    });
  });
});
