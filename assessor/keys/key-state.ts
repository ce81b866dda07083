// The key pool's state machine, pure: what a call's outcome does to its key and its quota scope, and whether a key
// may take a call now. Time, randomness and the policy come in; plain data comes out (serialisable as it is, so the
// Redis edge can share it between replicas). Keys are named by fingerprint only.
//
// A key's phase, first match wins:
//   DISABLED  the key or its scope was refused for good (401, 403, insufficient_quota, Arrearage): a person must act.
//   COOLING   the key or its scope is cooling down after a 429 (or a run of failures), or waits for its probe.
//   IN_USE    calls are in flight on it (a key takes several at once: at 10 rps and 300–800 ms per call a scope has
//             3–8 in flight, so IN_USE is a load, not a lock).
//   AVAILABLE none of the above.
//
// Cooldowns follow a circuit breaker: closed, open until `until`, then half-open, where exactly one probe call may go;
// its success closes the breaker, its failure opens it again for longer. Recovery is thus an observed success, not
// a fixed timer that sends a burst at a still-limited provider.
import type { Classification, RateLimitHints } from "./classify.ts";

export type Phase = "AVAILABLE" | "IN_USE" | "COOLING" | "DISABLED";

export type Cooldown = {
  /** When this cooldown began: a 429 from a call started before it is an echo of the same overload. */
  since: number;
  /** Only ever extended (LiteLLM shortens a running cooldown on a second 429: its issue #40130). */
  until: number;
  /** 429s (or failure runs) since the last success: the backoff's exponent. */
  strikes: number;
  reason: string;
  /** False for a pause the provider announced (`remaining: 0` on a success): it ends at `until` with no probe. */
  halfOpen: boolean;
  /** The probe in flight, when it started. */
  probeAt?: number;
};

export type Disabled = { reason: string; at: number; code?: string };

export type Counters = {
  calls: number;
  ok: number;
  rateLimited: number;
  transient: number;
  rejected: number;
  cooldowns: number;
};

export type KeyState = {
  fingerprint: string;
  scope: string;
  inFlight: number;
  cooldown?: Cooldown;
  disabled?: Disabled;
  /** After a 5xx or a timeout the key is used only when no other is (a short penalty, not a cooldown). */
  penaltyUntil?: number;
  /** 5xx and timeouts in a row; at `policy.breakAfter` the key cools down like a 429. */
  transientStreak: number;
  lastError?: string;
  lastUsedAt?: number;
  counters: Counters;
};

export type ScopeState = {
  name: string;
  /** AIMD: the share of the scope's configured limits to use now, in [rateFloor, 1]. */
  rate: number;
  /** The last multiplicative decrease: a 429 on a call sent before it was sent at the old rate, and decreases no more. */
  decreasedAt?: number;
  /** The last additive increase (or decrease): the increase is per second since then. */
  adjustedAt: number;
  cooldown?: Cooldown;
  disabled?: Disabled;
  inFlight: number;
  counters: Counters;
};

export type Pool = { keys: Record<string, KeyState>; scopes: Record<string, ScopeState> };

export type KeyPolicy = {
  /** The first cooldown's backoff; it doubles per strike... */
  cooldownBaseMs: number;
  /** ...up to this (the pool's `cooldownSeconds`). A server's Retry-After or reset may ask for longer... */
  cooldownMaxMs: number;
  /** ...up to this: a garbled or hostile header must not park a scope for a day. */
  hintMaxMs: number;
  /** AIMD's multiplicative decrease per 429 (CUBIC's 0.7: TCP's 0.5 gives up more of a 95 % throughput goal). */
  rateDecrease: number;
  /**
   * AIMD's additive increase, in share of the limit per second of successes: 0.02 climbs from 0.7 back to 1 in 15 s,
   * so a provider whose real limit sits just below the configured one costs about one 429 per 15 s (at 20 rps that
   * is 1 in 300 calls, 0.33 %, inside the 0.5 % goal).
   */
  rateIncreasePerSecond: number;
  rateFloor: number;
  /** Retry of a task after a 5xx or timeout: exponential from here, full jitter (many tasks retry at once)... */
  retryBaseMs: number;
  /** ...up to this. */
  retryMaxMs: number;
  /** How long a key that failed transiently is passed over while other keys can take the call. */
  penaltyMs: number;
  /** This many 5xx or timeouts in a row on one key cool it down (the endpoint behind it is failing). */
  breakAfter: number;
  /** A probe not settled after this long is taken as lost (its replica died), and another may go. */
  probeStaleMs: number;
};

