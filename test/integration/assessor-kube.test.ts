// The assessor's Kubernetes side against the real apiserver, as a ServiceAccount holding exactly the chart's rules
// (files/assessor-*.yaml, the Secrets rule narrowed by resourceNames as assessor.keysSecretNames renders it): the
// pool source turns an AssessmentPool and its Secret into a PoolConfig and follows edits; a bad Secret is reported
// naming the field and never the key; the status writer (leader-elected) writes keys by fingerprint only.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { CustomObjectsApi, KubeConfig, RbacAuthorizationV1Api, type V1PolicyRule } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { fingerprint } from "../../assessor/keys/fingerprint.ts";
import { createKubePoolSource, type KubePoolSource } from "../../assessor/kube/pool-source.ts";
import { createStatusWriter, type StatusWriter } from "../../assessor/kube/status-writer.ts";
import type { PoolConfig } from "../../assessor/pool/types.ts";
import { GROUP, VERSION } from "../../operator/api/meta.ts";
import type { Clients } from "../../operator/kube/client.ts";
import { admin, createCr, freshNamespace, getCr, ROOT, waitFor } from "../setup/kube.ts";

type Obj = Record<string, any>;
const KEYS = {
  a1: "sk-test-a1-0123456789abcdef0123",
  a2: "sk-test-a2-0123456789abcdef4567",
  b1: "sk-test-b1-0123456789abcdef89ab",
};
const ALL_KEYS = Object.values(KEYS);
const rules = (f: string) => parse(readFileSync(join(ROOT, "charts", "vigil", "files", f), "utf8")) as V1PolicyRule[];

let c: Clients;
let ns: string;
let kc: KubeConfig;
let source: KubePoolSource;
const writers: StatusWriter[] = [];

const keysYaml = (entries: Obj[]) => stringify(entries);
const goodKeys = [
  { name: "a1", key: KEYS.a1, scope: "acct-a", rps: 10, rpm: 600 },
  { name: "a2", key: KEYS.a2, scope: "acct-a", rps: 10, rpm: 600 },
];
const putSecret = async (name: string, text: string) => {
  const body = { metadata: { name, namespace: ns }, stringData: { "keys.yaml": text } };
  await c.core.replaceNamespacedSecret({ name, namespace: ns, body }).catch(async (err) => {
    if ((err as { code?: number }).code !== 404) throw err;
    await c.core.createNamespacedSecret({ namespace: ns, body });
  });
};
const pool = (name: string, secret: string, spec: Obj = {}) => ({
  apiVersion: `${GROUP}/${VERSION}`,
  kind: "AssessmentPool",
  metadata: { name },
  spec: {
    provider: { baseURL: "http://127.0.0.1:9/v1", model: "qwen-vl-max" },
    keysSecretRef: { name: secret },
    ...spec,
  },
});
const nextChange = () =>
  new Promise<PoolConfig[]>((resolve) => {
    const fn = (p: PoolConfig[]) => {
      source.off("change", fn);
      resolve(p);
    };
    source.on("change", fn);
  });
const noKeyIn = (what: string, text: string) => {
  for (const k of ALL_KEYS) expect(text, `${what} holds a key`).not.toContain(k);
  for (const k of ALL_KEYS)
    expect(text, `${what} holds a key's base64`).not.toContain(Buffer.from(k).toString("base64"));
};

