// An AssessmentPool's status from what the pool reports: keys by fingerprint, scopes, queue depth, DLQ depth, and the
// conditions KeysValid and Ready. Pure; assessor/kube/status-writer.ts patches it. Every free-text field goes
// through scrubKeys with the pool's own keys, so a provider's error that quotes a key never reaches the apiserver.
import type { AssessmentKeyStatus, AssessmentPoolStatus } from "../../operator/api/assessment-pool.ts";
import type { Condition } from "../../operator/api/meta.ts";
import { type ConditionInput, setConditions } from "../../operator/kube/conditions.ts";
import { scrubKeys } from "../keys/fingerprint.ts";
import type { PoolConfig } from "../pool/types.ts";
import type { PoolProblem } from "./pool-source.ts";

export type PoolStats = {
  keys: AssessmentKeyStatus[];
  scopes: AssessmentPoolStatus["scopes"];
  queueDepth?: number;
  deadLetters?: number;
};

/** What status may hold: a patch body (null removes a field, as merge patch does). */
export type StatusPatch = Record<string, unknown> & { conditions: Condition[] };

const LIVE = new Set(["AVAILABLE", "IN_USE"]);
const cut = (s: string, n = 1024) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

export function poolStatus(
  pool: PoolConfig,
  stats: PoolStats | undefined,
  existing: readonly Condition[] | undefined,
  now: Date,
): StatusPatch {
  const secrets = pool.keys.map((k) => k.key);
  const scrub = (s: string | undefined) => (s === undefined ? undefined : cut(scrubKeys(s, secrets)));
  const keys = (stats?.keys ?? [])
    .map((k) => {
      const { lastError, ...rest } = k;
      const e = scrub(lastError);
      return e === undefined ? rest : { ...rest, lastError: e };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
  const scopes = (stats?.scopes ?? [])
    .map((s) => {
      const { disabled, ...rest } = s;
      const d = scrub(disabled);
      return d === undefined ? rest : { ...rest, disabled: d };
    })
    .sort((a, b) => a.name.localeCompare(b.name));
  const available = keys.filter((k) => LIVE.has(k.phase)).length;
  const scopeCount = new Set(pool.keys.map((k) => k.scope ?? k.name)).size;
  const conditions = (
    [
      {
        type: "KeysValid",
        status: "True",
        reason: "KeysParsed",
        message: `${pool.keys.length} keys in ${scopeCount} quota scopes`,
      },
      !stats
        ? { type: "Ready", status: "Unknown", reason: "NoReport", message: "the pool has not reported yet" }
        : available > 0
          ? {
              type: "Ready",
              status: "True",
              reason: "KeysAvailable",
              message: `${available} of ${keys.length} keys available`,
            }
          : {
              type: "Ready",
              status: "False",
              reason: "NoKeyAvailable",
              message: `all ${keys.length} keys are cooling or disabled`,
            },
    ] satisfies ConditionInput[]
  ).map((c): ConditionInput => (pool.generation !== undefined ? { ...c, observedGeneration: pool.generation } : c));
  return {
    observedGeneration: pool.generation ?? null,
    keys,
    scopes,
    keyCount: pool.keys.length,
    availableKeys: available,
    queueDepth: stats?.queueDepth ?? null,
    deadLetters: stats?.deadLetters ?? null,
    conditions: setConditions(existing, conditions, now),
  };
}

/** A pool that is not run: no keys, KeysValid=False with the parse error (it names fields, never key values). */
export function problemStatus(p: PoolProblem, existing: readonly Condition[] | undefined, now: Date): StatusPatch {
  const og = p.generation !== undefined ? { observedGeneration: p.generation } : {};
  return {
    observedGeneration: p.generation ?? null,
    keys: [],
    scopes: [],
    keyCount: 0,
    availableKeys: 0,
    queueDepth: null,
    deadLetters: null,
    conditions: setConditions(
      existing,
      [
        { type: "KeysValid", status: "False", reason: p.reason, message: cut(p.error), ...og },
        { type: "Ready", status: "False", reason: p.reason, message: "not run: see KeysValid", ...og },
      ],
      now,
    ),
  };
}
