// The quota scripts on a real Redis: the Lua arithmetic equals the pure core's, and 3 limiter instances on
// separate connections (as 3 assessor replicas) hammering one scope at 2x its capacity stay within the scope's
// limit in every sliding 1 s window of Redis's clock while using at least 95 % of it; then a tpm scope whose
// usage is settled after each call.
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Cost, type Limits, type QuotaState, reserve, settle } from "../../assessor/quota/gcra.ts";
import { RedisQuota } from "../../assessor/quota/redis-quota.ts";
import { type Service, startRedis } from "../setup/services.ts";

let redis: Service;
const conns: Redis[] = [];
const connect = () => {
  const c = new Redis(redis.port, "127.0.0.1", { maxRetriesPerRequest: 1 });
  conns.push(c);
  return c;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const c of conns) c.disconnect();
  await redis?.stop();
});

/** The most entries in any half-open window [t, t + windowMs); `weight` sums instead of counting. */
function maxInWindow(times: number[], windowMs: number, weight: (i: number) => number = () => 1): number {
  const order = times.map((_, i) => i).sort((a, b) => (times[a] as number) - (times[b] as number));
  let max = 0;
  let sum = 0;
  for (let i = 0, j = 0; i < order.length; i++) {
    sum += weight(order[i] as number);
    while ((times[order[j] as number] as number) <= (times[order[i] as number] as number) - windowMs) {
      sum -= weight(order[j] as number);
      j++;
    }
    max = Math.max(max, sum);
  }
  return max;
}

type Admission = { redisMs: number; clientMs: number; instance: number; seq: number };

/**
 * One replica's scheduler loop for one scope: tasks arrive at `offeredPerSec`; while some wait it reserves, and on
 * a refusal sleeps the retryAfter Redis named. `onAdmit` stands for the provider call (and its settle).
 */
async function replica(
  quota: RedisQuota,
  instance: number,
  scope: string,
  limits: Limits,
  opts: { offeredPerSec: number; durationMs: number; cost: (seq: number) => Cost; onAdmit?: (a: Admission) => void },
) {
  const admitted: Admission[] = [];
  let backlog = 0;
  let refusals = 0;
  let seq = 0;
  const started = performance.now();
  const arrivals = setInterval(() => backlog++, 1_000 / opts.offeredPerSec);
  try {
    while (performance.now() - started < opts.durationMs) {
      if (backlog === 0) {
        await sleep(2);
        continue;
      }
      const d = await quota.reserve(scope, opts.cost(seq), limits);
      if (!d.ok) {
        refusals++;
        await sleep(Math.ceil(d.retryAfterMs));
        continue;
      }
      backlog--;
      const a = { redisMs: d.nowMs, clientMs: performance.timeOrigin + performance.now(), instance, seq: seq++ };
      admitted.push(a);
      opts.onAdmit?.(a);
    }
  } finally {
    clearInterval(arrivals);
  }
  return { admitted, refusals, backlog };
}

