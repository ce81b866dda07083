import { describe, expect, it } from "vitest";
import type { Classification } from "../../assessor/keys/classify.ts";
import {
  availability,
  begin,
  cooldownBackoff,
  DEFAULT_POLICY,
  effectiveLimits,
  enable,
  keyPhase,
  keyPolicy,
  keyView,
  type Outcome,
  type Pool,
  retryDelay,
  type SettleContext,
  settle,
  syncPool,
  type Ticket,
} from "../../assessor/keys/key-state.ts";

const T0 = 1_000_000;
const constant = (r: number) => () => r;
// Account A: keys a1, a2; account B: key b1.
const KEYS = [
  { fingerprint: "a1", scope: "A" },
  { fingerprint: "a2", scope: "A" },
  { fingerprint: "b1", scope: "B" },
];
const fresh = () => syncPool(undefined, KEYS, T0);

/** Begin a call on `fp` at `now`, expecting it to be admitted. */
function start(pool: Pool, fp: string, now: number): { pool: Pool; ticket: Ticket } {
  const b = begin(pool, fp, now);
  if (!b.ok) throw new Error(`begin ${fp}: ${b.reason}`);
  return b;
}
const ctx = (now: number, extra: Partial<SettleContext> = {}): SettleContext => ({
  now,
  random: constant(0.5),
  attempt: 1,
  ...extra,
});
/** One call on `fp` from `now` to `now + ms`, with `outcome`. */
function call(pool: Pool, fp: string, now: number, outcome: Outcome, ms = 100, extra: Partial<SettleContext> = {}) {
  const s = start(pool, fp, now);
  return settle(s.pool, s.ticket, outcome, ctx(now + ms, extra));
}
const r429 = (o: Partial<Extract<Classification, { kind: "rate_limited" }>> = {}): Outcome => ({
  kind: "rate_limited",
  target: "scope",
  status: 429,
  reason: "HTTP 429 Throttling.RateQuota: request rate",
  ...o,
});
const ok: Outcome = { kind: "ok" };
const phases = (pool: Pool, now: number) =>
  Object.fromEntries(KEYS.map((k) => [k.fingerprint, keyPhase(pool, k.fingerprint, now)]));

describe("syncPool", () => {
  it("starts every key AVAILABLE at the full rate, one scope per account", () => {
    const p = fresh();
    expect(phases(p, T0)).toEqual({ a1: "AVAILABLE", a2: "AVAILABLE", b1: "AVAILABLE" });
    expect(Object.keys(p.scopes)).toEqual(["A", "B"]);
    expect(p.scopes.A?.rate).toBe(1);
  });

  it("keeps the state of keys and scopes that stay, drops those that go, adds new ones", () => {
    let p = call(fresh(), "a1", T0, r429()).pool;
    p = syncPool(p, [KEYS[0]!, { fingerprint: "c1", scope: "C" }], T0 + 200);
    expect(Object.keys(p.keys)).toEqual(["a1", "c1"]);
    expect(Object.keys(p.scopes)).toEqual(["A", "C"]);
    expect(p.scopes.A?.cooldown).toBeDefined();
    expect(p.keys.a1?.counters.rateLimited).toBe(1);
    expect(keyPhase(p, "c1", T0 + 200)).toBe("AVAILABLE");
    expect(keyPhase(p, "b1", T0 + 200)).toBe("DISABLED");
    expect(availability(p, "b1", T0 + 200)).toEqual({ usable: false, phase: "DISABLED", reason: "no such key" });
  });
});

