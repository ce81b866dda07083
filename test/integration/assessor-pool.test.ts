// The key pool (assessor/pool/key-pool.ts) against a real Redis and the fake DashScope (test/fakes/llm-provider.ts),
// through the real `openai` package: the issue's 6 keys in 3 scopes at 2× overload (throughput, 429s), two pools on
// two connections as two replicas (together within each scope's limit), a key revoked mid-run (DISABLED on both
// within 1 s, no call after), every scope cooling (tasks wait, the late ones come back stale, none lost), output
// repair and fenced JSON, and the daily token budget (samples refused, events go on). Numbers are printed.
import { Redis } from "ioredis";
import { pino } from "pino";
import { Registry } from "prom-client";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { keyPolicy, type Pool } from "../../assessor/keys/key-state.ts";
import { ASSESSMENT_REDIS, type AssessmentTask } from "../../assessor/messages.ts";
import { type CallRecord, createKeyPool } from "../../assessor/pool/key-pool.ts";
import { utcDay } from "../../assessor/pool/ledger.ts";
import { SharedState } from "../../assessor/pool/shared-state.ts";
import type { AssessOutcome, KeyPool, PoolConfig } from "../../assessor/pool/types.ts";
import { assessmentPoolSpec } from "../../operator/api/assessment-pool.ts";
import { type FakeProvider, type FakeProviderConfig, fingerprint, startFakeProvider } from "../fakes/llm-provider.ts";
import { type Service, startRedis } from "../setup/services.ts";

const log = process.env.VIGIL_TEST_LOG_FILE
  ? pino({ level: process.env.VIGIL_TEST_LOG ?? "debug" }, pino.destination(process.env.VIGIL_TEST_LOG_FILE))
  : pino({ level: process.env.VIGIL_TEST_LOG ?? "silent" });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let redis: Service;
const conns: Redis[] = [];
const connect = () => {
  const c = new Redis(redis.port, "127.0.0.1", { maxRetriesPerRequest: 1 });
  conns.push(c);
  return c;
};
const providers: FakeProvider[] = [];
const pools: KeyPool[] = [];
let frame: string;
let crops: string[];

beforeAll(async () => {
  redis = await startRedis();
  const jpeg = async (w: number, h: number, shade: number) =>
    (
      await sharp({ create: { width: w, height: h, channels: 3, background: { r: shade, g: shade, b: shade } } })
        .jpeg()
        .toBuffer()
    ).toString("base64");
  frame = await jpeg(320, 180, 128);
  crops = await Promise.all([jpeg(64, 128, 40), jpeg(64, 128, 90), jpeg(56, 112, 200)]);
});
afterAll(async () => {
  for (const p of pools) await p.close();
  for (const p of providers) await p.close();
  for (const c of conns) c.disconnect();
  await redis?.stop();
});

type KeyDef = { name: string; key: string; scope: string; rps: number; rpm: number };
/** The issue's pool: account A with 3 keys at 10 rps, B with 2 at 5 rps, C with 1 at 5 rps. */
const ISSUE_KEYS: KeyDef[] = [
  { name: "a1", key: "sk-a1-000000000000", scope: "A", rps: 10, rpm: 600 },
  { name: "a2", key: "sk-a2-000000000000", scope: "A", rps: 10, rpm: 600 },
  { name: "a3", key: "sk-a3-000000000000", scope: "A", rps: 10, rpm: 600 },
  { name: "b1", key: "sk-b1-000000000000", scope: "B", rps: 5, rpm: 300 },
  { name: "b2", key: "sk-b2-000000000000", scope: "B", rps: 5, rpm: 300 },
  { name: "c1", key: "sk-c1-000000000000", scope: "C", rps: 5, rpm: 300 },
];

async function provider(keys: KeyDef[], extra: Partial<FakeProviderConfig> = {}): Promise<FakeProvider> {
  const scopes = [...new Map(keys.map((k) => [k.scope, { name: k.scope, rps: k.rps, rpm: k.rpm }])).values()];
  const p = await startFakeProvider({
    scopes,
    keys: keys.map((k) => ({ key: k.key, scope: k.scope })),
    ...extra,
  });
  providers.push(p);
  return p;
}