export const DEFAULT_POLICY: KeyPolicy = Object.freeze({
  cooldownBaseMs: 1000,
  cooldownMaxMs: 60_000,
  hintMaxMs: 10 * 60_000,
  rateDecrease: 0.7,
  rateIncreasePerSecond: 0.02,
  rateFloor: 0.1,
  retryBaseMs: 200,
  retryMaxMs: 5000,
  penaltyMs: 2000,
  breakAfter: 5,
  probeStaleMs: 60_000,
});

/** The policy with `partial` applied, checked: a nonsense policy is a configuration error, said at once. */
export function keyPolicy(partial: Partial<KeyPolicy> = {}): KeyPolicy {
  const p = { ...DEFAULT_POLICY, ...partial };
  const atLeast = (k: keyof KeyPolicy, min: number) => {
    if (!Number.isFinite(p[k]) || p[k] < min)
      throw new Error(`key policy: ${k} must be a number ≥ ${min}, got ${p[k]}`);
  };
  for (const k of ["cooldownBaseMs", "cooldownMaxMs", "hintMaxMs", "retryBaseMs", "retryMaxMs", "penaltyMs"] as const)
    atLeast(k, 0);
  atLeast("rateIncreasePerSecond", 0);
  atLeast("breakAfter", 1);
  atLeast("probeStaleMs", 1);
  if (!(p.rateFloor > 0 && p.rateFloor <= 1)) throw new Error(`key policy: rateFloor must be in (0, 1]`);
  if (!(p.rateDecrease > 0 && p.rateDecrease < 1)) throw new Error(`key policy: rateDecrease must be in (0, 1)`);
  return p;
}

const zero = (): Counters => ({ calls: 0, ok: 0, rateLimited: 0, transient: 0, rejected: 0, cooldowns: 0 });

const newKey = (fingerprint: string, scope: string): KeyState => ({
  fingerprint,
  scope,
  inFlight: 0,
  transientStreak: 0,
  counters: zero(),
});

const newScope = (name: string, now: number): ScopeState => ({
  name,
  rate: 1,
  adjustedAt: now,
  inFlight: 0,
  counters: zero(),
});

export type KeyRef = { fingerprint: string; scope: string };

/**
 * The pool for `keys` (the Secret's list, fingerprinted), keeping what `prev` knew of the keys and scopes that stay:
 * a Secret edit that adds a key must not reset its siblings' cooldowns. A key that moved scope keeps its own state.
 */
export function syncPool(prev: Pool | undefined, keys: readonly KeyRef[], now: number): Pool {
  const out: Pool = { keys: {}, scopes: {} };
  for (const k of keys) {
    const old = prev?.keys[k.fingerprint];
    // A key moved to another scope starts its count of calls in flight afresh: those of the old scope settle there.
    out.keys[k.fingerprint] = !old
      ? newKey(k.fingerprint, k.scope)
      : old.scope === k.scope
        ? old
        : { ...old, scope: k.scope, inFlight: 0 };
    out.scopes[k.scope] ??= prev?.scopes[k.scope] ?? newScope(k.scope, now);
  }
  return out;
}

type Gate = { open: true; probe: boolean } | { open: false; until: number };

/** A breaker's gate now: closed (calls go), open (none until), or half-open (one probe). */
function gate(cd: Cooldown | undefined, now: number, p: KeyPolicy): Gate {
  if (!cd) return { open: true, probe: false };
  if (now < cd.until) return { open: false, until: cd.until };
  if (!cd.halfOpen) return { open: true, probe: false };
  if (cd.probeAt !== undefined && now - cd.probeAt < p.probeStaleMs)
    return { open: false, until: cd.probeAt + p.probeStaleMs };
  return { open: true, probe: true };
}

export type Availability =
  | { usable: true; probe: { key: boolean; scope: boolean }; penalized: boolean }
  | { usable: false; phase: "COOLING" | "DISABLED"; reason: string; until?: number };

