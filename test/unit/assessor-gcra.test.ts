import { describe, expect, it } from "vitest";
import { type Cost, type Limits, limitsSchema, type QuotaState, reserve, settle } from "../../assessor/quota/gcra.ts";

const ONE: Cost = { requests: 1, tokens: 0 };

/** Offers `cost` every `stepMs` from 0 to `untilMs`; returns the admission times. */
function offer(limits: Limits, stepMs: number, untilMs: number, cost: Cost = ONE, state: QuotaState = {}) {
  const admitted: number[] = [];
  let s = state;
  for (let now = 0; now < untilMs; now += stepMs) {
    const r = reserve(s, cost, now, limits);
    s = r.state;
    if (r.ok) admitted.push(now);
  }
  return { admitted, state: s };
}

/** The most admissions in any half-open window [t, t + windowMs). */
function maxInWindow(times: number[], windowMs: number): number {
  let max = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while ((times[j] as number) <= (times[i] as number) - windowMs) j++;
    max = Math.max(max, i - j + 1);
  }
  return max;
}

describe("reserve", () => {
  it("admits exactly the limit in any 1 s window at burst 1, offered 1 ms apart", () => {
    const { admitted } = offer({ rps: { rate: 10 } }, 1, 10_000);
    expect(maxInWindow(admitted, 1_000)).toBe(10);
    // One every 100 ms, no boundary effect: 10 s gives 100.
    expect(admitted.length).toBe(100);
    expect(admitted.slice(0, 3)).toEqual([0, 100, 200]);
  });

  it("admits exactly the limit in any minute for rpm, and the tighter of rps and rpm holds", () => {
    const { admitted } = offer({ rps: { rate: 5 }, rpm: { rate: 120 } }, 1, 180_000);
    expect(maxInWindow(admitted, 60_000)).toBe(120);
    // rpm's 500 ms spacing is the tighter one: 2 per second, never 5.
    expect(maxInWindow(admitted, 1_000)).toBe(2);
    expect(admitted.length).toBe(360);
  });

  it("admits a burst at once from idle, then one per emission interval; any window holds at most L + b - 1", () => {
    const limits: Limits = { rps: { rate: 10, burst: 4 } };
    const { admitted } = offer(limits, 1, 5_000);
    expect(admitted.slice(0, 5)).toEqual([0, 1, 2, 3, 100]);
    expect(maxInWindow(admitted, 1_000)).toBe(13);
    // Long-run rate stays 10/s: 4 at once plus one per 100 ms after the first.
    expect(admitted.length).toBe(4 + 49);
  });

  it("refuses with the exact retryAfter, and conforms at that instant", () => {
    const limits: Limits = { rps: { rate: 4 } };
    let r = reserve({}, ONE, 1_000, limits);
    expect(r.ok).toBe(true);
    const s = r.state;
    r = reserve(s, ONE, 1_100, limits);
    expect(r).toEqual({ ok: false, retryAfterMs: 150, limitedBy: "rps", state: s });
    expect(reserve(s, ONE, 1_249.999, limits).ok).toBe(false);
    expect(reserve(s, ONE, 1_250, limits).ok).toBe(true);
  });

  it("is all or nothing across dimensions, and names the one that needs the longest wait", () => {
    const limits: Limits = { rps: { rate: 10 }, tpm: { rate: 6_000, burst: 150 } };
    const first = reserve({}, { requests: 1, tokens: 100 }, 0, limits);
    expect(first.ok && first.state).toEqual({ rps: 100, tpm: 1_000 });
    // At 100 ms rps conforms but tpm (1000 + 1000 - 100 - 1500 = 400 ms) does not: nothing is taken.
    const second = reserve(first.state, { requests: 1, tokens: 100 }, 100, limits);
    expect(second).toMatchObject({ ok: false, limitedBy: "tpm", retryAfterMs: 400, state: first.state });
  });

  it("never admits a cost over the burst, and says so with Infinity", () => {
    const r = reserve({}, { requests: 1, tokens: 2_000 }, 0, { tpm: { rate: 60_000 } });
    expect(r).toMatchObject({ ok: false, limitedBy: "tpm", retryAfterMs: Number.POSITIVE_INFINITY });
  });

  it("keeps tokens in any window under L + burst", () => {
    // 1000 tokens/s with a 300-token burst, requests of 70 tokens offered every ms.
    const { admitted } = offer({ tpm: { rate: 60_000, burst: 300 } }, 1, 10_000, { requests: 1, tokens: 70 });
    const tokensMax = maxInWindow(admitted, 1_000) * 70;
    expect(tokensMax).toBeLessThan(1_000 + 300);
    expect(tokensMax).toBeGreaterThanOrEqual(1_000);
    expect(admitted.length * 70).toBeGreaterThanOrEqual(10_000 - 70);
  });

  it("ignores dimensions without a limit and zero costs", () => {
    expect(reserve({}, { requests: 1, tokens: 1e9 }, 0, { rps: { rate: 1 } })).toEqual({
      ok: true,
      state: { rps: 1000 },
    });
    expect(reserve({ rps: 5_000 }, { requests: 0, tokens: 0 }, 0, { rps: { rate: 1 } }).ok).toBe(true);
  });
});

