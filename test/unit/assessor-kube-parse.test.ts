// The keys Secret and the AssessmentPool spec → PoolConfig parts, and the status built from a pool's report: errors
// name the field, never a key value; status names keys by fingerprint only.
import type { V1Secret } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { fingerprint } from "../../assessor/keys/fingerprint.ts";
import { parseKeysSecret, parsePoolSpec } from "../../assessor/kube/parse-pool.ts";
import { poolStatus, problemStatus } from "../../assessor/kube/pool-status.ts";
import type { PoolConfig } from "../../assessor/pool/types.ts";
import { assessmentPoolSpec } from "../../operator/api/assessment-pool.ts";

const KEY_A = "sk-aaaaaaaaaaaaaaaaaaaaaaaa1111";
const KEY_B = "sk-bbbbbbbbbbbbbbbbbbbbbbbb2222";
const secret = (text: string, dataKey = "keys.yaml"): V1Secret => ({
  metadata: { namespace: "ns", name: "qwen-keys" },
  data: { [dataKey]: Buffer.from(text).toString("base64") },
});

describe("parseKeysSecret", () => {
  it("parses the YAML list with the schema's defaults", () => {
    const r = parseKeysSecret(
      secret(
        stringify([
          { name: "a1", key: KEY_A, scope: "acct-a", rps: 10, rpm: 600 },
          { name: "c", key: KEY_B },
        ]),
      ),
      "keys.yaml",
    );
    expect(r).toEqual({
      ok: true,
      value: [
        { name: "a1", key: KEY_A, scope: "acct-a", rps: 10, rpm: 600, priority: 0, weight: 1 },
        { name: "c", key: KEY_B, priority: 0, weight: 1 },
      ],
    });
  });

  it.each([
    ["a wrong type", stringify([{ name: "a1", key: KEY_A, rpm: "lots" }]), ["[0].rpm", "expected number"]],
    ["a missing key", stringify([{ name: "a1" }, { name: "b", key: KEY_B }]), ["[0].key"]],
    ["a negative rps", stringify([{ name: "a1", key: KEY_A, rps: -1 }]), ["[0].rps"]],
    ["an empty list", "[]", ["the list", ">=1 items"]],
    ["a bare key, not a list", KEY_A, ["the list", "expected array"]],
    [
      "two entries with one name",
      stringify([
        { name: "a1", key: KEY_A },
        { name: "a1", key: KEY_B },
      ]),
      ["[1].name", "duplicate key name a1"],
    ],
    [
      "one key under two names",
      stringify([
        { name: "a1", key: KEY_A },
        { name: "a2", key: KEY_A },
      ]),
      ["[1].key", "the same key as [0]", `key:${fingerprint(KEY_A)}`],
    ],
    ["broken YAML", `- name: a1\n  key: ${KEY_A}\n - name: [b`, ["not YAML", "line"]],
  ])("%s: an error naming the field, without the key", (_what, text, expected) => {
    const r = parseKeysSecret(secret(text), "keys.yaml");
    expect(r.ok).toBe(false);
    const error = r.ok ? "" : r.error;
    expect(error).toContain('Secret ns/qwen-keys key "keys.yaml"');
    for (const e of expected) expect(error).toContain(e);
    expect(error).not.toContain(KEY_A);
    expect(error).not.toContain(KEY_B);
    expect(error).not.toContain("aaaaaaaa");
  });

  it("says which data keys the Secret has when the named one is missing", () => {
    const r = parseKeysSecret(secret("x", "other.yaml"), "keys.yaml");
    expect(r).toEqual({ ok: false, error: 'Secret ns/qwen-keys key "keys.yaml": missing (the Secret has other.yaml)' });
  });
});

describe("parsePoolSpec", () => {
  it("names the field of a bad spec", () => {
    const r = parsePoolSpec({ provider: { baseURL: "ftp://x", model: "m" }, keysSecretRef: { name: "k" } });
    expect(r.ok ? "" : r.error).toContain("spec.provider.baseURL: provider.baseURL must be an http(s) URL");
  });
});