/** Whether `fp` may take a call now, and whether that call is its (or its scope's) half-open probe. */
export function availability(pool: Pool, fp: string, now: number, p: KeyPolicy = DEFAULT_POLICY): Availability {
  const k = pool.keys[fp];
  if (!k) return { usable: false, phase: "DISABLED", reason: "no such key" };
  const s = pool.scopes[k.scope];
  if (k.disabled) return { usable: false, phase: "DISABLED", reason: k.disabled.reason };
  if (s?.disabled) return { usable: false, phase: "DISABLED", reason: `scope ${s.name}: ${s.disabled.reason}` };
  const sg = gate(s?.cooldown, now, p);
  const kg = gate(k.cooldown, now, p);
  if (!sg.open || !kg.open) {
    const until = Math.max(sg.open ? 0 : sg.until, kg.open ? 0 : kg.until);
    const reason = !sg.open ? `scope ${s?.name}: ${s?.cooldown?.reason}` : (k.cooldown?.reason ?? "cooling");
    return { usable: false, phase: "COOLING", reason, until };
  }
  return {
    usable: true,
    probe: { key: kg.probe, scope: sg.probe },
    penalized: k.penaltyUntil !== undefined && now < k.penaltyUntil,
  };
}

/** The phase shown in the pool's status. A key waiting for its probe is still COOLING. */
export function keyPhase(pool: Pool, fp: string, now: number, p: KeyPolicy = DEFAULT_POLICY): Phase {
  const a = availability(pool, fp, now, p);
  if (!a.usable) return a.phase;
  if (a.probe.key || a.probe.scope) return "COOLING";
  return (pool.keys[fp]?.inFlight ?? 0) > 0 ? "IN_USE" : "AVAILABLE";
}

/**
 * A key as the AssessmentPool's status shows it: by fingerprint, with its scope's current rate, the cooldown's end
 * and the reason. `lastError` quotes the provider for 5xx and 4xx answers: pass it through `scrubKeys` before it
 * leaves the process (key errors are never quoted, see classify.ts).
 */
export type KeyView = {
  fingerprint: string;
  scope: string;
  phase: Phase;
  /** The scope's AIMD share of its configured limits. */
  rate: number;
  inFlight: number;
  /** When the key's or its scope's cooldown ends (ms epoch), while COOLING. */
  coolingUntil?: number;
  /** Why it is COOLING or DISABLED. */
  reason?: string;
  lastError?: string;
  counters: Counters;
};

export function keyView(pool: Pool, fp: string, now: number, p: KeyPolicy = DEFAULT_POLICY): KeyView | undefined {
  const k = pool.keys[fp];
  if (!k) return undefined;
  const s = pool.scopes[k.scope];
  const a = availability(pool, fp, now, p);
  const phase = keyPhase(pool, fp, now, p);
  const until = Math.max(k.cooldown?.until ?? 0, s?.cooldown?.until ?? 0);
  const reason = !a.usable
    ? a.reason
    : phase === "COOLING"
      ? `waiting for its probe: ${(a.probe.scope ? s?.cooldown?.reason : k.cooldown?.reason) ?? ""}`
      : undefined;
  return {
    fingerprint: fp,
    scope: k.scope,
    phase,
    rate: s?.rate ?? 1,
    inFlight: k.inFlight,
    ...(phase === "COOLING" && until > 0 ? { coolingUntil: until } : {}),
    ...(reason !== undefined ? { reason } : {}),
    ...(k.lastError !== undefined ? { lastError: k.lastError } : {}),
    counters: { ...k.counters },
  };
}

/** One call in flight: what `settle` needs to know about how it started. */
export type Ticket = { fingerprint: string; scope: string; startedAt: number; probe: { key: boolean; scope: boolean } };

export type Begin = { ok: true; pool: Pool; ticket: Ticket } | { ok: false; reason: string; until?: number };