function poolConfig(name: string, p: FakeProvider, keys: KeyDef[], spec: Record<string, unknown> = {}): PoolConfig {
  return {
    namespace: "test",
    name,
    spec: assessmentPoolSpec.parse({
      provider: { baseURL: p.baseURL, model: "qwen-vl-max" },
      keysSecretRef: { name: "keys" },
      timeoutSeconds: 5,
      ...spec,
    }),
    keys: keys.map((k) => ({ ...k, priority: 0, weight: 1 })),
  };
}

function keyPool(config: PoolConfig, calls?: CallRecord[], registry = new Registry()): KeyPool {
  const pool = createKeyPool({
    config,
    redis: connect(),
    registry,
    log,
    ...(calls ? { onCall: (c: CallRecord) => calls.push(c) } : {}),
  });
  pools.push(pool);
  return pool;
}

let taskSeq = 0;
function task(o: { deadlineMs?: number; sample?: boolean; people?: number } = {}): AssessmentTask {
  const now = Date.now();
  const people = o.people ?? 2;
  const id = `test/cam-1:${o.sample ? "sample" : "rule"}:${taskSeq++}:${now}`;
  return {
    v: 1,
    type: "assessment.task",
    id,
    camera_id: "test/cam-1",
    pool: { namespace: "test", name: "p" },
    trigger: o.sample
      ? { kind: "sample" }
      : {
          kind: "event",
          event_id: id,
          rule: "loiter",
          rule_kind: "dwell",
          severity: "warning",
          track_id: 1,
          zone: "door",
          detail: "dwell 12 s",
        },
    priority: "normal",
    prompt: "Is anyone at the door acting suspiciously?",
    threshold: 2,
    created_at: new Date(now).toISOString(),
    deadline: new Date(now + (o.deadlineMs ?? 60_000)).toISOString(),
    context: { camera: "cam-1", zone: "door", rule: "loiter", counts: { person: people } },
    images: [
      { role: "frame", jpeg_base64: frame, width: 320, height: 180 },
      ...crops.slice(0, people).map((c) => ({ role: "crop" as const, jpeg_base64: c, width: 64, height: 128 })),
    ],
    alarm: null,
  };
}

/** Offers `perSec` tasks a second for `ms` to each pool in turn, then aborts what still waits. */
async function drive(targets: KeyPool[], perSec: number, ms: number) {
  const ac = new AbortController();
  const started = Date.now();
  const results: { outcome: AssessOutcome; at: number }[] = [];
  const running: Promise<void>[] = [];
  let n = 0;
  while (Date.now() - started < ms) {
    const due = Math.floor(((Date.now() - started) * perSec) / 1000);
    for (; n < due; n++) {
      const pool = targets[n % targets.length] as KeyPool;
      running.push(pool.assess(task(), ac.signal).then((outcome) => void results.push({ outcome, at: Date.now() })));
    }
    await sleep(5);
  }
  ac.abort();
  await Promise.all(running);
  return { results, started, offered: n };
}

/** Longest run of 429s in a row per scope, in the order the calls went out. */
function longest429Run(calls: CallRecord[]): Record<string, number> {
  const out: Record<string, number> = {};
  const run: Record<string, number> = {};
  for (const c of [...calls].sort((a, b) => a.startedAt - b.startedAt)) {
    run[c.scope] = c.outcome === "rate_limited" ? (run[c.scope] ?? 0) + 1 : 0;
    out[c.scope] = Math.max(out[c.scope] ?? 0, run[c.scope] as number);
  }
  return out;
}

/** The most calls in any 1 s window, per scope. */
/**
 * Most calls of a scope that started within any `windowMs` (1 s by default). A call's startedAt is read in this
 * process after the limiter's Redis round trip returns, so two admissions spaced exactly 1/rps apart can be read
 * closer together when one continuation waits longer on a busy event loop: seen once in CI, 6 calls of a 5 rps scope
 * in 1 s with only 2 of 209 calls refused by the provider. The twins test counts over 900 ms: 100 ms of that jitter is
 * forgiven, while two uncoordinated replicas (each at the full rate) would still show twice the limit.
 */