describe("redis quota", () => {
  it("decides exactly as the pure core, on Redis's clock", async () => {
    const quota = new RedisQuota(connect(), { prefix: "parity:" });
    const limits: Limits = {
      rps: { rate: 50, burst: 3 },
      rpm: { rate: 1_200 },
      tpm: { rate: 1_200_000, burst: 8_000 },
    };
    let mirror: QuotaState = {};
    let oks = 0;
    let refusals = 0;
    for (let i = 0; i < 400; i++) {
      const cost = { requests: 1, tokens: 500 + ((i * 7919) % 2_500) };
      const d = await quota.reserve("s", cost, limits);
      const p = reserve(mirror, cost, d.nowMs, limits);
      expect(d.ok).toBe(p.ok);
      if (!d.ok && !p.ok) {
        expect(d.retryAfterMs).toBe(p.retryAfterMs);
        expect(d.limitedBy).toBe(p.limitedBy);
        refusals++;
        if (i % 4 === 0) await sleep(Math.ceil(d.retryAfterMs));
        continue;
      }
      oks++;
      mirror = p.state;
      if (i % 2 === 0) {
        const usage = { estimated: cost.tokens, actual: (i * 104_729) % 6_000 };
        const s = await quota.settle("s", usage, limits);
        mirror = settle(mirror, usage, s?.nowMs ?? 0, limits);
        expect(s?.tpmTat).toBe(mirror.tpm);
      }
      expect(await quota.state("s")).toEqual(mirror);
    }
    console.log(`parity: ${oks} reservations and ${refusals} refusals matched the pure core bit for bit`);
    expect(oks).toBeGreaterThan(20);
    expect(refusals).toBeGreaterThan(20);
    // The hash expires once every TAT is past.
    const ttl = await conns[0]?.pttl("parity:s");
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(Math.ceil(Math.max(...Object.values(mirror)) - Date.now()) + 1_000 + 50);
  });

  it("3 replicas at 2x load stay within 10 rps in every 1 s window and use >= 95 % of it", async () => {
    const limits: Limits = { rps: { rate: 10 } };
    const durationMs = 5_000;
    const runs = await Promise.all(
      [0, 1, 2].map((i) =>
        replica(new RedisQuota(connect()), i, "acct-a:qwen-vl-max", limits, {
          offeredPerSec: 20 / 3,
          durationMs,
          cost: () => ({ requests: 1, tokens: 0 }),
        }),
      ),
    );
    const all = runs.flatMap((r) => r.admitted);
    const redisTimes = all.map((a) => a.redisMs);
    const first = Math.min(...redisTimes);
    const last = Math.max(...redisTimes);
    // GCRA at burst 1 admits at most 1 + rate * elapsed over [first, last].
    const capacity = 1 + (10 * (last - first)) / 1_000;
    const ratio = all.length / capacity;
    const maxRedis = maxInWindow(redisTimes, 1_000);
    const maxClient = maxInWindow(
      all.map((a) => a.clientMs),
      1_000,
    );
    const refusals = runs.reduce((n, r) => n + r.refusals, 0);
    console.log(
      `rps: admitted ${all.length} (per replica ${runs.map((r) => r.admitted.length).join("/")}) over ` +
        `${((last - first) / 1_000).toFixed(3)} s, capacity ${capacity.toFixed(1)}, ratio ${ratio.toFixed(4)}; ` +
        `max per 1 s window: ${maxRedis} on Redis's clock, ${maxClient} on the replicas' receipt times; ` +
        `${refusals} refusals (${(refusals / all.length).toFixed(2)} per admission); backlog left ` +
        `${runs.map((r) => r.backlog).join("/")}`,
    );
    expect(maxRedis).toBeLessThanOrEqual(10);
    expect(ratio).toBeGreaterThanOrEqual(0.95);
    // Every replica got a share (none starved by the others' retries).
    for (const r of runs) expect(r.admitted.length).toBeGreaterThan(5);
  });

  it("a tpm scope settled from usage: tokens stay within rate + burst, and an overestimate is given back", async () => {
    // 1000 tokens/s, 300-token burst; 100 reserved per call, used 50..150 (mean 80), settled after the "call".
    const limits: Limits = { rps: { rate: 100 }, tpm: { rate: 60_000, burst: 300 } };
    const used = [50, 150, 60, 40, 100];
    const durationMs = 5_000;
    const tokens = new Map<string, number>();
    const settles: Promise<unknown>[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const runs = await Promise.all(
      [0, 1, 2].map((i) => {
        const quota = new RedisQuota(connect());
        return replica(quota, i, "acct-b:qwen-vl-plus", limits, {
          offeredPerSec: 25 / 3,
          durationMs,
          cost: () => ({ requests: 1, tokens: 100 }),
          onAdmit: (a) => {
            const actual = used[(a.seq + i) % used.length] as number;
            tokens.set(`${a.instance}:${a.seq}`, actual);
            maxInFlight = Math.max(maxInFlight, ++inFlight);
            settles.push(
              sleep(20 + ((a.seq * 37) % 60))
                .then(() => quota.settle("acct-b:qwen-vl-plus", { estimated: 100, actual }, limits))
                .finally(() => inFlight--),
            );
          },
        });
      }),
    );
    await Promise.all(settles);
    const all = runs.flatMap((r) => r.admitted);
    const redisTimes = all.map((a) => a.redisMs);
    const first = Math.min(...redisTimes);
    const last = Math.max(...redisTimes);
    const actualOf = (i: number) => tokens.get(`${all[i]?.instance}:${all[i]?.seq}`) as number;
    const totalTokens = all.reduce((n, _, i) => n + actualOf(i), 0);
    const capacity = (1_000 * (last - first)) / 1_000;
    const ratio = totalTokens / capacity;
    const maxTokens = maxInWindow(redisTimes, 1_000, actualOf);
    const rps = all.length / ((last - first) / 1_000);
    console.log(
      `tpm: ${all.length} calls, ${totalTokens} tokens used over ${((last - first) / 1_000).toFixed(3)} s ` +
        `(capacity ${capacity.toFixed(0)} + burst 300), ratio ${ratio.toFixed(4)}; max tokens per 1 s window ` +
        `${maxTokens}; ${rps.toFixed(2)} calls/s where estimates alone allow 10; at most ${maxInFlight} unsettled`,
    );
    // What Redis has charged stays within rate x time + burst (the bound is tight: the scope is saturated). Used
    // tokens can go over it only by calls not yet settled, each at most 50 over its 100-token estimate; a window
    // also gets the refunds (at most 60 each) of calls admitted before it and settled in it. +1: float rounding.
    expect(totalTokens).toBeLessThanOrEqual(capacity + 300 + 50 * maxInFlight + 1);
    expect(maxTokens).toBeLessThanOrEqual(1_000 + 300 + (50 + 60) * maxInFlight + 1);
    expect(ratio).toBeGreaterThanOrEqual(0.95);
    // Settling gave the overestimates back: more calls than 100-token reservations alone would admit.
    expect(rps).toBeGreaterThan(11.5);
  });

  it("acquire waits for its turn, gives up at maxWaitMs, refuses a cost over the burst, and survives SCRIPT FLUSH", async () => {
    const conn = connect();
    const quota = new RedisQuota(conn, { prefix: "acquire:" });
    const limits: Limits = { rps: { rate: 5 }, tpm: { rate: 60_000, burst: 500 } };
    const one = { requests: 1, tokens: 100 };
    const t0 = performance.now();
    const a = await quota.acquire("s", one, limits);
    const b = await quota.acquire("s", one, limits);
    const waited = performance.now() - t0;
    expect(a.ok && b.ok).toBe(true);
    // 5 rps: the second conforms 200 ms after the first, on Redis's clock; the timer adds about a tick.
    expect(b.nowMs - a.nowMs).toBeGreaterThanOrEqual(200);
    expect(waited).toBeLessThan(200 + 50);
    const c = await quota.acquire("s", one, limits, { maxWaitMs: 50 });
    expect(c).toMatchObject({ ok: false, limitedBy: "rps" });
    expect(await quota.acquire("s", { requests: 1, tokens: 501 }, limits)).toMatchObject({
      ok: false,
      limitedBy: "tpm",
      retryAfterMs: Number.POSITIVE_INFINITY,
    });
    const aborted = new AbortController();
    const pending = quota.acquire("s", one, limits, { signal: aborted.signal });
    aborted.abort();
    await expect(pending).rejects.toThrow();
    // A restarted or flushed Redis has no scripts: ioredis loads them again on NOSCRIPT.
    await conn.script("FLUSH");
    expect((await quota.acquire("s", one, limits)).ok).toBe(true);
    console.log(`acquire: second call waited ${waited.toFixed(1)} ms for a 200 ms emission interval`);
  });
});