describe("a call's life", () => {
  it("IN_USE while in flight (several at once), AVAILABLE after, counted on key and scope", () => {
    let p = fresh();
    const one = start(p, "a1", T0);
    const two = start(one.pool, "a1", T0 + 1);
    p = two.pool;
    expect(p.keys.a1?.inFlight).toBe(2);
    expect(p.scopes.A?.inFlight).toBe(2);
    expect(keyPhase(p, "a1", T0 + 2)).toBe("IN_USE");
    p = settle(p, one.ticket, ok, ctx(T0 + 300)).pool;
    expect(keyPhase(p, "a1", T0 + 300)).toBe("IN_USE");
    const done = settle(p, two.ticket, ok, ctx(T0 + 400));
    expect(done.next).toEqual({ action: "done" });
    expect(keyPhase(done.pool, "a1", T0 + 400)).toBe("AVAILABLE");
    expect(done.pool.keys.a1?.counters).toEqual({
      calls: 2,
      ok: 2,
      rateLimited: 0,
      transient: 0,
      rejected: 0,
      cooldowns: 0,
    });
    expect(done.pool.scopes.A?.counters.calls).toBe(2);
    expect(done.pool.keys.a1?.lastUsedAt).toBe(T0 + 1);
  });

  it("is pure: the pool passed in is not changed", () => {
    const p = fresh();
    const snapshot = structuredClone(p);
    const s = start(p, "a1", T0);
    settle(s.pool, s.ticket, r429({ retryAfterMs: 5000 }), ctx(T0 + 100));
    expect(p).toEqual(snapshot);
  });
});

describe("429: cooldown", () => {
  it("a scope's 429 cools every key of that scope for the longest of Retry-After and the backoff", () => {
    const { pool, next } = call(fresh(), "a1", T0, r429({ retryAfterMs: 3000 }));
    const now = T0 + 100;
    expect(next).toEqual({
      action: "retry",
      delayMs: 0,
      avoid: "a1",
      reason: "HTTP 429 Throttling.RateQuota: request rate",
    });
    expect(phases(pool, now)).toEqual({ a1: "COOLING", a2: "COOLING", b1: "AVAILABLE" });
    expect(pool.scopes.A?.cooldown).toEqual({
      since: now,
      until: now + 3000,
      strikes: 1,
      reason: "HTTP 429 Throttling.RateQuota: request rate",
      halfOpen: true,
    });
    expect(availability(pool, "a2", now + 10)).toEqual({
      usable: false,
      phase: "COOLING",
      reason: "scope A: HTTP 429 Throttling.RateQuota: request rate",
      until: now + 3000,
    });
    expect(begin(pool, "a2", now + 10)).toEqual({
      ok: false,
      reason: "scope A: HTTP 429 Throttling.RateQuota: request rate",
      until: now + 3000,
    });
  });

  it("with no hint the backoff decides (1 s base, equal jitter); reset-* counts like Retry-After", () => {
    const lo = call(fresh(), "a1", T0, r429(), 100, { random: constant(0) }).pool;
    expect(lo.scopes.A?.cooldown?.until).toBe(T0 + 100 + 500);
    const hi = call(fresh(), "a1", T0, r429(), 100, { random: constant(0.99999) }).pool;
    expect(hi.scopes.A?.cooldown?.until).toBe(T0 + 100 + 1000);
    const reset = call(fresh(), "a1", T0, r429({ retryAfterMs: 2000, resetMs: 7000 })).pool;
    expect(reset.scopes.A?.cooldown?.until).toBe(T0 + 100 + 7000);
  });

  it("a key's 429 cools only that key", () => {
    const { pool } = call(fresh(), "a1", T0, r429({ target: "key", retryAfterMs: 2000 }));
    expect(phases(pool, T0 + 100)).toEqual({ a1: "COOLING", a2: "AVAILABLE", b1: "AVAILABLE" });
    expect(pool.keys.a1?.cooldown?.until).toBe(T0 + 2100);
    expect(pool.keys.a1?.lastError).toBe("HTTP 429 Throttling.RateQuota: request rate");
  });

  it("is only ever extended: a shorter second Retry-After leaves it, a longer one lengthens it", () => {
    let p = fresh();
    const x = start(p, "a1", T0);
    const y = start(x.pool, "a2", T0 + 1);
    const z = start(y.pool, "a2", T0 + 2);
    p = settle(z.pool, x.ticket, r429({ retryAfterMs: 10_000 }), ctx(T0 + 100)).pool;
    expect(p.scopes.A?.cooldown?.until).toBe(T0 + 10_100);
    // LiteLLM's #40130: the second 429 says 1 s, and the cooldown would end 9 s early.
    p = settle(p, y.ticket, r429({ retryAfterMs: 1000 }), ctx(T0 + 200)).pool;
    expect(p.scopes.A?.cooldown?.until).toBe(T0 + 10_100);
    p = settle(p, z.ticket, r429({ retryAfterMs: 20_000 }), ctx(T0 + 300)).pool;
    expect(p.scopes.A?.cooldown?.until).toBe(T0 + 20_300);
    // Those two were sent before the cooldown began: echoes, no new strike, one cooldown counted.
    expect(p.scopes.A?.cooldown?.strikes).toBe(1);
    expect(p.scopes.A?.cooldown?.since).toBe(T0 + 100);
    expect(p.scopes.A?.counters.cooldowns).toBe(1);
    expect(p.scopes.A?.counters.rateLimited).toBe(3);
  });

  it("caps a server's hint at hintMaxMs", () => {
    const { pool } = call(fresh(), "a1", T0, r429({ retryAfterMs: 86_400_000 }));
    expect(pool.scopes.A?.cooldown?.until).toBe(T0 + 100 + DEFAULT_POLICY.hintMaxMs);
  });
});