function maxPerSecond(calls: CallRecord[], windowMs = 1000): Record<string, number> {
  const by: Record<string, number[]> = {};
  for (const c of calls) {
    by[c.scope] ??= [];
    by[c.scope]?.push(c.startedAt);
  }
  const out: Record<string, number> = {};
  for (const [s, ts] of Object.entries(by)) {
    ts.sort((a, b) => a - b);
    let max = 0;
    for (let i = 0, j = 0; i < ts.length; i++) {
      while ((ts[j] as number) <= (ts[i] as number) - windowMs) j++;
      max = Math.max(max, i - j + 1);
    }
    out[s] = max;
  }
  return out;
}

describe("the key pool", () => {
  it("at 2× overload uses most of the 3 scopes' 20 rps (the 95 % goal: the bench) with few 429s, never > 3 in a row", async () => {
    const p = await provider(ISSUE_KEYS, { latencyMs: [300, 800] });
    const calls: CallRecord[] = [];
    const pool = keyPool(poolConfig("load", p, ISSUE_KEYS), calls);
    // Warm: the first calls of a process (JIT, sockets) reach the provider up to ~50 ms late, and a scope's first
    // second then holds 11 calls in the provider's window (measured: one 429 on A at 1 s, then an AIMD dip that
    // costs a 20 s run 10 % of its throughput; over the issue's 5 minutes it is under 1 %). Then let the windows empty.
    await Promise.all(Array.from({ length: 6 }, () => pool.assess(task())));
    await sleep(1100);
    calls.length = 0;
    p.resetStats();
    const ms = 20_000;
    const { results, started, offered } = await drive([pool], 40, ms);
    const ok = results.filter((r) => r.outcome.kind === "ok");
    // Steady state: from 2 s in (the first answers take 300–800 ms) to the end.
    const steady = ok.filter((r) => r.at - started >= 2000 && r.at - started < ms).length / ((ms - 2000) / 1000);
    const stats = p.stats();
    const r429 = stats.byStatus["429"] ?? 0;
    const runs = longest429Run(calls);
    const kinds = Object.groupBy(results, (r) => r.outcome.kind);
    console.log(
      `[pool load] offered ${offered} in ${ms / 1000} s, ok ${ok.length}, steady ${steady.toFixed(2)} rps ` +
        `(${((steady / 20) * 100).toFixed(1)} % of 20), attempts ${stats.calls}, 429s ${r429} ` +
        `(${((r429 / stats.calls) * 100).toFixed(2)} %), longest 429 runs ${JSON.stringify(runs)}, ` +
        `max calls in 1 s ${JSON.stringify(maxPerSecond(calls))}, outcomes ${JSON.stringify(Object.fromEntries(Object.entries(kinds).map(([k, v]) => [k, v?.length])))}`,
    );
    if (process.env.VIGIL_TEST_TIMELINE) {
      const per: Record<string, number[]> = {};
      for (const c of calls) {
        const sec = Math.floor((c.startedAt - started) / 1000);
        const row = per[`${c.scope}:${c.outcome}`] ?? Array(21).fill(0);
        per[`${c.scope}:${c.outcome}`] = row;
        row[sec] = (row[sec] ?? 0) + 1;
      }
      console.log(JSON.stringify(per));
      console.log(
        JSON.stringify(calls.filter((c) => c.outcome !== "ok").map((c) => ({ ...c, t: c.startedAt - started }))),
      );
    }
    // The issue's goals (≥ 95 % of 20 rps, ≤ 0.5 % 429s) are measured by `npm run bench -- assessor`, alone on
    // the machine (0.956 and 0.06 % over 5 minutes). Here the fake, the driver and the pool share this process with
    // the suite's other files on 2 cores: measured at load 8–14, event-loop stalls cost up to 10 % of a 20 s run,
    // so this bound only catches a pool that loses a real share of its capacity or hammers a scope.
    expect(steady).toBeGreaterThanOrEqual(16);
    expect(r429 / stats.calls).toBeLessThanOrEqual(0.01);
    for (const n of Object.values(runs)) expect(n).toBeLessThanOrEqual(3);
    expect(results.length).toBe(offered);
    expect(kinds.dead ?? []).toEqual([]);
  }, 60_000);
});