/** Start a call on `fp`: counts it in flight and, when it is a probe, holds the half-open gate for it. */
export function begin(pool: Pool, fp: string, now: number, p: KeyPolicy = DEFAULT_POLICY): Begin {
  const a = availability(pool, fp, now, p);
  if (!a.usable) return { ok: false, reason: a.reason, ...(a.until !== undefined ? { until: a.until } : {}) };
  const k = pool.keys[fp] as KeyState;
  const s = pool.scopes[k.scope] as ScopeState;
  // A pause the provider announced ends by itself: drop it once past.
  const held = (cd: Cooldown | undefined, probe: boolean) =>
    cd && now >= cd.until && !cd.halfOpen ? undefined : probe && cd ? { ...cd, probeAt: now } : cd;
  const key: KeyState = {
    ...k,
    inFlight: k.inFlight + 1,
    lastUsedAt: now,
    counters: { ...k.counters, calls: k.counters.calls + 1 },
  };
  setOpt(key, "cooldown", held(k.cooldown, a.probe.key));
  const scope: ScopeState = {
    ...s,
    inFlight: s.inFlight + 1,
    counters: { ...s.counters, calls: s.counters.calls + 1 },
  };
  setOpt(scope, "cooldown", held(s.cooldown, a.probe.scope));
  return {
    ok: true,
    pool: put(pool, key, scope),
    ticket: { fingerprint: fp, scope: k.scope, startedAt: now, probe: a.probe },
  };
}

export type Outcome = { kind: "ok"; hints?: RateLimitHints } | Classification;

/** What the scheduler does with the task after this call. */
export type Next =
  | { action: "done" }
  /** Try again after `delayMs`, on another key than `avoid` where one can take it; `pick` says wait when none can. */
  | { action: "retry"; delayMs: number; avoid: string; reason: string }
  /** The task itself is refused (a 400): to the DLQ with the reason. */
  | { action: "fail"; reason: string }
  /** The call was aborted (shutdown or deadline): the task's own deadline logic decides. */
  | { action: "stop"; reason: string };

export type SettleContext = {
  now: number;
  /** [0, 1): jitter. */
  random: () => number;
  /** The task's attempt that just failed, 1 for its first: the retry backoff's exponent. */
  attempt: number;
  policy?: KeyPolicy;
};

/** A call's outcome applied to its key and scope, and what to do with its task. */
export function settle(pool: Pool, t: Ticket, outcome: Outcome, c: SettleContext): { pool: Pool; next: Next } {
  const p = c.policy ?? DEFAULT_POLICY;
  const { now } = c;
  const k0 = pool.keys[t.fingerprint];
  const s0 = pool.scopes[t.scope];
  // The key left the Secret (or moved scope) while its call ran: the answer still tells about the scope it was sent
  // in, while the key's side is worked on a throwaway copy. Likewise a scope no key names any more.
  const keyStays = k0 !== undefined && k0.scope === t.scope;
  const kb = keyStays ? k0 : newKey(t.fingerprint, t.scope);
  const sb = s0 ?? newScope(t.scope, now);
  const key: KeyState = { ...kb, inFlight: Math.max(0, kb.inFlight - 1), counters: { ...kb.counters } };
  const scope: ScopeState = { ...sb, inFlight: Math.max(0, sb.inFlight - 1), counters: { ...sb.counters } };
  const bump = (f: keyof Counters) => {
    key.counters[f]++;
    scope.counters[f]++;
  };

  switch (outcome.kind) {
    case "ok":
    case "rejected": {
      // A 400 got past authentication and the rate limiter: for the key and scope it is as good as a success.
      bump(outcome.kind === "ok" ? "ok" : "rejected");
      if (t.probe.key) delete key.cooldown;
      if (t.probe.scope) delete scope.cooldown;
      key.transientStreak = 0;
      delete key.penaltyUntil;
      if (outcome.kind === "ok") {
        increase(scope, now, p);
        const pause = announcedPause(outcome.hints, p);
        if (pause !== undefined)
          scope.cooldown = extend(scope.cooldown, now, pause, "the provider says the limit is used up", false);
      }
      break;
    }
    case "rate_limited": {
      bump("rateLimited");
      key.lastError = outcome.reason;
      // Any 429 slows the scope, a key's too: the scope's rate is what its keys' calls add up to.
      decrease(scope, t, now, p);
      const target = outcome.target === "scope" ? scope : key;
      const hint = Math.min(p.hintMaxMs, Math.max(outcome.retryAfterMs ?? 0, outcome.resetMs ?? 0));
      strike(target, t, now, c.random, p, hint, outcome.reason);
      // A probe answered by the other level's 429 tells nothing about its own: let another go later.
      if (target !== key && t.probe.key && key.cooldown) key.cooldown = unprobed(key.cooldown);
      if (target !== scope && t.probe.scope && scope.cooldown) scope.cooldown = unprobed(scope.cooldown);
      break;
    }
    case "disabled": {
      const d: Disabled = {
        reason: outcome.reason,
        at: now,
        ...(outcome.code !== undefined ? { code: outcome.code } : {}),
      };
      if (outcome.target === "scope") scope.disabled ??= d;
      else key.disabled ??= d;
      key.lastError = outcome.reason;
      // A key revoked while it carried its scope's probe must not hold the scope's gate until the probe goes stale.
      if (t.probe.scope && scope.cooldown) scope.cooldown = unprobed(scope.cooldown);
      break;
    }
    case "transient": {
      bump("transient");
      key.lastError = outcome.reason;
      key.transientStreak++;
      key.penaltyUntil = now + p.penaltyMs;
      // A failed probe opens the breaker again, for longer; so does a run of failures on a healthy key.
      if (t.probe.key || key.transientStreak >= p.breakAfter)
        strike(key, t, now, c.random, p, 0, `${inARow(key.transientStreak)}: ${outcome.reason}`);
      if (t.probe.scope && scope.cooldown) scope.cooldown = unprobed(scope.cooldown);
      break;
    }
    case "aborted": {
      if (t.probe.key && key.cooldown) key.cooldown = unprobed(key.cooldown);
      if (t.probe.scope && scope.cooldown) scope.cooldown = unprobed(scope.cooldown);
      break;
    }
  }
  if (!keyStays && !s0) return { pool, next: nextFor(outcome, t, c, p) };
  const out: Pool = {
    keys: keyStays ? { ...pool.keys, [key.fingerprint]: key } : pool.keys,
    scopes: s0 ? { ...pool.scopes, [scope.name]: scope } : pool.scopes,
  };
  return { pool: out, next: nextFor(outcome, t, c, p) };
}