/** A ServiceAccount with the chart's assessor rules in `ns`; Secrets only by the names given (resourceNames). */
async function assessorKubeconfig(secretNames: string[]): Promise<KubeConfig> {
  const rbac = c.kc.makeApiClient(RbacAuthorizationV1Api);
  const sa = "vigil-assessor";
  await c.core.createNamespacedServiceAccount({ namespace: ns, body: { metadata: { name: sa } } });
  const roleRules = [...rules("assessor-rules.yaml"), ...rules("assessor-namespace-rules.yaml")].map((r) =>
    r.resources?.includes("secrets") ? { ...r, resourceNames: secretNames } : r,
  );
  await rbac.createNamespacedRole({ namespace: ns, body: { metadata: { name: sa }, rules: roleRules } });
  await rbac.createNamespacedRoleBinding({
    namespace: ns,
    body: {
      metadata: { name: sa },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: sa },
      subjects: [{ kind: "ServiceAccount", name: sa, namespace: ns }],
    },
  });
  const tr = await c.core.createNamespacedServiceAccountToken({
    name: sa,
    namespace: ns,
    body: { spec: { audiences: [], expirationSeconds: 3600 } },
  });
  const out = new KubeConfig();
  const cluster = c.kc.getCurrentCluster()!;
  out.loadFromOptions({
    clusters: [cluster],
    users: [{ name: sa, token: tr.status?.token }],
    contexts: [{ name: sa, cluster: cluster.name, user: sa, namespace: ns }],
    currentContext: sa,
  });
  return out;
}

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "assessor");
  await putSecret("qwen-keys", keysYaml(goodKeys));
  await putSecret("broken-keys", keysYaml([{ name: "x", key: KEYS.b1, rpm: "plenty" }]));
  await createCr(c, "assessmentpools", ns, pool("qwen", "qwen-keys", { strategy: "priority" }));
  await createCr(c, "assessmentpools", ns, pool("broken", "broken-keys"));
  await createCr(c, "assessmentpools", ns, pool("orphan", "missing-keys"));
  // A Secret outside the Role's resourceNames: it exists, but the assessor may not read it.
  await putSecret("other-keys", keysYaml(goodKeys));
  await createCr(c, "assessmentpools", ns, pool("forbidden", "other-keys"));
  kc = await assessorKubeconfig(["qwen-keys", "broken-keys", "missing-keys"]);
  // RBAC reaches the authorizer through its informers: wait until the ServiceAccount can list the pools.
  await waitFor("the assessor's Role to take effect", () =>
    kc
      .makeApiClient(CustomObjectsApi)
      .listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: "assessmentpools" })
      .then(() => true),
  );
  source = createKubePoolSource({ kc, namespace: ns, syncTimeoutMs: 2000 });
  const t0 = performance.now();
  await source.start();
  console.log(`pool source synced in ${Math.round(performance.now() - t0)} ms`);
}, 60_000);

afterAll(async () => {
  for (const w of writers) await w.stop();
  source?.stop();
});

describe("the pool source", () => {
  it("yields the parsed PoolConfig of a good pool, with the schema's defaults", () => {
    expect(source.current()).toEqual([
      {
        namespace: ns,
        name: "qwen",
        generation: 1,
        spec: {
          provider: { baseURL: "http://127.0.0.1:9/v1", model: "qwen-vl-max", format: "openai" },
          keysSecretRef: { name: "qwen-keys", key: "keys.yaml" },
          strategy: "priority",
          cooldownSeconds: 60,
          maxAttempts: 4,
          timeoutSeconds: 30,
          maxTasksPerCamera: 20,
          budgets: [],
        },
        keys: goodKeys.map((k) => ({ ...k, priority: 0, weight: 1 })),
      },
    ]);
  });

  it("reports a bad Secret naming the field, and a missing one, never a key value", () => {
    const problems = source.problems();
    expect(problems.map((p) => [p.name, p.reason])).toEqual([
      ["broken", "InvalidKeys"],
      ["forbidden", "SecretPending"],
      ["orphan", "SecretNotFound"],
    ]);
    expect(problems[0]?.error).toBe(
      `Secret ${ns}/broken-keys key "keys.yaml": [0].rpm: Invalid input: expected number, received string`,
    );
    expect(problems[1]?.error).toBe(`Secret ${ns}/other-keys: cannot be read yet (forbidden? see the log)`);
    expect(problems[2]?.error).toBe(`Secret ${ns}/missing-keys: not found`);
    noKeyIn("problems", JSON.stringify(problems));
  });

  it("follows an edit of the Secret with a change event", async () => {
    const changed = nextChange();
    const t0 = performance.now();
    await putSecret("qwen-keys", keysYaml([...goodKeys, { name: "b1", key: KEYS.b1, rps: 5 }]));
    const pools = await changed;
    console.log(`Secret edit → change event in ${Math.round(performance.now() - t0)} ms`);
    expect(pools.find((p) => p.name === "qwen")?.keys.map((k) => [k.name, k.scope ?? k.name])).toEqual([
      ["a1", "acct-a"],
      ["a2", "acct-a"],
      ["b1", "b1"],
    ]);
  });

  it("drops a pool whose Secret turns bad, saying which entry and field, and takes it back when fixed", async () => {
    let changed = nextChange();
    await putSecret("qwen-keys", keysYaml([goodKeys[0]!, { name: "a2", key: KEYS.a2, rps: "fast" }]));
    expect((await changed).map((p) => p.name)).toEqual([]);
    const p = source.problems().find((x) => x.name === "qwen");
    expect(p?.reason).toBe("InvalidKeys");
    expect(p?.error).toContain("[1].rps");
    noKeyIn("the error", JSON.stringify(source.problems()));

    changed = nextChange();
    await putSecret("qwen-keys", keysYaml(goodKeys));
    expect((await changed).map((x) => [x.name, x.keys.length])).toEqual([["qwen", 2]]);
  });

  it("picks up a fixed spec's Secret and the fix of a missing one", async () => {
    const changed = nextChange();
    await putSecret("missing-keys", keysYaml([{ name: "m", key: KEYS.b1 }]));
    const pools = await changed;
    expect(pools.map((x) => x.name)).toEqual(["orphan", "qwen"]);
  });
});

