import { describe, expect, it } from "vitest";
import { begin, type Outcome, type Pool, settle, syncPool } from "../../assessor/keys/key-state.ts";
import {
  freshMemory,
  type KeyConfig,
  type PickInput,
  type PickMemory,
  pick,
  type Strategy,
} from "../../assessor/keys/pick.ts";

const T0 = 5_000_000;
const KEYS: KeyConfig[] = [
  { fingerprint: "a1", priority: 10, weight: 5 },
  { fingerprint: "a2", priority: 10, weight: 1 },
  { fingerprint: "b1", priority: 10, weight: 1 },
  { fingerprint: "c1", priority: 0, weight: 1 },
];
const SCOPES: Record<string, string> = { a1: "A", a2: "A", b1: "B", c1: "C" };
const fresh = () =>
  syncPool(
    undefined,
    KEYS.map((k) => ({ fingerprint: k.fingerprint, scope: SCOPES[k.fingerprint]! })),
    T0,
  );

function startOn(pool: Pool, fp: string, now = T0) {
  const b = begin(pool, fp, now);
  if (!b.ok) throw new Error(b.reason);
  return b;
}
/** Settle one call on `fp` with `o`: the pool afterwards. */
function settled(pool: Pool, fp: string, o: Outcome, now = T0) {
  const s = startOn(pool, fp, now);
  return settle(s.pool, s.ticket, o, { now: now + 10, random: () => 0.99999, attempt: 1 }).pool;
}
const r429: Outcome = {
  kind: "rate_limited",
  target: "scope",
  status: 429,
  reason: "HTTP 429 Throttling.RateQuota: request rate",
};

/** `n` picks in a row (each begun and settled at once), the fingerprints in order. */
function run(strategy: Strategy, n: number, over: Partial<PickInput> = {}, keys = KEYS) {
  let memory: PickMemory = freshMemory();
  const pool = over.pool ?? fresh();
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const p = pick({ keys, strategy, now: T0, ...over, pool, memory });
    if (p.kind !== "key") throw new Error(`${p.kind}: ${p.reason}`);
    memory = p.memory;
    out.push(p.fingerprint);
  }
  return out;
}

describe("round-robin", () => {
  it("every usable key in turn, in the Secret's order", () => {
    expect(run("round-robin", 9)).toEqual(["a1", "a2", "b1", "c1", "a1", "a2", "b1", "c1", "a1"]);
  });

  it("skips cooling scopes and keys whose scope has no room, and keeps its place", () => {
    const pool = settled(fresh(), "a1", r429);
    expect(run("round-robin", 4, { pool })).toEqual(["b1", "c1", "b1", "c1"]);
    expect(run("round-robin", 3, { roomIn: (s) => (s === "B" ? 250 : 0) })).toEqual(["a1", "a2", "c1"]);
  });
});

describe("least-loaded", () => {
  it("fewest in flight per weight, ties to the key idle longest", () => {
    let pool = fresh();
    pool = startOn(pool, "a2", T0).pool;
    pool = startOn(pool, "b1", T0 + 1).pool;
    pool = startOn(pool, "c1", T0 + 2).pool;
    // a1 is idle: 0 in flight.
    let p = pick({ pool, keys: KEYS, strategy: "least-loaded", now: T0 + 3 });
    expect(p).toMatchObject({ kind: "key", fingerprint: "a1" });
    pool = startOn(pool, "a1", T0 + 3).pool;
    // Everyone has 1; a1 weighs 5, so its load is 0.2 and it takes the next four too.
    p = pick({ pool, keys: KEYS, strategy: "least-loaded", now: T0 + 4 });
    expect(p).toMatchObject({ kind: "key", fingerprint: "a1" });
    const even = KEYS.map((k) => ({ fingerprint: k.fingerprint }));
    // Equal weights and loads: the least recently used (a2 started first).
    p = pick({ pool, keys: even, strategy: "least-loaded", now: T0 + 4 });
    expect(p).toMatchObject({ kind: "key", fingerprint: "a2" });
  });
});

describe("priority, then weight", () => {
  it("only the top priority, spread 5:1:1 by smooth weighted round-robin, never a long run", () => {
    const seq = run("priority", 14);
    expect(seq.filter((f) => f === "a1")).toHaveLength(10);
    expect(seq.filter((f) => f === "a2")).toHaveLength(2);
    expect(seq.filter((f) => f === "b1")).toHaveLength(2);
    expect(seq).not.toContain("c1");
    // nginx's sequence for weights 5, 1, 1.
    expect(seq.slice(0, 7)).toEqual(["a1", "a1", "a2", "a1", "b1", "a1", "a1"]);
  });

  it("falls to the next priority when the top one cannot take calls", () => {
    let pool = settled(fresh(), "a1", r429);
    pool = settled(pool, "b1", r429);
    expect(run("priority", 3, { pool })).toEqual(["c1", "c1", "c1"]);
  });

  it("defaults: priority 0, weight 1; nonsense weights count as 1", () => {
    const keys: KeyConfig[] = [
      { fingerprint: "a1" },
      { fingerprint: "a2", weight: -3 },
      { fingerprint: "b1", weight: Number.NaN },
    ];
    expect(run("priority", 6, {}, keys)).toEqual(["a1", "a2", "b1", "a1", "a2", "b1"]);
  });

  it("forgets the credits of keys that left", () => {
    const p = pick({
      pool: fresh(),
      keys: KEYS,
      strategy: "priority",
      now: T0,
      memory: { cursor: -1, credit: { gone: 99 } },
    });
    expect(p.memory.credit).not.toHaveProperty("gone");
  });
});

