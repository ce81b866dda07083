import { describe, expect, it } from "vitest";
import {
  backoffDelay,
  DEFAULT_BUDGET,
  nextRetry,
  parseRetryAfter,
  type RetryBudget,
  retryBudget,
} from "../../alarms/webhook/backoff.ts";

const b = (p: Partial<RetryBudget> = {}) => retryBudget({ initialDelayMs: 1000, maxDelayMs: 8000, ...p });
const constant = (r: number) => () => r;

describe("backoffDelay", () => {
  it("doubles from the initial delay up to the cap", () => {
    const none = b({ jitter: "none" });
    expect([1, 2, 3, 4, 5, 6, 50, 5000].map((n) => backoffDelay(n, none, Math.random))).toEqual([
      1000, 2000, 4000, 8000, 8000, 8000, 8000, 8000,
    ]);
  });

  it("full jitter spans [0, d], equal jitter [d/2, d]", () => {
    expect(backoffDelay(3, b({ jitter: "full" }), constant(0))).toBe(0);
    expect(backoffDelay(3, b({ jitter: "full" }), constant(0.5))).toBe(2000);
    expect(backoffDelay(3, b({ jitter: "full" }), constant(0.9999))).toBe(4000);
    expect(backoffDelay(3, b({ jitter: "equal" }), constant(0))).toBe(2000);
    expect(backoffDelay(3, b({ jitter: "equal" }), constant(0.5))).toBe(3000);
    expect(backoffDelay(3, b({ jitter: "equal" }), constant(0.9999))).toBe(4000);
    // A random source out of range is clamped, never a negative or over-cap delay.
    expect(backoffDelay(10, b({ jitter: "full" }), constant(7))).toBe(8000);
    expect(backoffDelay(10, b({ jitter: "full" }), constant(-1))).toBe(0);
  });

  it("the default schedule spans 121–243 s of waiting over its 9 retries", () => {
    const sum = (r: number) =>
      Array.from({ length: DEFAULT_BUDGET.maxAttempts - 1 }, (_, i) =>
        backoffDelay(i + 1, DEFAULT_BUDGET, constant(r)),
      ).reduce((a, x) => a + x, 0);
    expect(DEFAULT_BUDGET.jitter).toBe("equal");
    expect(sum(0)).toBe(121_500);
    expect(sum(0.99999)).toBe(243_000);
    // Every attempt timing out as well still ends inside the time budget: attempts decide.
    expect(sum(0.99999) + DEFAULT_BUDGET.maxAttempts * DEFAULT_BUDGET.attemptTimeoutMs).toBeLessThan(
      DEFAULT_BUDGET.maxElapsedMs,
    );
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2025-01-01T00:00:00Z");
  it.each([
    ["120", 120_000],
    [" 0 ", 0],
    ["Wed, 01 Jan 2025 00:00:30 GMT", 30_000],
    ["Tue, 31 Dec 2024 23:00:00 GMT", 0],
    ["Wednesday, 01-Jan-25 00:01:00 GMT", 60_000],
    [null, undefined],
    ["", undefined],
    ["-5", undefined],
    ["1.5", undefined],
    ["soon", undefined],
    ["2025-01-01T00:00:30Z", undefined],
  ])("%j → %j ms", (v, ms) => {
    expect(parseRetryAfter(v, now)).toBe(ms);
  });
});

describe("nextRetry", () => {
  const budget = b({ maxAttempts: 4, maxElapsedMs: 30_000, jitter: "none" });
  const at = (attempts: number, elapsed: number, retryAfterMs?: number) =>
    nextRetry({ attempts, startedMs: 1_000_000, nowMs: 1_000_000 + elapsed, retryAfterMs }, budget, constant(0));

  it("backs off, then stops at the attempt budget", () => {
    expect(at(1, 100)).toEqual({ retry: true, delayMs: 1000 });
    expect(at(3, 5000)).toEqual({ retry: true, delayMs: 4000 });
    expect(at(4, 9000)).toEqual({ retry: false, reason: "4 attempts, the budget's limit" });
  });

  it("stops once the time budget is spent", () => {
    expect(at(2, 30_000)).toEqual({
      retry: false,
      reason: "2 attempts in 30000 ms, past the budget's 30000 ms",
    });
  });

  it("takes the larger of backoff and Retry-After, capped by the time left", () => {
    expect(at(1, 0, 5000)).toEqual({ retry: true, delayMs: 5000 });
    expect(at(3, 0, 500)).toEqual({ retry: true, delayMs: 4000 });
    // Retry-After may exceed the backoff cap (8 s), but not the budget: the last attempt lands at its end.
    expect(at(1, 0, 20_000)).toEqual({ retry: true, delayMs: 20_000 });
    expect(at(1, 25_000, 3_600_000)).toEqual({ retry: true, delayMs: 5000 });
    expect(at(2, 29_500)).toEqual({ retry: true, delayMs: 500 });
  });
});

describe("retryBudget", () => {
  it("fills in the defaults and refuses nonsense, naming the field", () => {
    expect(retryBudget()).toEqual(DEFAULT_BUDGET);
    expect(retryBudget({ maxAttempts: 3 }).maxAttempts).toBe(3);
    expect(() => retryBudget({ maxAttempts: 0 })).toThrow(/maxAttempts must be a number ≥ 1, got 0/);
    expect(() => retryBudget({ attemptTimeoutMs: Number.NaN })).toThrow(/attemptTimeoutMs/);
    expect(() => retryBudget({ jitter: "some" as "full" })).toThrow(/jitter must be full, equal or none/);
  });
});
