// An AssessmentPool and its keys Secret → a PoolConfig, or an error that names the field and never a key value.
// Pure: the Kubernetes side (assessor/kube/pool-source.ts) hands in the objects as the apiserver returned them.
import type { V1Secret } from "@kubernetes/client-node";
import { parse, YAMLParseError } from "yaml";
import type { z } from "zod";
import {
  type AssessmentKeys,
  type AssessmentPoolSpec,
  assessmentKeys,
  assessmentPoolSpec,
} from "../../operator/api/assessment-pool.ts";
import { fingerprints, scrubKeys } from "../keys/fingerprint.ts";

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

/** zod's issues as `path: message`, paths as kubectl prints them (`spec.provider.baseURL`, `[1].rpm`). */
export function issues(prefix: string, error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => {
      const path = i.path
        .map((p) => (typeof p === "number" ? `[${p}]` : `.${String(p)}`))
        .join("")
        .replace(/^\./, "");
      const at = prefix && path ? `${prefix}${path.startsWith("[") ? "" : "."}${path}` : prefix || path;
      return `${at || "the list"}: ${i.message}`;
    })
    .join("; ");
}

export function parsePoolSpec(spec: unknown): Parsed<AssessmentPoolSpec> {
  const r = assessmentPoolSpec.safeParse(spec);
  return r.success ? { ok: true, value: r.data } : { ok: false, error: issues("spec", r.error) };
}

/** Every string under a `key` field, wherever it is: what a message about this document must never contain. */
function keyLikeValues(doc: unknown, out: string[] = []): string[] {
  if (Array.isArray(doc)) for (const d of doc) keyLikeValues(d, out);
  else if (doc && typeof doc === "object")
    for (const [k, v] of Object.entries(doc)) {
      if (k === "key" && typeof v === "string") out.push(v);
      else keyLikeValues(v, out);
    }
  return out;
}

/**
 * The keys list in `secret.data[dataKey]` (YAML or JSON). Errors name the Secret, the data key and the entry's field
 * (`[1].rpm`); a YAML syntax error only its line and column, because the yaml package quotes the offending line.
 */
export function parseKeysSecret(secret: V1Secret, dataKey: string): Parsed<AssessmentKeys> {
  const where = `Secret ${secret.metadata?.namespace}/${secret.metadata?.name} key ${JSON.stringify(dataKey)}`;
  const b64 = secret.data?.[dataKey];
  if (b64 === undefined) {
    const has = Object.keys(secret.data ?? {}).sort();
    return { ok: false, error: `${where}: missing (the Secret has ${has.length ? has.join(", ") : "no keys"})` };
  }
  const text = Buffer.from(b64, "base64").toString("utf8");
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    const pos = err instanceof YAMLParseError ? err.linePos?.[0] : undefined;
    const code = err instanceof YAMLParseError ? err.code : "YAML";
    return { ok: false, error: `${where}: not YAML (${code}${pos ? ` at line ${pos.line}, column ${pos.col}` : ""})` };
  }
  const secrets = keyLikeValues(doc);
  const r = assessmentKeys.safeParse(doc);
  if (!r.success) return { ok: false, error: scrubKeys(`${where}: ${issues("", r.error)}`, secrets) };
  let fps: string[];
  try {
    fps = fingerprints(r.data.map((k) => k.key));
  } catch (err) {
    return { ok: false, error: scrubKeys(`${where}: ${(err as Error).message}`, secrets) };
  }
  // Key state is shared by fingerprint: one key under two names would be one key counted twice.
  const first = new Map<string, number>();
  for (const [i, fp] of fps.entries()) {
    const j = first.get(fp);
    if (j !== undefined) return { ok: false, error: `${where}: [${i}].key: the same key as [${j}] (key:${fp})` };
    first.set(fp, i);
  }
  return { ok: true, value: r.data };
}