describe("two replicas", () => {
  it("together stay within each scope's limit at 2× overload", async () => {
    const p = await provider(ISSUE_KEYS, { latencyMs: [300, 800] });
    const calls: CallRecord[] = [];
    const config = poolConfig("twin", p, ISSUE_KEYS);
    const one = keyPool(config, calls);
    const two = keyPool(config, calls);
    const ms = 12_000;
    const { results, started } = await drive([one, two], 40, ms);
    const stats = p.stats();
    const max = maxPerSecond(calls, 900);
    const ok = results.filter((r) => r.outcome.kind === "ok" && r.at - started >= 2000).length / ((ms - 2000) / 1000);
    const perScopeOk = Object.fromEntries(
      Object.entries(stats.perScope).map(([s, c]) => [s, +(c.ok / (ms / 1000)).toFixed(2)]),
    );
    console.log(
      `[pool twins] steady ${ok.toFixed(2)} rps together, attempts ${stats.calls}, 429s ${stats.byStatus["429"] ?? 0}, ` +
        `max calls in 0.9 s ${JSON.stringify(max)} (limits A 10, B 5, C 5), ok per second ${JSON.stringify(perScopeOk)}`,
    );
    expect(max.A).toBeLessThanOrEqual(10);
    expect(max.B).toBeLessThanOrEqual(5);
    expect(max.C).toBeLessThanOrEqual(5);
    expect((stats.byStatus["429"] ?? 0) / stats.calls).toBeLessThanOrEqual(0.01);
  }, 40_000);

  it("disable a revoked key on both within 1 s, and send it nothing after", async () => {
    const p = await provider(ISSUE_KEYS, { latencyMs: [100, 300] });
    const calls: CallRecord[] = [];
    const config = poolConfig("revoke", p, ISSUE_KEYS);
    const replicas = [keyPool(config, calls), keyPool(config, calls)];
    const victim = ISSUE_KEYS[0] as KeyDef;
    const fp = fingerprint(victim.key);
    const disabledAt: (number | undefined)[] = [undefined, undefined];
    let revokedAt = 0;
    const watch = (async () => {
      await sleep(1500);
      revokedAt = Date.now();
      await fetch(`http://127.0.0.1:${p.port}/admin/revoke`, {
        method: "POST",
        body: JSON.stringify({ key: victim.key }),
      });
      while (disabledAt.some((d) => d === undefined) && Date.now() - revokedAt < 5000) {
        await Promise.all(
          replicas.map(async (r, i) => {
            const s = await r.status();
            if (disabledAt[i] === undefined && s.keys.find((k) => k.fingerprint === fp)?.phase === "DISABLED")
              disabledAt[i] = Date.now();
          }),
        );
        await sleep(5);
      }
    })();
    const { results } = await drive(replicas, 16, 5000);
    await watch;
    const first401 = Math.min(...calls.filter((c) => c.outcome === "disabled").map((c) => c.endedAt));
    const after = calls.filter((c) => c.fingerprint === fp && c.startedAt >= Math.min(...(disabledAt as number[])));
    const statuses = await Promise.all(replicas.map((r) => r.status()));
    console.log(
      `[pool revoke] DISABLED ${disabledAt.map((d) => (d ?? Number.NaN) - revokedAt).join(" / ")} ms after the revoke ` +
        `(first 401 after ${first401 - revokedAt} ms), calls on it after: ${after.length}, its 401s ${p.stats().perKey[fp]?.r401}, ` +
        `outcomes ${JSON.stringify(Object.fromEntries(Object.entries(Object.groupBy(results, (r) => r.outcome.kind)).map(([k, v]) => [k, v?.length])))}`,
    );
    for (const d of disabledAt) expect((d ?? Number.POSITIVE_INFINITY) - revokedAt).toBeLessThanOrEqual(1000);
    expect(after).toEqual([]);
    for (const s of statuses) {
      const k = s.keys.find((x) => x.fingerprint === fp);
      expect(k?.phase).toBe("DISABLED");
      expect(k?.lastError).toMatch(/InvalidApiKey/);
      expect(JSON.stringify(s)).not.toContain(victim.key);
    }
    expect(results.filter((r) => r.outcome.kind === "dead")).toEqual([]);
  }, 30_000);
});

