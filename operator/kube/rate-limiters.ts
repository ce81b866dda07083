// Requeue rate limiters, after client-go util/workqueue/default_rate_limiters.go.
// All delays are in milliseconds.

export interface RateLimiter<K> {
  /** How long to wait before handing `item` out again. Counts as a failure/reservation. */
  when(item: K): number;
  /** Stop tracking `item`: it succeeded, so its next failure starts from scratch. */
  forget(item: K): void;
  /** How many times `item` has been requeued since it was last forgotten. */
  numRequeues(item: K): number;
}

/** Per-item exponential backoff: base * 2^failures, capped at max. */
export class ItemExponentialFailureRateLimiter<K> implements RateLimiter<K> {
  readonly baseMs: number;
  readonly maxMs: number;
  readonly #failures = new Map<K, number>();

  constructor(baseMs = 5, maxMs = 1_000_000) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
  }

  when(item: K): number {
    const exp = this.#failures.get(item) ?? 0;
    this.#failures.set(item, exp + 1);
    const backoff = this.baseMs * 2 ** exp;
    // 2 ** exp reaches Infinity after ~1024 failures; clamp rather than hand a timer a non-finite delay.
    return Number.isFinite(backoff) && backoff < this.maxMs ? backoff : this.maxMs;
  }

  forget(item: K): void {
    this.#failures.delete(item);
  }

  numRequeues(item: K): number {
    return this.#failures.get(item) ?? 0;
  }
}

/**
 * Overall token bucket shared by all items (golang.org/x/time/rate semantics, Reserve()).
 * It caps the aggregate retry rate so a mass failure cannot hammer the API server,
 * whereas the per-item limiter only spaces out retries of one key.
 */
export class BucketRateLimiter<K> implements RateLimiter<K> {
  readonly qps: number;
  readonly burst: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  constructor(qps = 10, burst = 100, now: () => number = () => performance.now()) {
    if (!(qps > 0) || !(burst >= 1)) throw new RangeError(`BucketRateLimiter needs qps > 0 and burst >= 1`);
    this.qps = qps;
    this.burst = burst;
    this.#now = now;
    this.#tokens = burst;
    this.#last = now();
  }

  when(_item: K): number {
    const now = this.#now();
    const elapsed = Math.max(0, now - this.#last);
    this.#last = Math.max(now, this.#last);
    this.#tokens = Math.min(this.burst, this.#tokens + (elapsed * this.qps) / 1000);
    // Reserving even when empty lets the balance go negative, so concurrent callers queue up
    // behind each other at 1/qps spacing instead of all waking at the same instant.
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : (-this.#tokens * 1000) / this.qps;
  }

  forget(_item: K): void {}

  numRequeues(_item: K): number {
    return 0;
  }
}

/** Worst (longest) delay of several limiters. Every limiter is consulted so each records the attempt. */
export class MaxOfRateLimiter<K> implements RateLimiter<K> {
  readonly #limiters: readonly RateLimiter<K>[];

  constructor(...limiters: RateLimiter<K>[]) {
    if (limiters.length === 0) throw new RangeError("MaxOfRateLimiter needs at least one limiter");
    this.#limiters = limiters;
  }

  when(item: K): number {
    let max = 0;
    for (const l of this.#limiters) max = Math.max(max, l.when(item));
    return max;
  }

  forget(item: K): void {
    for (const l of this.#limiters) l.forget(item);
  }

  numRequeues(item: K): number {
    let max = 0;
    for (const l of this.#limiters) max = Math.max(max, l.numRequeues(item));
    return max;
  }
}

/** controller-runtime's default: max(per-item exponential 5 ms → 1000 s, overall bucket 10 qps / 100 burst). */
export function defaultControllerRateLimiter<K = string>(now?: () => number): RateLimiter<K> {
  return new MaxOfRateLimiter<K>(
    new ItemExponentialFailureRateLimiter<K>(5, 1_000_000),
    new BucketRateLimiter<K>(10, 100, now),
  );
}
