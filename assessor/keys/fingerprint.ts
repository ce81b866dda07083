// How a key is named anywhere outside the call itself: status, events, metrics, logs and errors carry the first 8 hex
// of its sha256, never the key. Deterministic, so every replica names a key the same way and the shared state in
// Redis is keyed by it. 32 bits: two keys of one pool collide with odds ~n²/2³³ (1 in 170 million for 10 keys), and
// `fingerprints` says so instead of merging their states when it happens.
import { createHash } from "node:crypto";

export const FINGERPRINT_HEX = 8;

export function fingerprint(key: string): string {
  return createHash("sha256").update(key, "utf8").digest("hex").slice(0, FINGERPRINT_HEX);
}

/** The fingerprint of each key, in order; throws (naming fingerprints only) when two different keys share one. */
export function fingerprints(keys: readonly string[]): string[] {
  const seen = new Map<string, string>();
  return keys.map((k) => {
    const fp = fingerprint(k);
    const other = seen.get(fp);
    if (other !== undefined && other !== k) throw new Error(`two different keys share the fingerprint ${fp}`);
    seen.set(fp, k);
    return fp;
  });
}

// Providers quote the key back in errors: OpenAI's 401 says "Incorrect API key provided: sk-abc***...xyz", and a
// proxy may echo the Authorization header. Long key-like tokens are cut even when they are not one of ours.
const KEY_LIKE = /\b(?:sk|sk-proj|sk-ant)-[A-Za-z0-9_*-]{6,}|\bBearer\s+[A-Za-z0-9._~+/*-]{8,}=*/g;

/** `text` fit for a log line or a status field: each of `keys` becomes `key:<fingerprint>`, key-like tokens `…`. */
export function scrubKeys(text: string, keys: readonly string[] = []): string {
  let out = text;
  // Longest first, so a key that contains another is replaced whole.
  for (const k of [...keys].filter((k) => k.length > 0).sort((a, b) => b.length - a.length))
    out = out.replaceAll(k, `key:${fingerprint(k)}`);
  return out.replace(KEY_LIKE, (m) => (m.startsWith("Bearer") ? "Bearer …" : `${m.slice(0, 3)}…`));
}
