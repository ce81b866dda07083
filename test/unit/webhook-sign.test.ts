import { inspect } from "node:util";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { DELIVERY_TYPES } from "../../alarms/messages.ts";
import { generateSigningSecret, headers, parseSigningSecret, sign, webhookId } from "../../alarms/webhook/sign.ts";

describe("sign", () => {
  it("matches the Standard Webhooks test vector", () => {
    // The reference library's own vector (standard-webhooks/standard-webhooks, libraries/javascript/src/
    // webhook.test.ts, "sign function works"); the spec document itself gives a signature but not its key.
    const key = parseSigningSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    expect(sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}')).toBe(
      "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    );
  });

  it("agrees with the standardwebhooks package, which verifies it", () => {
    const secret = generateSigningSecret();
    const key = parseSigningSecret(secret);
    const id = webhookId("shop/door:entry:7:1700000000000", "alarm.raised");
    const body = JSON.stringify({ type: "alarm.raised", data: { note: "ünïcødé ✓", n: 1 } });
    const ts = Math.floor(Date.now() / 1000);
    const sig = sign(key, id, ts, Buffer.from(body));
    const wh = new Webhook(secret);
    expect(wh.sign(id, new Date(ts * 1000), body)).toBe(sig);
    expect(wh.verify(body, headers(id, ts, sig))).toEqual(JSON.parse(body));
    // The same bytes as a string or a Buffer sign the same.
    expect(sign(key, id, ts, body)).toBe(sig);
    // Any change to the body, the id, the timestamp or the key fails verification.
    expect(() => wh.verify(`${body} `, headers(id, ts, sig))).toThrow(/No matching signature/);
    expect(() => wh.verify(body, headers(`${id}x`, ts, sig))).toThrow(/No matching signature/);
    expect(() => wh.verify(body, headers(id, ts - 1, sig))).toThrow(/No matching signature/);
    const other = sign(parseSigningSecret(generateSigningSecret()), id, ts, body);
    expect(() => wh.verify(body, headers(id, ts, other))).toThrow(/No matching signature/);
  });

  it("headers carry the three Standard Webhooks fields", () => {
    expect(headers("msg_x", 1700000000, "v1,abc")).toEqual({
      "webhook-id": "msg_x",
      "webhook-timestamp": "1700000000",
      "webhook-signature": "v1,abc",
    });
    const key = parseSigningSecret(generateSigningSecret());
    expect(() => sign(key, "msg_x", 1.5, "{}")).toThrow(/whole seconds/);
  });
});

describe("parseSigningSecret", () => {
  const b64 = (n: number) => Buffer.alloc(n, 7).toString("base64");

  it("accepts whsec_ with 24 to 64 bytes, trimming whitespace (a Secret made from a file ends in a newline)", () => {
    expect(parseSigningSecret(`whsec_${b64(24)}`).length).toBe(24);
    expect(parseSigningSecret(`whsec_${b64(64)}\n`).length).toBe(64);
  });

  it.each([
    ["", /must start with whsec_/],
    [b64(32), /must start with whsec_/],
    ["whsec_", /standard base64/],
    ["whsec_not base64!", /standard base64/],
    [`whsec_${Buffer.alloc(32, 250).toString("base64url")}`, /standard base64/],
    [`whsec_${b64(16)}`, /24 to 64 random bytes, has 16/],
    [`whsec_${b64(65)}`, /24 to 64 random bytes, has 65/],
  ])("rejects %j, saying why", (secret, why) => {
    expect(() => parseSigningSecret(secret)).toThrow(why);
    try {
      parseSigningSecret(secret);
    } catch (err) {
      if (secret.length > 6) expect((err as Error).message).not.toContain(secret.slice(6));
    }
  });

  it("never shows the key in JSON, inspect or strings", () => {
    const secret = generateSigningSecret();
    const key = parseSigningSecret(secret);
    const raw = secret.slice(6);
    const hex = Buffer.from(raw, "base64").toString("hex");
    for (const s of [JSON.stringify({ key }), inspect({ key }, { showHidden: true, depth: 5 }), `${key}`]) {
      expect(s).not.toContain(raw);
      expect(s).not.toContain(hex.slice(0, 16));
      expect(s).not.toMatch(/[0-9a-f]{2} [0-9a-f]{2} [0-9a-f]{2}/);
    }
  });
});

describe("webhookId", () => {
  it("is stable, header-safe, dot-free and distinct per alarm and type", () => {
    const alarm = "shop/cam.front-1:entry:42:1700000000123";
    const ids = DELIVERY_TYPES.map((t) => webhookId(alarm, t));
    expect(ids).toEqual(DELIVERY_TYPES.map((t) => webhookId(alarm, t)));
    for (const id of ids) expect(id).toMatch(/^msg_[A-Za-z0-9_-]{32}$/);
    expect(new Set(ids).size).toBe(2);
    expect(webhookId("shop/cam.front-1:entry:42:1700000000124", "alarm.raised")).not.toBe(ids[0]);
    // Pinned: a change here changes the id receivers deduplicate on, across a rolling upgrade.
    expect(webhookId("default/door:entry:1:0", "alarm.raised")).toBe("msg_yYn5iEMTRuuum0kcoewD3yOvPBUyCF8v");
  });
});