describe("half-open probe", () => {
  // Cooled at T0+100 for 1 s (random 0.99999 gives the full backoff).
  const cooled = () => call(fresh(), "a1", T0, r429(), 100, { random: constant(0.99999) }).pool;
  const after = T0 + 1100;

  it("after the cooldown one probe may go; while it runs the scope takes no other call", () => {
    const p = cooled();
    expect(keyPhase(p, "a1", after - 1)).toBe("COOLING");
    expect(availability(p, "a2", after)).toEqual({
      usable: true,
      probe: { key: false, scope: true },
      penalized: false,
    });
    // Waiting for its probe, a key is still shown COOLING.
    expect(keyPhase(p, "a2", after)).toBe("COOLING");
    const probe = start(p, "a2", after);
    expect(probe.ticket.probe).toEqual({ key: false, scope: true });
    expect(availability(probe.pool, "a1", after + 5)).toMatchObject({
      usable: false,
      phase: "COOLING",
      until: after + 60_000,
    });
    expect(availability(probe.pool, "b1", after + 5)).toMatchObject({ usable: true });
  });

  it("its success closes the breaker: every key of the scope AVAILABLE, strikes forgotten", () => {
    const probe = start(cooled(), "a2", after);
    const { pool } = settle(probe.pool, probe.ticket, ok, ctx(after + 300));
    expect(phases(pool, after + 300)).toEqual({ a1: "AVAILABLE", a2: "AVAILABLE", b1: "AVAILABLE" });
    expect(pool.scopes.A?.cooldown).toBeUndefined();
    // The next 429 starts from the base backoff again.
    const again = call(pool, "a1", after + 400, r429(), 100, { random: constant(0.99999) }).pool;
    expect(again.scopes.A?.cooldown?.strikes).toBe(1);
    expect(again.scopes.A?.cooldown?.until).toBe(after + 500 + 1000);
  });

  it("its failure opens it again for longer (the backoff doubles per strike, up to the cap)", () => {
    let p = cooled();
    let now = after;
    const untils: number[] = [];
    for (let i = 0; i < 8; i++) {
      const probe = start(p, "a1", now);
      const r = settle(probe.pool, probe.ticket, r429(), ctx(now + 100, { random: constant(0.99999) }));
      p = r.pool;
      const cd = p.scopes.A!.cooldown!;
      untils.push(cd.until - (now + 100));
      now = cd.until;
    }
    expect(untils).toEqual([2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000, 60_000]);
    expect(p.scopes.A?.cooldown?.strikes).toBe(9);
    expect(p.scopes.A?.counters.cooldowns).toBe(9);
  });

  it("a probe whose replica died is taken as lost after probeStaleMs, and another may go", () => {
    const probe = start(cooled(), "a1", after);
    expect(availability(probe.pool, "a2", after + DEFAULT_POLICY.probeStaleMs - 1).usable).toBe(false);
    expect(availability(probe.pool, "a2", after + DEFAULT_POLICY.probeStaleMs)).toMatchObject({
      usable: true,
      probe: { scope: true },
    });
  });

  it("an aborted probe frees the gate at once, and says nothing", () => {
    const probe = start(cooled(), "a1", after);
    const r = settle(probe.pool, probe.ticket, { kind: "aborted", reason: "shutdown" }, ctx(after + 10));
    expect(r.next).toEqual({ action: "stop", reason: "shutdown" });
    expect(availability(r.pool, "a2", after + 10)).toMatchObject({ usable: true, probe: { scope: true } });
    expect(r.pool.scopes.A?.cooldown?.strikes).toBe(1);
  });

  it("a probe answered 400 got past the limiter: the breaker closes, the task fails", () => {
    const probe = start(cooled(), "a1", after);
    const r = settle(
      probe.pool,
      probe.ticket,
      { kind: "rejected", status: 400, reason: "HTTP 400: bad" },
      ctx(after + 10),
    );
    expect(r.next).toEqual({ action: "fail", reason: "HTTP 400: bad" });
    expect(keyPhase(r.pool, "a2", after + 10)).toBe("AVAILABLE");
    expect(r.pool.keys.a1?.counters.rejected).toBe(1);
  });

  it("a key probe answered by the scope's 429 is released and waits for the scope", () => {
    let p = call(fresh(), "a1", T0, r429({ target: "key" }), 100, { random: constant(0.99999) }).pool;
    const probe = start(p, "a1", after);
    expect(probe.ticket.probe).toEqual({ key: true, scope: false });
    p = settle(probe.pool, probe.ticket, r429({ retryAfterMs: 5000 }), ctx(after + 100)).pool;
    expect(p.keys.a1?.cooldown?.probeAt).toBeUndefined();
    expect(p.keys.a1?.cooldown?.strikes).toBe(1);
    expect(availability(p, "a1", after + 5100)).toEqual({
      usable: true,
      probe: { key: true, scope: true },
      penalized: false,
    });
  });
});

