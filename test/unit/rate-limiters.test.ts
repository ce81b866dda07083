import { describe, expect, it } from "vitest";
import {
  BucketRateLimiter,
  defaultControllerRateLimiter,
  ItemExponentialFailureRateLimiter,
  MaxOfRateLimiter,
} from "../../operator/kube/rate-limiters.ts";

describe("ItemExponentialFailureRateLimiter", () => {
  it("doubles from 5 ms per failure and caps at 1000 s", () => {
    const rl = new ItemExponentialFailureRateLimiter<string>();
    const delays = Array.from({ length: 20 }, () => rl.when("a"));
    expect(delays.slice(0, 6)).toEqual([5, 10, 20, 40, 80, 160]);
    // 5 * 2^17 = 655 360 is the last uncapped step; 5 * 2^18 would exceed 1 000 000.
    expect(delays[17]).toBe(655_360);
    expect(delays[18]).toBe(1_000_000);
    expect(delays[19]).toBe(1_000_000);
    expect(rl.numRequeues("a")).toBe(20);
  });

  it("stays at the cap after very many failures (no Infinity/NaN)", () => {
    const rl = new ItemExponentialFailureRateLimiter<string>(5, 1_000_000);
    let last = 0;
    for (let i = 0; i < 3000; i++) last = rl.when("a");
    expect(last).toBe(1_000_000);
  });

  it("tracks items independently and resets on forget", () => {
    const rl = new ItemExponentialFailureRateLimiter<string>(1, 100);
    expect([rl.when("a"), rl.when("a"), rl.when("a")]).toEqual([1, 2, 4]);
    expect(rl.when("b")).toBe(1);
    expect(rl.numRequeues("a")).toBe(3);
    expect(rl.numRequeues("b")).toBe(1);
    rl.forget("a");
    expect(rl.numRequeues("a")).toBe(0);
    expect(rl.when("a")).toBe(1);
    expect(rl.when("b")).toBe(2);
  });
});

describe("BucketRateLimiter", () => {
  it("allows a burst, then spaces reservations 1/qps apart", () => {
    const t = 0;
    const rl = new BucketRateLimiter<string>(10, 100, () => t);
    for (let i = 0; i < 100; i++) expect(rl.when(`k${i}`)).toBe(0);
    expect(rl.when("x")).toBe(100);
    expect(rl.when("y")).toBe(200);
    expect(rl.when("z")).toBe(300);
    expect(rl.numRequeues("x")).toBe(0);
  });

  it("refills at qps up to the burst size", () => {
    let t = 0;
    const rl = new BucketRateLimiter<string>(10, 5, () => t);
    for (let i = 0; i < 5; i++) rl.when("a");
    expect(rl.when("a")).toBe(100); // balance now -1
    t = 1_000; // +10 tokens → 9, capped at 5
    for (let i = 0; i < 5; i++) expect(rl.when("a")).toBe(0);
    expect(rl.when("a")).toBe(100);
    t = 1_050; // half a token back: balance -0.5
    expect(rl.when("a")).toBe(150);
  });

  it("forget does not return tokens", () => {
    const t = 0;
    const rl = new BucketRateLimiter<string>(1, 1, () => t);
    expect(rl.when("a")).toBe(0);
    rl.forget("a");
    expect(rl.when("a")).toBe(1000);
  });
});

describe("MaxOfRateLimiter", () => {
  it("returns the longest delay and consults every limiter", () => {
    let t = 0;
    const exp = new ItemExponentialFailureRateLimiter<string>(100, 10_000);
    const bucket = new BucketRateLimiter<string>(1, 2, () => t);
    const rl = new MaxOfRateLimiter<string>(exp, bucket);
    expect(rl.when("a")).toBe(100); // exp 100, bucket 0
    expect(rl.when("b")).toBe(100); // exp 100, bucket 0
    expect(rl.when("c")).toBe(1000); // exp 100, bucket 1000
    expect(rl.when("a")).toBe(2000); // exp 200, bucket 2000
    expect(rl.numRequeues("a")).toBe(2);
    rl.forget("a");
    expect(rl.numRequeues("a")).toBe(0);
    t = 100_000;
    expect(rl.when("a")).toBe(100);
  });
});

describe("defaultControllerRateLimiter", () => {
  it("is per-item exponential from 5 ms until the 10 qps / 100 burst bucket dominates", () => {
    let t = 0;
    const rl = defaultControllerRateLimiter<string>(() => t);
    expect([rl.when("a"), rl.when("a"), rl.when("a")]).toEqual([5, 10, 20]);
    for (let i = 0; i < 97; i++) expect(rl.when(`k${i}`)).toBe(5);
    // Bucket exhausted: the 101st reservation waits 100 ms regardless of item history.
    expect(rl.when("fresh")).toBe(100);
    t = 60_000;
    rl.forget("a");
    expect(rl.when("a")).toBe(5);
  });
});