const inARow = (n: number) => `${n} failure${n === 1 ? "" : "s"} in a row`;

function nextFor(o: Outcome, t: Ticket, c: SettleContext, p: KeyPolicy): Next {
  switch (o.kind) {
    case "ok":
      return { action: "done" };
    case "rejected":
      return { action: "fail", reason: o.reason };
    case "aborted":
      return { action: "stop", reason: o.reason };
    case "rate_limited":
    case "disabled":
      // Another key (or scope) can take it now; when none can, pick answers "wait".
      return { action: "retry", delayMs: 0, avoid: t.fingerprint, reason: o.reason };
    case "transient":
      return { action: "retry", delayMs: retryDelay(c.attempt, p, c.random), avoid: t.fingerprint, reason: o.reason };
  }
}

/** Exponential from `retryBaseMs`, capped, full jitter (uniform in [0, d]: many tasks retry at once after an outage). */
export function retryDelay(attempt: number, p: Pick<KeyPolicy, "retryBaseMs" | "retryMaxMs">, random: () => number) {
  const d = Math.min(p.retryMaxMs, p.retryBaseMs * 2 ** Math.min(Math.max(attempt, 1) - 1, 1000));
  return Math.round(d * clamp01(random()));
}

/**
 * The cooldown's backoff for strike `n`: exponential from `cooldownBaseMs`, capped, equal jitter (uniform in
 * [d/2, d]): replicas that met the same 429 spread their probes, and none comes back at once.
 */
export function cooldownBackoff(
  n: number,
  p: Pick<KeyPolicy, "cooldownBaseMs" | "cooldownMaxMs">,
  random: () => number,
) {
  const d = Math.min(p.cooldownMaxMs, p.cooldownBaseMs * 2 ** Math.min(Math.max(n, 1) - 1, 1000));
  return Math.round(d / 2 + (d / 2) * clamp01(random()));
}

const clamp01 = (r: number) => (Number.isFinite(r) ? Math.min(Math.max(r, 0), 1) : 0);