describe("AIMD on the scope's rate", () => {
  it("multiplies by 0.7 per 429, once per round of calls in flight, down to the floor", () => {
    let p = fresh();
    const xs = [0, 1, 2].map((i) => T0 + i);
    const tickets: Ticket[] = [];
    for (const t of xs) {
      const s = start(p, "a1", t);
      p = s.pool;
      tickets.push(s.ticket);
    }
    for (const [i, t] of tickets.entries()) p = settle(p, t, r429(), ctx(T0 + 100 + i)).pool;
    // Three 429s from calls sent at the old rate: one decrease.
    expect(p.scopes.A?.rate).toBeCloseTo(0.7);
    expect(p.scopes.B?.rate).toBe(1);
    // A call sent after the decrease (the probe) that meets a 429 again decreases again.
    let now = p.scopes.A!.cooldown!.until;
    for (let i = 0; i < 10; i++) {
      const s = start(p, "a1", now);
      p = settle(s.pool, s.ticket, r429(), ctx(now + 10)).pool;
      now = p.scopes.A!.cooldown!.until;
    }
    expect(p.scopes.A?.rate).toBe(DEFAULT_POLICY.rateFloor);
  });

  it("climbs back by 0.02 per second of successes, to 1 and no higher", () => {
    let p = call(fresh(), "b1", T0, r429(), 100, { random: constant(0) }).pool;
    const down = T0 + 100;
    expect(p.scopes.B?.rate).toBeCloseTo(0.7);
    // The probe after the 0.5 s cooldown succeeds 1.9 s after the decrease.
    p = call(p, "b1", down + 1000, ok, 900).pool;
    expect(p.scopes.B?.rate).toBeCloseTo(0.7 + 0.02 * 1.9);
    p = call(p, "b1", down + 5000, ok, 0).pool;
    expect(p.scopes.B?.rate).toBeCloseTo(0.8);
    p = call(p, "b1", down + 60_000, ok, 0).pool;
    expect(p.scopes.B?.rate).toBe(1);
  });

  it("effectiveLimits scales the scope's configured limits by its rate", () => {
    const p = call(fresh(), "a1", T0, r429()).pool;
    expect(effectiveLimits(p, "A", { rps: 10, rpm: 600, tpm: undefined })).toEqual({
      rps: 7,
      rpm: 420,
      tpm: undefined,
    });
    expect(effectiveLimits(p, "B", { rps: 5 })).toEqual({ rps: 5 });
    expect(effectiveLimits(p, "nope", { rps: 5 })).toEqual({ rps: 5 });
  });
});

