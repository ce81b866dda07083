import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { fingerprint, fingerprints, scrubKeys } from "../../assessor/keys/fingerprint.ts";

describe("fingerprint", () => {
  it("is the first 8 hex of the key's sha256, the same on every replica", () => {
    const key = "sk-test-0123456789abcdef";
    expect(fingerprint(key)).toBe(createHash("sha256").update(key).digest("hex").slice(0, 8));
    expect(fingerprint(key)).toMatch(/^[0-9a-f]{8}$/);
    expect(fingerprint(key)).toBe(fingerprint(key));
    expect(fingerprint(key)).not.toBe(fingerprint(`${key}x`));
    expect(fingerprint(key)).not.toContain(key.slice(3, 11));
  });

  it("fingerprints keeps order and accepts the same key twice", () => {
    expect(fingerprints(["a", "b", "a"])).toEqual([fingerprint("a"), fingerprint("b"), fingerprint("a")]);
  });
});

describe("scrubKeys", () => {
  it("replaces our keys with their fingerprints, longest first", () => {
    const a = "sk-aaaaaaaaaaaa";
    const ab = `${a}bbbb`;
    expect(scrubKeys(`bad ${ab} and ${a}.`, [a, ab])).toBe(`bad key:${fingerprint(ab)} and key:${fingerprint(a)}.`);
  });

  it("cuts key-like tokens and bearer headers that are not ours", () => {
    const out = scrubKeys("Incorrect API key provided: sk-abc***wxyz. Authorization: Bearer abcdefghijklmnop");
    expect(out).toBe("Incorrect API key provided: sk-…. Authorization: Bearer …");
    expect(scrubKeys("no secrets here", ["", "zzz-not-present"])).toBe("no secrets here");
  });
});