/** Cool `target` down after a 429 or a failed probe: the longest of the hint and the backoff, never shorter. */
function strike(
  target: KeyState | ScopeState,
  t: Ticket,
  now: number,
  random: () => number,
  p: KeyPolicy,
  hintMs: number,
  reason: string,
) {
  const cd = target.cooldown;
  // Calls sent before this cooldown began meet the same overload: they may lengthen it, but add no strike.
  const echo = cd?.halfOpen === true && t.startedAt < cd.since;
  const strikes = (cd?.halfOpen ? cd.strikes : 0) + (echo ? 0 : 1);
  const ms = Math.max(hintMs, cooldownBackoff(strikes, p, random));
  if (!echo || !cd) target.counters.cooldowns++;
  target.cooldown = {
    since: echo && cd ? cd.since : now,
    until: Math.max(cd?.until ?? 0, now + ms),
    strikes,
    reason,
    halfOpen: true,
  };
}

/** Extend (never shorten) a cooldown, as a pause when `halfOpen` is false and nothing stronger runs. */
function extend(cd: Cooldown | undefined, now: number, ms: number, reason: string, halfOpen: boolean): Cooldown {
  if (cd?.halfOpen) return { ...cd, until: Math.max(cd.until, now + ms) };
  return { since: cd?.since ?? now, until: Math.max(cd?.until ?? 0, now + ms), strikes: 0, reason, halfOpen };
}

/** A success whose headers say a limit has 0 left: pause the scope until that limit resets, before any 429. */
function announcedPause(h: RateLimitHints | undefined, p: KeyPolicy): number | undefined {
  if (!h?.remaining) return undefined;
  const waits = (["requests", "tokens"] as const)
    .filter((d) => h.remaining?.[d] === 0 && h.resetMs?.[d] !== undefined)
    .map((d) => h.resetMs?.[d] as number);
  return waits.length ? Math.min(p.hintMaxMs, Math.max(...waits)) : undefined;
}

function unprobed(cd: Cooldown): Cooldown {
  const { probeAt: _, ...rest } = cd;
  return rest;
}

function decrease(s: ScopeState, t: Ticket, now: number, p: KeyPolicy) {
  // Once per round: the calls in flight when the first 429 came were all sent at the old rate.
  if (s.decreasedAt !== undefined && t.startedAt < s.decreasedAt) return;
  s.rate = Math.max(p.rateFloor, s.rate * p.rateDecrease);
  s.decreasedAt = now;
  s.adjustedAt = now;
}

function increase(s: ScopeState, now: number, p: KeyPolicy) {
  if (s.rate >= 1) {
    s.adjustedAt = now;
    return;
  }
  const dt = Math.max(0, now - s.adjustedAt) / 1000;
  s.rate = Math.min(1, s.rate + p.rateIncreasePerSecond * dt);
  s.adjustedAt = now;
}

/** The scope's limits scaled by its AIMD rate, for the GCRA (limits are per second, minute, ...: any unit). */
export function effectiveLimits<L extends Record<string, number | undefined>>(pool: Pool, scope: string, limits: L): L {
  const r = pool.scopes[scope]?.rate ?? 1;
  const out: Record<string, number | undefined> = {};
  for (const [k, v] of Object.entries(limits)) out[k] = v === undefined ? undefined : v * r;
  return out as L;
}

/** Back in service after a person acted (a new key, the bill paid): the key's or the scope's DISABLED is cleared. */
export function enable(pool: Pool, what: { fingerprint: string } | { scope: string }): Pool {
  if ("fingerprint" in what) {
    const k = pool.keys[what.fingerprint];
    if (!k?.disabled) return pool;
    const { disabled: _, ...rest } = k;
    return { ...pool, keys: { ...pool.keys, [k.fingerprint]: { ...rest, transientStreak: 0 } } };
  }
  const s = pool.scopes[what.scope];
  if (!s?.disabled) return pool;
  const { disabled: _, ...rest } = s;
  return { ...pool, scopes: { ...pool.scopes, [s.name]: rest } };
}

function put(pool: Pool, key: KeyState, scope: ScopeState): Pool {
  return {
    keys: { ...pool.keys, [key.fingerprint]: key },
    scopes: { ...pool.scopes, [scope.name]: scope },
  };
}

function setOpt<T extends object, K extends keyof T>(o: T, k: K, v: T[K] | undefined) {
  if (v === undefined) delete o[k];
  else o[k] = v;
}