describe("DISABLED", () => {
  const invalid: Outcome = {
    kind: "disabled",
    target: "key",
    status: 401,
    code: "InvalidApiKey",
    reason: "HTTP 401 InvalidApiKey: the key is invalid or revoked",
  };
  const arrears: Outcome = {
    kind: "disabled",
    target: "scope",
    status: 403,
    code: "Arrearage",
    reason: "HTTP 403 Arrearage: the account is in arrears",
  };

  it("a bad key is DISABLED with the reason, its siblings go on, its task moves to another key at once", () => {
    const r = call(fresh(), "a1", T0, invalid);
    expect(r.next).toEqual({
      action: "retry",
      delayMs: 0,
      avoid: "a1",
      reason: invalid.kind === "disabled" ? invalid.reason : "",
    });
    expect(phases(r.pool, T0 + 100)).toEqual({ a1: "DISABLED", a2: "AVAILABLE", b1: "AVAILABLE" });
    expect(r.pool.keys.a1?.disabled).toEqual({
      reason: "HTTP 401 InvalidApiKey: the key is invalid or revoked",
      at: T0 + 100,
      code: "InvalidApiKey",
    });
    // No timer brings it back: an hour later it is still DISABLED.
    expect(keyPhase(r.pool, "a1", T0 + 3_600_000)).toBe("DISABLED");
    expect(begin(r.pool, "a1", T0 + 200)).toEqual({
      ok: false,
      reason: "HTTP 401 InvalidApiKey: the key is invalid or revoked",
    });
  });

  it("Arrearage disables the whole account's scope, and the first reason stays", () => {
    let p = fresh();
    const x = start(p, "a1", T0);
    const y = start(x.pool, "a2", T0);
    p = settle(y.pool, x.ticket, arrears, ctx(T0 + 100)).pool;
    p = settle(p, y.ticket, { ...arrears, reason: "later" } as Outcome, ctx(T0 + 200)).pool;
    expect(phases(p, T0 + 200)).toEqual({ a1: "DISABLED", a2: "DISABLED", b1: "AVAILABLE" });
    expect(p.scopes.A?.disabled?.reason).toBe("HTTP 403 Arrearage: the account is in arrears");
    expect(availability(p, "a2", T0 + 300)).toEqual({
      usable: false,
      phase: "DISABLED",
      reason: "scope A: HTTP 403 Arrearage: the account is in arrears",
    });
  });

  it("a key revoked while it carried its scope's probe frees the scope's gate at once", () => {
    let p = call(fresh(), "a1", T0, r429(), 100, { random: constant(0) }).pool;
    const probe = start(p, "a1", T0 + 600);
    expect(probe.ticket.probe).toEqual({ key: false, scope: true });
    p = settle(probe.pool, probe.ticket, invalid, ctx(T0 + 700)).pool;
    expect(keyPhase(p, "a1", T0 + 700)).toBe("DISABLED");
    expect(availability(p, "a2", T0 + 700)).toMatchObject({ usable: true, probe: { scope: true } });
  });

  it("enable clears it, for a key or a scope; enabling what is not disabled changes nothing", () => {
    const k = call(fresh(), "a1", T0, invalid).pool;
    expect(keyPhase(enable(k, { fingerprint: "a1" }), "a1", T0 + 200)).toBe("AVAILABLE");
    const s = call(fresh(), "a1", T0, arrears).pool;
    expect(phases(enable(s, { scope: "A" }), T0 + 200)).toEqual({ a1: "AVAILABLE", a2: "AVAILABLE", b1: "AVAILABLE" });
    expect(enable(s, { fingerprint: "b1" })).toBe(s);
    expect(enable(s, { scope: "B" })).toBe(s);
    expect(enable(s, { fingerprint: "zz" })).toBe(s);
  });
});