describe("when every scope cools", () => {
  it("tasks wait, none is lost, and the ones past their deadline come back stale, never sent late", async () => {
    const keys: KeyDef[] = [
      { name: "s1", key: "sk-s1-000000000000", scope: "S1", rps: 2, rpm: 120 },
      { name: "s2", key: "sk-s2-000000000000", scope: "S2", rps: 2, rpm: 120 },
    ];
    const fillers = [
      { key: "sk-f1-000000000000", scope: "S1" },
      { key: "sk-f2-000000000000", scope: "S2" },
    ];
    const p = await provider(keys, { latencyMs: [20, 50] });
    for (const f of fillers) p.setKey(f);
    const calls: CallRecord[] = [];
    const pool = keyPool(poolConfig("cool", p, keys, { maxAttempts: 10 }), calls);
    // Another tenant of both accounts takes every slot for 4 s: each call of the pool meets a 429.
    let filling = true;
    const body = JSON.stringify({ model: "m", messages: [{ role: "user", content: "hi" }] });
    const filler = Promise.all(
      fillers.map(async (f) => {
        while (filling) {
          await fetch(`${p.baseURL}/chat/completions`, {
            method: "POST",
            headers: { authorization: `Bearer ${f.key}`, "content-type": "application/json" },
            body,
          });
          await sleep(50);
        }
      }),
    );
    setTimeout(() => {
      filling = false;
    }, 4000);
    await sleep(300);
    const short = Array.from({ length: 8 }, () => task({ deadlineMs: 2000 }));
    const long = Array.from({ length: 8 }, () => task({ deadlineMs: 20_000 }));
    const deadlines = new Map([...short, ...long].map((t) => [t.id, Date.parse(t.deadline)]));
    const [outShort, outLong] = await Promise.all([
      Promise.all(short.map((t) => pool.assess(t))),
      Promise.all(long.map((t) => pool.assess(t))),
    ]);
    await filler;
    const during = calls.filter((c) => c.startedAt < Date.parse(short[0]?.created_at ?? "") + 3700);
    const kinds = (o: AssessOutcome[]) => o.map((x) => x.kind).join(",");
    console.log(
      `[pool cooling] short: ${kinds(outShort)}; long: ${kinds(outLong)}; pool calls while filled ${during.length} ` +
        `(${during.filter((c) => c.outcome === "rate_limited").length} 429s)`,
    );
    for (const o of outShort) expect(["stale", "ok"]).toContain(o.kind);
    expect(outShort.filter((o) => o.kind === "stale").length).toBeGreaterThanOrEqual(6);
    for (const o of outLong) expect(o.kind).toBe("ok");
    // Waiting, not hammering: a probe per cooldown, not a call per task.
    expect(during.length).toBeLessThanOrEqual(12);
    for (const c of calls) expect(c.startedAt).toBeLessThan(deadlines.get(c.taskId) as number);
  }, 40_000);
});