describe("second choices", () => {
  it("a key the task tried, or one under a transient penalty, only when nothing else can", () => {
    const two: KeyConfig[] = [{ fingerprint: "a1" }, { fingerprint: "b1" }];
    expect(pick({ pool: fresh(), keys: two, strategy: "round-robin", now: T0, avoid: ["a1"] })).toMatchObject({
      fingerprint: "b1",
    });
    const e503: Outcome = { kind: "transient", cause: "server", status: 503, reason: "HTTP 503" };
    const pool = settled(fresh(), "b1", e503);
    expect(pick({ pool, keys: two, strategy: "round-robin", now: T0 + 20, avoid: ["a1"] })).toMatchObject({
      fingerprint: "a1",
    });
    // Both second choice: still a key, not a wait.
    expect(pick({ pool, keys: two, strategy: "least-loaded", now: T0 + 20, avoid: ["a1", "b1"] })).toMatchObject({
      kind: "key",
    });
  });
});

describe("wait and none", () => {
  it("all cooling: wait until the soonest cooldown ends, with its reason", () => {
    let pool = settled(fresh(), "a1", r429, T0); // A until T0 + 10 + 1000
    pool = settled(pool, "b1", r429, T0 + 100); // B until T0 + 1110
    pool = settled(pool, "c1", r429, T0 + 200); // C until T0 + 1210
    const p = pick({ pool, keys: KEYS, strategy: "priority", now: T0 + 300 });
    expect(p).toMatchObject({ kind: "wait", ms: 710, reason: "scope A: HTTP 429 Throttling.RateQuota: request rate" });
  });

  it("scopes at their rate: wait for the soonest room", () => {
    const p = pick({
      pool: fresh(),
      keys: KEYS,
      strategy: "round-robin",
      now: T0,
      roomIn: (s) => ({ A: 300, B: 120, C: 900 })[s]!,
    });
    expect(p).toEqual({ kind: "wait", ms: 120, reason: "scope B is at its rate", memory: freshMemory() });
  });

  it("the half-open probe is a candidate; while it runs the scope waits", () => {
    const one: KeyConfig[] = [{ fingerprint: "a1" }];
    const pool = settled(fresh(), "a1", r429, T0);
    const p = pick({ pool, keys: one, strategy: "round-robin", now: T0 + 1010 });
    expect(p).toMatchObject({ kind: "key", fingerprint: "a1", probe: { scope: true, key: false } });
    const running = startOn(pool, "a1", T0 + 1010).pool;
    expect(pick({ pool: running, keys: one, strategy: "round-robin", now: T0 + 1020 })).toMatchObject({ kind: "wait" });
  });

  it("every key disabled, or no keys: none", () => {
    const bad: Outcome = { kind: "disabled", target: "key", status: 401, reason: "HTTP 401: not authenticated" };
    let pool = fresh();
    for (const k of KEYS) pool = settled(pool, k.fingerprint, bad);
    expect(pick({ pool, keys: KEYS, strategy: "priority", now: T0 + 50 })).toMatchObject({
      kind: "none",
      reason: "all 4 keys are disabled",
    });
    expect(pick({ pool, keys: [], strategy: "priority", now: T0 })).toMatchObject({
      kind: "none",
      reason: "the pool has no keys",
    });
    // A key listed but missing from the pool's state counts as disabled, never as usable.
    expect(pick({ pool: fresh(), keys: [{ fingerprint: "zz" }], strategy: "priority", now: T0 })).toMatchObject({
      kind: "none",
    });
  });

  it("some disabled, the rest cooling: wait, not none", () => {
    const bad: Outcome = { kind: "disabled", target: "key", status: 401, reason: "HTTP 401: not authenticated" };
    let pool = settled(fresh(), "a1", bad);
    pool = settled(pool, "b1", r429);
    const two: KeyConfig[] = [{ fingerprint: "a1" }, { fingerprint: "b1" }];
    expect(pick({ pool, keys: two, strategy: "round-robin", now: T0 + 20 })).toMatchObject({ kind: "wait" });
  });
});