describe("5xx and timeouts", () => {
  const e503: Outcome = { kind: "transient", cause: "server", status: 503, reason: "HTTP 503" };

  it("retry elsewhere after an exponential, fully jittered delay; the key stays in service with a short penalty", () => {
    const r = call(fresh(), "a1", T0, e503, 100, { attempt: 3, random: constant(0.5) });
    // 200 ms × 2² = 800 ms, full jitter at 0.5: 400 ms.
    expect(r.next).toEqual({ action: "retry", delayMs: 400, avoid: "a1", reason: "HTTP 503" });
    expect(keyPhase(r.pool, "a1", T0 + 100)).toBe("AVAILABLE");
    expect(availability(r.pool, "a1", T0 + 100)).toEqual({
      usable: true,
      probe: { key: false, scope: false },
      penalized: true,
    });
    expect(availability(r.pool, "a1", T0 + 100 + DEFAULT_POLICY.penaltyMs)).toMatchObject({ penalized: false });
    expect(r.pool.scopes.A?.rate).toBe(1);
    expect(r.pool.keys.a1?.counters.transient).toBe(1);
  });

  it("a success clears the penalty and the run", () => {
    let p = call(fresh(), "a1", T0, e503).pool;
    p = call(p, "a1", T0 + 200, ok).pool;
    expect(p.keys.a1?.transientStreak).toBe(0);
    expect(p.keys.a1?.penaltyUntil).toBeUndefined();
  });

  it("five in a row cool the key (not its scope); a failed key probe cools it again, longer", () => {
    let p = fresh();
    let now = T0;
    for (let i = 0; i < 4; i++) {
      p = call(p, "a1", now, e503).pool;
      now += 200;
    }
    expect(keyPhase(p, "a1", now)).toBe("AVAILABLE");
    p = call(p, "a1", now, { kind: "transient", cause: "timeout", reason: "no response in time" }, 100, {
      random: constant(0.99999),
    }).pool;
    expect(phases(p, now + 100)).toEqual({ a1: "COOLING", a2: "AVAILABLE", b1: "AVAILABLE" });
    expect(p.keys.a1?.cooldown).toMatchObject({
      strikes: 1,
      until: now + 1100,
      reason: "5 failures in a row: no response in time",
    });
    const probe = start(p, "a1", now + 1100);
    expect(probe.ticket.probe).toEqual({ key: true, scope: false });
    p = settle(probe.pool, probe.ticket, e503, ctx(now + 1200, { random: constant(0.99999) })).pool;
    expect(p.keys.a1?.cooldown).toMatchObject({
      strikes: 2,
      until: now + 1200 + 2000,
      reason: "6 failures in a row: HTTP 503",
    });
  });

  it("a transient failure of a scope probe releases the probe without a strike on the scope", () => {
    let p = call(fresh(), "a1", T0, r429(), 100, { random: constant(0) }).pool;
    const probe = start(p, "a2", T0 + 600);
    p = settle(probe.pool, probe.ticket, e503, ctx(T0 + 700)).pool;
    expect(p.scopes.A?.cooldown).toMatchObject({ strikes: 1 });
    expect(p.scopes.A?.cooldown?.probeAt).toBeUndefined();
    expect(availability(p, "a1", T0 + 700)).toMatchObject({ usable: true, probe: { scope: true } });
  });
});

