// Which key takes the next call, pure: among the keys that may take a call now (key-state.ts `availability`) and whose
// scope has room (the GCRA's answer, passed in), by the pool's strategy. When none can, how long to wait, or that
// none ever will (every key DISABLED). The strategy's memory (round-robin cursor, weighted-round-robin credits) is
// plain data the caller keeps per replica: it spreads calls, it does not guard limits, so it need not be shared.
//
// Keys the task already tried (`avoid`) and keys under a transient penalty are second choice: used only when no other
// key can take the call now, since a retry on the same key beats waiting for a cooldown elsewhere.
//
// `priority` picks the highest priority that has a usable key, then spreads by weight with smooth weighted
// round-robin (nginx's): deterministic, exact shares over any window of sum(weight) picks, no run of one key. one-api
// and new-api pick at random within a priority, whose shares wander and whose runs hammer one key.
import { availability, DEFAULT_POLICY, type KeyPolicy, type Pool } from "./key-state.ts";

export type Strategy = "round-robin" | "least-loaded" | "priority";

/** A key as the pool's Secret lists it, by fingerprint; the order is the Secret's. */
export type KeyConfig = {
  fingerprint: string;
  /** Higher first (as Kubernetes' PriorityClass); default 0. */
  priority?: number;
  /** Share within its priority, and the divisor of its load for least-loaded; default 1. */
  weight?: number;
};

export type PickMemory = {
  /** Round-robin: the index (in the Secret's order) of the key picked last. */
  cursor: number;
  /** Smooth weighted round-robin credits per fingerprint. */
  credit: Record<string, number>;
};

export const freshMemory = (): PickMemory => ({ cursor: -1, credit: {} });

export type PickInput = {
  pool: Pool;
  keys: readonly KeyConfig[];
  strategy: Strategy;
  now: number;
  /** Ms until `scope` has room for one call (0: now), from the scope's GCRA; absent: always room. */
  roomIn?: (scope: string) => number;
  /** Keys this task already tried. */
  avoid?: readonly string[];
  memory?: PickMemory;
  policy?: KeyPolicy;
};

export type Pick =
  | {
      kind: "key";
      fingerprint: string;
      scope: string;
      /** This call is the half-open probe of the key or its scope (begin() holds the gate for it). */
      probe: { key: boolean; scope: boolean };
      memory: PickMemory;
    }
  /** No key can take a call for `ms` (the soonest cooldown end or room); a settle may free one sooner: pick again. */
  | { kind: "wait"; ms: number; reason: string; memory: PickMemory }
  /** Every key is DISABLED (or the pool is empty): waiting will not help. */
  | { kind: "none"; reason: string; memory: PickMemory };

type Candidate = { index: number; cfg: KeyConfig; scope: string; probe: { key: boolean; scope: boolean } };

export function pick(i: PickInput): Pick {
  const memory = i.memory ?? freshMemory();
  const policy = i.policy ?? DEFAULT_POLICY;
  const avoid = new Set(i.avoid ?? []);
  const first: Candidate[] = [];
  const second: Candidate[] = [];
  let soonest = Number.POSITIVE_INFINITY;
  let waitReason = "";
  const disabled: string[] = [];
  const roomCache = new Map<string, number>();
  const roomIn = (scope: string) => {
    let ms = roomCache.get(scope);
    if (ms === undefined) {
      ms = Math.max(0, i.roomIn?.(scope) ?? 0);
      roomCache.set(scope, ms);
    }
    return ms;
  };
  const waitFor = (ms: number, why: string) => {
    if (ms < soonest) {
      soonest = ms;
      waitReason = why;
    }
  };

  i.keys.forEach((cfg, index) => {
    const k = i.pool.keys[cfg.fingerprint];
    const a = availability(i.pool, cfg.fingerprint, i.now, policy);
    if (!k || !a.usable) {
      if (!a.usable && a.phase === "COOLING") waitFor(Math.max(0, (a.until ?? i.now) - i.now), a.reason);
      else disabled.push(cfg.fingerprint);
      return;
    }
    const room = roomIn(k.scope);
    if (room > 0) {
      waitFor(room, `scope ${k.scope} is at its rate`);
      return;
    }
    const c = { index, cfg, scope: k.scope, probe: a.probe };
    (a.penalized || avoid.has(cfg.fingerprint) ? second : first).push(c);
  });

  const pool = first.length > 0 ? first : second;
  if (pool.length === 0) {
    if (soonest < Number.POSITIVE_INFINITY) return { kind: "wait", ms: soonest, reason: waitReason, memory };
    return {
      kind: "none",
      reason: i.keys.length === 0 ? "the pool has no keys" : `all ${disabled.length} keys are disabled`,
      memory,
    };
  }
  const { chosen, memory: next } = choose(i.strategy, pool, i, memory);
  return { kind: "key", fingerprint: chosen.cfg.fingerprint, scope: chosen.scope, probe: chosen.probe, memory: next };
}

const weightOf = (c: KeyConfig) => (c.weight !== undefined && Number.isFinite(c.weight) && c.weight > 0 ? c.weight : 1);
const priorityOf = (c: KeyConfig) => (c.priority !== undefined && Number.isFinite(c.priority) ? c.priority : 0);

function choose(
  strategy: Strategy,
  cs: Candidate[],
  i: PickInput,
  memory: PickMemory,
): { chosen: Candidate; memory: PickMemory } {
  if (strategy === "round-robin") {
    // The first candidate after the cursor, wrapping: every usable key in turn, in the Secret's order.
    const n = i.keys.length;
    const dist = (c: Candidate) => (((c.index - memory.cursor - 1) % n) + n) % n;
    const chosen = cs.reduce((a, b) => (dist(b) < dist(a) ? b : a));
    return { chosen, memory: { ...memory, cursor: chosen.index } };
  }
  if (strategy === "least-loaded") {
    // Fewest calls in flight per unit of weight; ties to the key idle longest, then the Secret's order.
    const load = (c: Candidate) => (i.pool.keys[c.cfg.fingerprint]?.inFlight ?? 0) / weightOf(c.cfg);
    const used = (c: Candidate) => i.pool.keys[c.cfg.fingerprint]?.lastUsedAt ?? Number.NEGATIVE_INFINITY;
    const chosen = cs.reduce((a, b) => {
      const d = load(b) - load(a);
      if (d !== 0) return d < 0 ? b : a;
      return used(b) < used(a) ? b : a;
    });
    return { chosen, memory };
  }
  // priority: the top priority present, then smooth weighted round-robin within it.
  const top = Math.max(...cs.map((c) => priorityOf(c.cfg)));
  const tier = cs.filter((c) => priorityOf(c.cfg) === top);
  // Credits of keys that left the Secret go with them.
  const listed = new Set(i.keys.map((k) => k.fingerprint));
  const credit = Object.fromEntries(Object.entries(memory.credit).filter(([fp]) => listed.has(fp)));
  let total = 0;
  let chosen = tier[0] as Candidate;
  for (const c of tier) {
    const w = weightOf(c.cfg);
    total += w;
    credit[c.cfg.fingerprint] = (credit[c.cfg.fingerprint] ?? 0) + w;
    if ((credit[c.cfg.fingerprint] as number) > (credit[chosen.cfg.fingerprint] as number)) chosen = c;
  }
  credit[chosen.cfg.fingerprint] = (credit[chosen.cfg.fingerprint] as number) - total;
  return { chosen, memory: { ...memory, credit } };
}