describe("the model's output", () => {
  const keys: KeyDef[] = [{ name: "o1", key: "sk-o1-000000000000", scope: "O", rps: 50, rpm: 3000 }];

  it("is repaired once when invalid, then dead; fenced JSON is read", async () => {
    const p = await provider(keys, { faults: { rateMalformed: 1 }, seed: 7 });
    const pool = keyPool(poolConfig("output", p, keys), []);
    const dead = await pool.assess(task());
    expect(dead.kind).toBe("dead");
    expect(dead.kind === "dead" && dead.attempts).toBe(2);
    expect(dead.kind === "dead" && dead.reason).toMatch(/invalid output after a repair retry: the answer is not JSON/);

    p.setFaults({ rateMalformed: 0.5 });
    const outs: AssessOutcome[] = [];
    for (let i = 0; i < 16; i++) outs.push(await pool.assess(task({ people: 2 })));
    const repaired = outs.filter((o) => o.kind === "ok" && o.attempts === 2);
    console.log(
      `[pool output] at 50 % malformed: ${outs.map((o) => `${o.kind}/${"attempts" in o ? o.attempts : 0}`).join(" ")}`,
    );
    expect(repaired.length).toBeGreaterThan(0);
    for (const o of outs) {
      if (o.kind === "ok") {
        // The fake's answer for a frame and 2 crops.
        expect(o.answer.risk).toBe(1);
        expect(o.answer.labels).toEqual(["person"]);
        expect(o.usage.total_tokens).toBeGreaterThan(0);
      } else expect(o.kind).toBe("dead");
    }

    p.setFaults({ rateMalformed: 0, rateFenced: 1 });
    const fenced = await pool.assess(task({ people: 3 }));
    expect(fenced.kind).toBe("ok");
    expect(fenced.kind === "ok" && fenced.attempts).toBe(1);
    expect(fenced.kind === "ok" && fenced.answer.risk).toBe(2);
    expect(p.stats().faults.fenced).toBe(1);
  });

  it("is dead with the reason when every key is disabled", async () => {
    const p = await provider(keys);
    p.revoke("sk-o1-000000000000");
    const pool = keyPool(poolConfig("revoked", p, keys), []);
    const first = await pool.assess(task());
    const second = await pool.assess(task());
    expect(first).toMatchObject({ kind: "dead", attempts: 1 });
    expect(second).toMatchObject({ kind: "dead", attempts: 0, reason: "all 1 keys are disabled" });
    // A Secret edit that adds a key: the revoked one stays DISABLED, the new one carries the task.
    const fresh: KeyDef = { name: "o2", key: "sk-o2-000000000000", scope: "O", rps: 50, rpm: 3000 };
    p.setKey({ key: fresh.key, scope: "O" });
    pool.update(poolConfig("revoked", p, [...keys, fresh]));
    const third = await pool.assess(task());
    expect(third).toMatchObject({ kind: "ok", fingerprint: fingerprint(fresh.key), attempts: 1 });
    const phases = (await pool.status()).keys.map((k) => [k.name, k.phase]);
    expect(phases).toEqual([
      ["o1", "DISABLED"],
      ["o2", "AVAILABLE"],
    ]);
  });
});

describe("the daily budget", () => {
  it("refuses samples over budget and lets events go on; the ledger counts by key, scope, camera and model", async () => {
    const keys: KeyDef[] = [
      { name: "ba", key: "sk-ba-000000000000", scope: "BA", rps: 20, rpm: 1200 },
      { name: "bb", key: "sk-bb-000000000000", scope: "BB", rps: 20, rpm: 1200 },
    ];
    const p = await provider(keys);
    const registry = new Registry();
    const pool = keyPool(
      poolConfig("budget", p, keys, {
        budgets: [
          { scope: "BA", dailyTokens: 1000 },
          { scope: "BB", dailyTokens: 1000 },
        ],
      }),
      [],
      registry,
    );
    const r = connect();
    const ledger = ASSESSMENT_REDIS.ledger(utcDay(Date.now()));
    await r.hincrby(ledger, "scope:BA", 5000);
    // Other cases of this file answered for the same camera and model today.
    const base = await r.hgetall(ledger);
    // BA is over: a sample still goes, through BB.
    const viaB = await pool.assess(task({ sample: true }));
    expect(viaB).toMatchObject({ kind: "ok", scope: "BB" });
    await r.hincrby(ledger, "scope:BB", 5000);
    const refused = await pool.assess(task({ sample: true }));
    expect(refused.kind).toBe("budget");
    expect(refused.kind === "budget" && refused.reason).toMatch(/BA, BB are over their daily token budget/);
    const event = await pool.assess(task());
    expect(event.kind).toBe("ok");
    await sleep(100); // the ledger write follows the answer
    const fields = await r.hgetall(ledger);
    const tokens = (o: AssessOutcome) => (o.kind === "ok" ? o.usage.total_tokens : 0);
    const grew = (f: string) => Number(fields[f] ?? 0) - Number(base[f] ?? 0);
    expect(grew("camera:test/cam-1")).toBe(tokens(viaB) + tokens(event));
    expect(grew("model:qwen-vl-max")).toBe(tokens(viaB) + tokens(event));
    expect(Number(fields[`key:${fingerprint("sk-bb-000000000000")}`])).toBeGreaterThanOrEqual(tokens(viaB));
    const status = await pool.status();
    expect(status.scopes.map((s) => [s.name, s.budgetExhausted])).toEqual([
      ["BA", true],
      ["BB", true],
    ]);
    // Metrics name keys by fingerprint only.
    const text = await registry.metrics();
    expect(text).toContain(`key="${fingerprint("sk-bb-000000000000")}"`);
    expect(text).not.toContain("sk-bb");
    expect(text).toMatch(/vigil_assessor_pool_outcomes_total\{pool="test\/budget",outcome="budget"\} 1/);
  });
});