describe("settle", () => {
  const limits: Limits = { tpm: { rate: 60_000, burst: 1_000 } }; // 1 token per ms

  it("charges an underestimate as a debt that delays the next reservation", () => {
    const r = reserve({}, { requests: 1, tokens: 1_000 }, 0, limits);
    expect(r.state).toEqual({ tpm: 1_000 });
    const s = settle(r.state, { estimated: 1_000, actual: 1_500 }, 200, limits);
    expect(s).toEqual({ tpm: 1_500 });
    // 1500 + 100 - 400 - 1000: 200 ms more than without the debt's 500.
    expect(reserve(s, { requests: 1, tokens: 100 }, 400, limits)).toMatchObject({ ok: false, retryAfterMs: 200 });
    expect(reserve(s, { requests: 1, tokens: 100 }, 600, limits).ok).toBe(true);
  });

  it("gives back an overestimate, but never more than a full bucket", () => {
    const r = reserve({}, { requests: 1, tokens: 800 }, 0, limits);
    expect(settle(r.state, { estimated: 800, actual: 300 }, 100, limits)).toEqual({ tpm: 300 });
    expect(settle(r.state, { estimated: 800, actual: 0 }, 100, limits)).toEqual({ tpm: 100 });
  });

  it("keeps a debt settled after the bucket went idle", () => {
    const r = reserve({}, { requests: 1, tokens: 100 }, 0, limits);
    // At 5 s the TAT (100) is long past: the 400-token debt counts from now.
    expect(settle(r.state, { estimated: 100, actual: 500 }, 5_000, limits)).toEqual({ tpm: 5_400 });
  });

  it("lets more requests through when usage runs under the estimate", () => {
    const admittedIn10s = (actual: number) => {
      let s: QuotaState = {};
      let n = 0;
      for (let now = 0; now < 10_000; now++) {
        const r = reserve(s, { requests: 1, tokens: 100 }, now, limits);
        s = r.state;
        if (!r.ok) continue;
        n++;
        s = settle(s, { estimated: 100, actual }, now, limits);
      }
      return n;
    };
    // 1000 tokens/s, 100 reserved each: a 10-request burst, then 10/s. Settled at 50, twice as many.
    expect(admittedIn10s(100)).toBe(10 + 99);
    expect(admittedIn10s(50)).toBe(20 + 198);
  });

  it("changes nothing without a tpm limit or when the estimate was right", () => {
    const s: QuotaState = { rps: 100, tpm: 50 };
    expect(settle(s, { estimated: 10, actual: 20 }, 0, { rps: { rate: 10 } })).toBe(s);
    expect(settle(s, { estimated: 10, actual: 10 }, 0, limits)).toBe(s);
  });
});

describe("limitsSchema", () => {
  it("accepts positive finite rates and bursts, and nothing else", () => {
    expect(limitsSchema.parse({ rpm: { rate: 1_200 }, tpm: { rate: 1e6, burst: 20_000 } })).toEqual({
      rpm: { rate: 1_200 },
      tpm: { rate: 1e6, burst: 20_000 },
    });
    for (const bad of [
      { rps: { rate: 0 } },
      { rpm: { rate: -1 } },
      { tpm: { rate: 1, burst: 0 } },
      { rps: { rate: Infinity } },
    ])
      expect(limitsSchema.safeParse(bad).success).toBe(false);
  });
});