describe("the provider's announced limits", () => {
  it("a success with remaining 0 pauses the scope until the reset, with no probe needed after", () => {
    const hints = { remaining: { requests: 0, tokens: 5000 }, resetMs: { requests: 800, tokens: 60_000 } };
    let p = call(fresh(), "a1", T0, { kind: "ok", hints }).pool;
    expect(phases(p, T0 + 100)).toEqual({ a1: "COOLING", a2: "COOLING", b1: "AVAILABLE" });
    expect(p.scopes.A?.cooldown).toMatchObject({ until: T0 + 900, halfOpen: false, strikes: 0 });
    expect(availability(p, "a2", T0 + 900)).toEqual({
      usable: true,
      probe: { key: false, scope: false },
      penalized: false,
    });
    p = start(p, "a2", T0 + 900).pool;
    expect(p.scopes.A?.cooldown).toBeUndefined();
  });

  it("remaining above 0, or no reset, pauses nothing", () => {
    const p = call(fresh(), "a1", T0, {
      kind: "ok",
      hints: { remaining: { requests: 3 }, resetMs: { requests: 800 } },
    }).pool;
    expect(p.scopes.A?.cooldown).toBeUndefined();
    const q = call(fresh(), "a1", T0, { kind: "ok", hints: { remaining: { requests: 0 } } }).pool;
    expect(q.scopes.A?.cooldown).toBeUndefined();
  });

  it("a pause on a running cooldown only lengthens it, and keeps it half-open", () => {
    let p = fresh();
    const x = start(p, "a1", T0);
    const y = start(x.pool, "a2", T0);
    p = settle(y.pool, x.ticket, r429({ retryAfterMs: 1000 }), ctx(T0 + 100)).pool;
    const hints = { remaining: { requests: 0 }, resetMs: { requests: 5000 } };
    p = settle(p, y.ticket, { kind: "ok", hints }, ctx(T0 + 200)).pool;
    expect(p.scopes.A?.cooldown).toMatchObject({ until: T0 + 5200, halfOpen: true, strikes: 1 });
  });
});