describe("the shared state", () => {
  const refs = [{ fingerprint: "0000000a", scope: "S" }];
  const state = (prefix: string) => {
    const s = new SharedState({
      redis: connect(),
      prefix,
      log,
      policy: () => keyPolicy(),
      now: Date.now,
      keys: refs,
      resyncMs: 200,
    });
    return s;
  };
  const cooled = (pool: Pool, until: number): Pool => ({
    ...pool,
    scopes: {
      ...pool.scopes,
      S: {
        ...(pool.scopes.S as Pool["scopes"][string]),
        cooldown: { since: Date.now(), until, strikes: 1, reason: "429", halfOpen: true },
      },
    },
  });
  const ticket = { fingerprint: "0000000a", scope: "S", startedAt: Date.now(), probe: { key: false, scope: false } };

  it("extends a cooldown, never shortens it, and a replica that missed the message reads it from the hash", async () => {
    const prefix = "vigil:apool:test/shared:";
    const a = state(prefix);
    const b = state(prefix);
    await Promise.all([a.start(), b.start()]);
    const long = Date.now() + 60_000;
    const before = a.pool;
    a.pool = cooled(before, long);
    await a.push(before, a.pool, ticket);
    await sleep(50);
    expect(b.pool.scopes.S?.cooldown?.until).toBe(long);
    // b saw an older, shorter 429 of its own: Redis keeps the longer one and b takes it back.
    const b0 = b.pool;
    const shorter: Pool = cooled(
      { ...b0, scopes: { ...b0.scopes, S: { ...b0.scopes.S!, cooldown: undefined } } },
      long - 30_000,
    );
    b.pool = shorter;
    await b.push({ ...b0, scopes: { ...b0.scopes, S: { ...b0.scopes.S!, cooldown: undefined } } }, shorter, ticket);
    expect(b.pool.scopes.S?.cooldown?.until).toBe(long);
    const stored = JSON.parse((await connect().hget(`${prefix}state`, "s:S:cd")) ?? "{}");
    expect(stored.until).toBe(long);

    // A write nobody announced (a message lost over a reconnect) reaches a fresh replica by the re-read.
    const c = state(prefix);
    await c.start();
    await connect().hset(
      `${prefix}state`,
      "k:0000000a:off",
      JSON.stringify({ reason: "HTTP 401 InvalidApiKey: the key is invalid or revoked", at: Date.now() }),
    );
    const t0 = Date.now();
    while (!c.pool.keys["0000000a"]?.disabled && Date.now() - t0 < 2000) await sleep(10);
    console.log(`[pool shared] an unannounced DISABLED read after ${Date.now() - t0} ms`);
    expect(c.pool.keys["0000000a"]?.disabled?.reason).toMatch(/InvalidApiKey/);
    expect(Date.now() - t0).toBeLessThan(1000);
    for (const s of [a, b, c]) await s.close();
  });

  it("lets exactly one replica take a half-open probe", async () => {
    const prefix = "vigil:apool:test/probe:";
    const replicas = [state(prefix), state(prefix), state(prefix)];
    await Promise.all(replicas.map((r) => r.start()));
    for (const r of replicas) r.pool = cooled(r.pool, Date.now() - 1);
    const got = await Promise.all(
      replicas.map((r) => r.tryProbe({ fingerprint: "0000000a", scope: "S", probe: { key: false, scope: true } })),
    );
    expect(got.filter(Boolean).length).toBe(1);
    // The others note the probe in flight: their gate stays shut until it settles.
    const losers = replicas.filter((_, i) => !got[i]);
    for (const r of losers) expect(r.pool.scopes.S?.cooldown?.probeAt).toBeDefined();
    const winner = replicas[got.indexOf(true)] as SharedState;
    await winner.releaseProbe({ ...ticket, probe: { key: false, scope: true } });
    await sleep(50);
    for (const r of losers) expect(r.pool.scopes.S?.cooldown?.probeAt).toBeUndefined();
    for (const r of replicas) await r.close();
  });
});