const pool: PoolConfig = {
  namespace: "ns",
  name: "qwen",
  generation: 3,
  spec: assessmentPoolSpec.parse({
    provider: { baseURL: "http://llm/v1", model: "qwen-vl-max" },
    keysSecretRef: { name: "k" },
  }),
  keys: [
    { name: "a1", key: KEY_A, scope: "acct-a", priority: 0, weight: 1 },
    { name: "b1", key: KEY_B, priority: 0, weight: 1 },
  ],
};
const t0 = new Date("2026-12-01T10:00:00.123Z");
const t1 = new Date("2026-12-01T10:05:00Z");

describe("poolStatus", () => {
  const report = (phaseB: "AVAILABLE" | "DISABLED") => ({
    keys: [
      {
        name: "b1",
        fingerprint: fingerprint(KEY_B),
        scope: "b1",
        phase: phaseB,
        calls: 1,
        ok: 0,
        rateLimited: 0,
        errors: 1,
        tokens: 0,
        lastError: `401 Incorrect API key provided: ${KEY_B}`,
      },
      {
        name: "a1",
        fingerprint: fingerprint(KEY_A),
        scope: "acct-a",
        phase: "COOLING" as const,
        calls: 5,
        ok: 4,
        rateLimited: 1,
        errors: 0,
        tokens: 900,
      },
    ],
    scopes: [
      { name: "acct-a", rateFactor: 0.5, tokensToday: 900, budgetExhausted: false, disabled: `revoked ${KEY_A}` },
    ],
    queueDepth: 7,
    deadLetters: 1,
  });

  it("names keys by fingerprint, scrubs their errors, counts the available ones", () => {
    const s = poolStatus(pool, report("AVAILABLE"), undefined, t0);
    const text = JSON.stringify(s);
    expect(text).not.toContain(KEY_A);
    expect(text).not.toContain(KEY_B);
    expect((s.keys as { name: string; lastError?: string }[]).map((k) => k.name)).toEqual(["a1", "b1"]);
    expect((s.keys as { lastError?: string }[])[1]?.lastError).toBe(
      `401 Incorrect API key provided: key:${fingerprint(KEY_B)}`,
    );
    expect(s).toMatchObject({ keyCount: 2, availableKeys: 1, queueDepth: 7, deadLetters: 1, observedGeneration: 3 });
    expect(s.conditions).toEqual([
      {
        type: "KeysValid",
        status: "True",
        reason: "KeysParsed",
        message: "2 keys in 2 quota scopes",
        observedGeneration: 3,
        lastTransitionTime: "2026-12-01T10:00:00Z",
      },
      {
        type: "Ready",
        status: "True",
        reason: "KeysAvailable",
        message: "1 of 2 keys available",
        observedGeneration: 3,
        lastTransitionTime: "2026-12-01T10:00:00Z",
      },
    ]);
  });

  it("moves lastTransitionTime only for the condition whose status changed", () => {
    const first = poolStatus(pool, report("AVAILABLE"), undefined, t0);
    const next = poolStatus(pool, report("DISABLED"), first.conditions, t1);
    expect(next.conditions.map((c) => [c.type, c.status, c.reason, c.lastTransitionTime])).toEqual([
      ["KeysValid", "True", "KeysParsed", "2026-12-01T10:00:00Z"],
      ["Ready", "False", "NoKeyAvailable", "2026-12-01T10:05:00Z"],
    ]);
  });

  it("reports a pool not run with KeysValid=False and no keys", () => {
    const s = problemStatus(
      { namespace: "ns", name: "qwen", generation: 2, reason: "InvalidKeys", error: "Secret ns/k key: [0].rpm: bad" },
      undefined,
      t0,
    );
    expect(s).toMatchObject({ keys: [], scopes: [], keyCount: 0, availableKeys: 0 });
    expect(s.conditions.map((c) => [c.type, c.status, c.reason, c.message])).toEqual([
      ["KeysValid", "False", "InvalidKeys", "Secret ns/k key: [0].rpm: bad"],
      ["Ready", "False", "InvalidKeys", "not run: see KeysValid"],
    ]);
  });
});