describe("edges", () => {
  it("a call whose key left the pool meanwhile changes nothing, and its task still moves on", () => {
    const s = start(fresh(), "a1", T0);
    const gone = syncPool(s.pool, [KEYS[2]!], T0 + 50);
    const r = settle(gone, s.ticket, r429(), ctx(T0 + 100));
    expect(r.pool).toBe(gone);
    expect(r.next).toMatchObject({ action: "retry", avoid: "a1" });
  });

  it("a key that left while its call ran: the scope still counts the call and learns from its 429", () => {
    const x = start(fresh(), "a1", T0);
    const left = syncPool(x.pool, [KEYS[1]!, KEYS[2]!], T0 + 50);
    expect(left.scopes.A?.inFlight).toBe(1);
    const r = settle(left, x.ticket, r429({ retryAfterMs: 2000 }), ctx(T0 + 100));
    expect(r.pool.keys.a1).toBeUndefined();
    expect(r.pool.scopes.A?.inFlight).toBe(0);
    expect(keyPhase(r.pool, "a2", T0 + 100)).toBe("COOLING");
  });

  it("a key moved to another scope starts its in-flight count afresh; its old call settles in the old scope", () => {
    const x = start(fresh(), "a1", T0);
    const moved = syncPool(x.pool, [{ fingerprint: "a1", scope: "B" }, KEYS[1]!, KEYS[2]!], T0 + 50);
    expect(moved.keys.a1?.inFlight).toBe(0);
    expect(keyPhase(moved, "a1", T0 + 50)).toBe("AVAILABLE");
    const r = settle(moved, x.ticket, ok, ctx(T0 + 100));
    expect(r.pool.keys.a1).toBe(moved.keys.a1);
    expect(r.pool.scopes.A?.inFlight).toBe(0);
    expect(r.pool.scopes.A?.counters.ok).toBe(1);
  });

  it("the state is plain data: a JSON round trip (the Redis edge) changes nothing", () => {
    let p = call(fresh(), "a1", T0, r429({ retryAfterMs: 1000 })).pool;
    p = call(p, "b1", T0, { kind: "transient", cause: "server", status: 500, reason: "HTTP 500" }).pool;
    p = call(p, "a2", T0 + 5000, ok).pool;
    expect(JSON.parse(JSON.stringify(p))).toStrictEqual(p);
    expect(JSON.parse(JSON.stringify(fresh()))).toStrictEqual(fresh());
  });

  it("backoffs: cooldown equal jitter within [d/2, d] to the cap; retry full jitter within [0, d]", () => {
    const p = DEFAULT_POLICY;
    expect(cooldownBackoff(1, p, constant(0))).toBe(500);
    expect(cooldownBackoff(3, p, constant(0.99999))).toBe(4000);
    expect(cooldownBackoff(5000, p, constant(0.99999))).toBe(60_000);
    expect(cooldownBackoff(0, p, constant(0))).toBe(500);
    expect(cooldownBackoff(2, p, constant(Number.NaN))).toBe(1000);
    expect(retryDelay(1, p, constant(0.99999))).toBe(200);
    expect(retryDelay(10, p, constant(0.99999))).toBe(5000);
    expect(retryDelay(4, p, constant(0))).toBe(0);
    expect(retryDelay(2, p, constant(7))).toBe(400);
  });

  it("keyPolicy checks its numbers", () => {
    expect(keyPolicy({ cooldownMaxMs: 30_000 }).cooldownMaxMs).toBe(30_000);
    expect(() => keyPolicy({ rateDecrease: 1 })).toThrow(/rateDecrease/);
    expect(() => keyPolicy({ rateFloor: 0 })).toThrow(/rateFloor/);
    expect(() => keyPolicy({ cooldownBaseMs: -1 })).toThrow(/cooldownBaseMs must be a number ≥ 0, got -1/);
    expect(() => keyPolicy({ breakAfter: 0 })).toThrow(/breakAfter/);
    expect(() => keyPolicy({ probeStaleMs: Number.NaN })).toThrow(/probeStaleMs/);
  });
});

describe("keyView (the pool's status)", () => {
  it("phase, rate, cooldown end and reason, by fingerprint", () => {
    let p = call(fresh(), "a1", T0, r429({ retryAfterMs: 2000 })).pool;
    expect(keyView(p, "a2", T0 + 200)).toEqual({
      fingerprint: "a2",
      scope: "A",
      phase: "COOLING",
      rate: 0.7,
      inFlight: 0,
      coolingUntil: T0 + 2100,
      reason: "scope A: HTTP 429 Throttling.RateQuota: request rate",
      counters: { calls: 0, ok: 0, rateLimited: 0, transient: 0, rejected: 0, cooldowns: 0 },
    });
    expect(keyView(p, "a1", T0 + 2100)).toMatchObject({
      phase: "COOLING",
      reason: "waiting for its probe: HTTP 429 Throttling.RateQuota: request rate",
      lastError: "HTTP 429 Throttling.RateQuota: request rate",
      counters: { calls: 1, rateLimited: 1 },
    });
    p = call(p, "a1", T0 + 2100, ok).pool;
    const v = keyView(p, "a1", T0 + 2300);
    expect(v).toMatchObject({ phase: "AVAILABLE", rate: expect.closeTo(0.7 + 0.02 * 2.1, 5) });
    expect(v).not.toHaveProperty("coolingUntil");
    expect(v).not.toHaveProperty("reason");
    const d = call(p, "b1", T0, {
      kind: "disabled",
      target: "key",
      status: 401,
      reason: "HTTP 401: not authenticated",
    }).pool;
    expect(keyView(d, "b1", T0 + 200)).toMatchObject({ phase: "DISABLED", reason: "HTTP 401: not authenticated" });
    expect(keyView(d, "zz", T0)).toBeUndefined();
  });
});