describe("the status writer", () => {
  const report = async (p: PoolConfig) => ({
    keys: p.keys.map((k, i) => ({
      name: k.name,
      fingerprint: fingerprint(k.key),
      scope: k.scope ?? k.name,
      phase: i === 0 ? ("COOLING" as const) : ("AVAILABLE" as const),
      calls: 10,
      ok: 9,
      rateLimited: 1,
      errors: 0,
      tokens: 1200,
      // A provider echoing the key back, as OpenAI's 401 does: must not reach the apiserver.
      lastError: `429 for key ${k.key}`,
    })),
    scopes: [{ name: "acct-a", rateFactor: 0.5, tokensToday: 1200, budgetExhausted: false }],
    queueDepth: 3,
    deadLetters: 1,
  });
  const writer = (identity: string) => {
    const w = createStatusWriter({
      kc,
      source,
      stats: report,
      leaseNamespace: ns,
      identity,
      intervalMs: 300,
      leaseDurationMs: 3000,
      renewDeadlineMs: 2000,
      retryPeriodMs: 500,
    });
    writers.push(w);
    w.start();
    return w;
  };

  it("patches keys by fingerprint with conditions, as vigil-assessor, from the one leader only", async () => {
    const a = writer("assessor-a");
    await waitFor("a leader", async () => a.isLeader());
    const b = writer("assessor-b");
    const t0 = performance.now();
    const got = await waitFor("qwen's status", async () => {
      const o = await getCr<Obj>(c, "assessmentpools", ns, "qwen");
      return o.status?.keyCount === 2 ? o : undefined;
    });
    console.log(`status written ${Math.round(performance.now() - t0)} ms after the leader was elected`);
    expect(got.status.keys.map((k: Obj) => [k.name, k.fingerprint, k.phase])).toEqual([
      ["a1", fingerprint(KEYS.a1), "COOLING"],
      ["a2", fingerprint(KEYS.a2), "AVAILABLE"],
    ]);
    expect(got.status.keys[0].lastError).toBe(`429 for key key:${fingerprint(KEYS.a1)}`);
    expect(got.status).toMatchObject({ availableKeys: 1, queueDepth: 3, deadLetters: 1, observedGeneration: 1 });
    expect(got.status.conditions.map((x: Obj) => [x.type, x.status, x.reason])).toEqual([
      ["KeysValid", "True", "KeysParsed"],
      ["Ready", "True", "KeysAvailable"],
    ]);
    noKeyIn("the AssessmentPool", JSON.stringify(got));
    expect(
      got.metadata.managedFields.filter((m: Obj) => m.subresource === "status").map((m: Obj) => m.manager),
    ).toEqual(["vigil-assessor"]);

    const lease = await c.coordination.readNamespacedLease({ name: "vigil-assessor", namespace: ns });
    expect(lease.spec?.holderIdentity).toBe("assessor-a");
    expect(b.isLeader()).toBe(false);
    expect(b.stats.writes).toBe(0);

    // Nothing changed: once a whole pass over the 4 pools skipped, the next passes write nothing either.
    await waitFor("a pass that writes nothing", async () => a.stats.skipped >= 4);
    const writes = a.stats.writes;
    expect(writes).toBe(4);
    await new Promise((r) => setTimeout(r, 1000));
    expect(a.stats.writes).toBe(writes);
    expect(a.stats.skipped).toBeGreaterThanOrEqual(8);
  });

  it("shows a bad Secret in KeysValid=False, naming the field, never the key", async () => {
    const got = await waitFor("broken's status", async () => {
      const o = await getCr<Obj>(c, "assessmentpools", ns, "broken");
      return o.status?.conditions ? o : undefined;
    });
    const kv = got.status.conditions.find((x: Obj) => x.type === "KeysValid");
    expect([kv.status, kv.reason]).toEqual(["False", "InvalidKeys"]);
    expect(kv.message).toContain("[0].rpm");
    expect(got.status).toMatchObject({ keys: [], keyCount: 0, availableKeys: 0 });
    noKeyIn("the AssessmentPool", JSON.stringify(got));
  });

  it("hands over to the standby when the leader stops", async () => {
    const [a, b] = writers as [StatusWriter, StatusWriter];
    await a.stop(); // releases the Lease
    await waitFor("the standby to lead", async () => b.isLeader(), 10_000);
    await waitFor("the standby to write", async () => b.stats.writes + b.stats.skipped > 0, 10_000);
    const lease = await c.coordination.readNamespacedLease({ name: "vigil-assessor", namespace: ns });
    expect(lease.spec?.holderIdentity).toBe("assessor-b");
  });
});
