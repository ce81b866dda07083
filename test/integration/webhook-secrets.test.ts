// Where the alarm service finds a camera's webhook: the Secret `alarm.webhookSecretRef` names, read from a real
// apiserver (keys url and secret), or from single-host manifests. Every problem comes back as a reason that names
// the Secret and the key, and never quotes the url or the secret.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CoreV1Api } from "@kubernetes/client-node";
import { Webhook } from "standardwebhooks";
import { beforeAll, describe, expect, it } from "vitest";
import { generateSigningSecret, headers, sign } from "../../alarms/webhook/sign.ts";
import { kubeWebhookSecrets, staticWebhookSecrets, type WebhookLookup } from "../../alarms/webhook-secrets.ts";
import { loadKubeConfig } from "../../operator/kube/client.ts";
import { loadManifests } from "../../worker/manifests.ts";
import { admin, freshNamespace, serviceAccountKubeconfig } from "../setup/kube.ts";

const SECRET = generateSigningSecret();
const URL_WITH_TOKEN = "https://hooks.example.com/in?token=tok-987";

/** The lookup's reason, checked to leak neither the signing secret nor the url's token. */
function reason(r: WebhookLookup): string {
  if (!("missing" in r)) throw new Error(`expected a missing reason, got a target for ${r.endpoint}`);
  expect(r.missing).not.toContain(SECRET.slice(6, 20));
  expect(r.missing).not.toContain("tok-987");
  return r.missing;
}

describe("kubeWebhookSecrets", () => {
  const c = admin();
  let ns: string;
  let clock = 0;
  const source = () => kubeWebhookSecrets(c.core, { now: () => clock, ttlMs: 10_000 });
  const put = (name: string, stringData: Record<string, string>) =>
    c.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name }, stringData } });

  beforeAll(async () => {
    ns = await freshNamespace(c, "whs");
    await put("hook", { url: `${URL_WITH_TOKEN}\n`, secret: `${SECRET}\n` });
    await put("no-secret", { url: URL_WITH_TOKEN });
    await put("empty", { other: "x" });
    await put("bad-whsec", { url: URL_WITH_TOKEN, secret: "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" });
    await put("short-whsec", { url: URL_WITH_TOKEN, secret: `whsec_${Buffer.alloc(16, 3).toString("base64")}` });
    await put("bad-url", { url: "ftp://files.example.com/x", secret: SECRET });
  });

  it("present: the url and a signing key that the standardwebhooks package verifies", async () => {
    const r = await source().get(ns, "hook");
    if ("missing" in r) throw new Error(r.missing);
    expect(r.url).toBe(URL_WITH_TOKEN);
    expect(r.endpoint).toMatch(new RegExp(`^${ns}/hook#[0-9a-f]{16}$`));
    const ts = Math.floor(Date.now() / 1000);
    expect(new Webhook(SECRET).verify("{}", headers("msg_a", ts, sign(r.secret, "msg_a", ts, "{}")))).toEqual({});
    expect(JSON.stringify(r)).not.toContain(SECRET.slice(6));
  });

  it("missing Secret, missing keys, malformed values: a reason naming the Secret and the key", async () => {
    const s = source();
    expect(reason(await s.get(ns, "nope"))).toBe(`Secret ${ns}/nope not found`);
    expect(reason(await s.get(ns, "no-secret"))).toBe(`Secret ${ns}/no-secret has no key secret`);
    expect(reason(await s.get(ns, "empty"))).toBe(`Secret ${ns}/empty has no key url and no key secret`);
    expect(reason(await s.get(ns, "bad-whsec"))).toBe(
      `Secret ${ns}/bad-whsec: key secret: must start with whsec_ (the Standard Webhooks form)`,
    );
    expect(reason(await s.get(ns, "short-whsec"))).toBe(
      `Secret ${ns}/short-whsec: key secret: must hold 24 to 64 random bytes, has 16`,
    );
    expect(reason(await s.get(ns, "bad-url"))).toBe(
      `Secret ${ns}/bad-url: key url must be an http or https URL, is ftp`,
    );
  });

  it("a reader without RBAC on Secrets gets a reason saying so", async () => {
    const kc = loadKubeConfig(await serviceAccountKubeconfig(c, ns, "nobody", {}));
    const r = await kubeWebhookSecrets(kc.makeApiClient(CoreV1Api)).get(ns, "hook");
    expect(reason(r)).toMatch(new RegExp(`^Secret ${ns}/hook: not allowed to read it \\(403 Forbidden: `));
  });

  it("answers are kept for the TTL: a fixed Secret is picked up after it, not before", async () => {
    clock = 1_000_000;
    const s = source();
    await put("later", { url: URL_WITH_TOKEN });
    expect(reason(await s.get(ns, "later"))).toBe(`Secret ${ns}/later has no key secret`);
    await c.core.patchNamespacedSecret({
      name: "later",
      namespace: ns,
      body: [{ op: "add", path: "/data/secret", value: Buffer.from(SECRET).toString("base64") }],
    });
    clock += 9_000;
    expect("missing" in (await s.get(ns, "later"))).toBe(true);
    clock += 1_000;
    const r = await s.get(ns, "later");
    expect("missing" in r ? r.missing : r.url).toBe(URL_WITH_TOKEN);
    // A Secret created after a "not found" is picked up the same way.
    expect(reason(await s.get(ns, "new"))).toBe(`Secret ${ns}/new not found`);
    await put("new", { url: URL_WITH_TOKEN, secret: SECRET });
    clock += 10_000;
    expect("url" in (await s.get(ns, "new"))).toBe(true);
  });
});

describe("staticWebhookSecrets", () => {
  it("reads the Secrets of single-host manifests, with the same reasons", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "vigil-wh-")), "cameras.yaml");
    writeFileSync(
      file,
      [
        "apiVersion: v1\nkind: Secret\nmetadata: { name: hook }\nstringData:",
        `  url: ${URL_WITH_TOKEN}`,
        `  secret: ${SECRET}`,
        "---",
        "apiVersion: v1\nkind: Secret\nmetadata: { name: half, namespace: shop }\ndata:",
        `  url: ${Buffer.from(URL_WITH_TOKEN).toString("base64")}`,
      ].join("\n"),
    );
    const s = staticWebhookSecrets(loadManifests(file).secrets ?? new Map());
    const r = await s.get("default", "hook");
    expect("url" in r && r.url).toBe(URL_WITH_TOKEN);
    expect(reason(await s.get("shop", "half"))).toBe("Secret shop/half has no key secret");
    expect(reason(await s.get("default", "nope"))).toBe("Secret default/nope is not in the manifests");
  });
});
