// Jain's fairness index, J = (Σx)² / (n·Σx²): 1 when every camera got the same throughput, 1/n when one got it
// all. `SlidingCounts` keeps per-camera completions over a sliding window (1 s buckets), so the assessor's gauge says
// how fair the last minute was, not the whole uptime (which would hide a camera starved now).

/** Jain's index of the values; 1 for no values or all zeros (nothing was unfair). */
export function jainIndex(values: readonly number[]): number {
  let sum = 0;
  let squares = 0;
  for (const v of values) {
    sum += v;
    squares += v * v;
  }
  if (values.length === 0 || squares === 0) return 1;
  return (sum * sum) / (values.length * squares);
}

export class SlidingCounts {
  /** camera → bucket start (ms) → count, buckets in time order. */
  #buckets = new Map<string, Map<number, number>>();
  readonly #windowMs: number;
  readonly #bucketMs: number;

  constructor(windowMs = 60_000, bucketMs = 1_000) {
    this.#windowMs = windowMs;
    this.#bucketMs = bucketMs;
  }

  add(key: string, now: number, n = 1): void {
    const start = now - (now % this.#bucketMs);
    let b = this.#buckets.get(key);
    if (!b) {
      b = new Map();
      this.#buckets.set(key, b);
    }
    b.set(start, (b.get(start) ?? 0) + n);
    this.#prune(key, b, now);
  }

  /** Counts per key over the window ending at `now`; keys with nothing in the window are left out (and forgotten). */
  counts(now: number): Map<string, number> {
    const out = new Map<string, number>();
    for (const [key, b] of this.#buckets) {
      this.#prune(key, b, now);
      let n = 0;
      for (const c of b.values()) n += c;
      if (n > 0) out.set(key, n);
    }
    return out;
  }

  /**
   * Jain's index over the keys seen in the window, plus `among` (the cameras that asked for work in it): a camera
   * that waited and got nothing counts as 0 instead of vanishing from the index.
   */
  fairness(now: number, among: Iterable<string> = []): number {
    const counts = this.counts(now);
    for (const k of among) if (!counts.has(k)) counts.set(k, 0);
    return jainIndex([...counts.values()]);
  }

  #prune(key: string, b: Map<number, number>, now: number): void {
    const oldest = now - this.#windowMs;
    for (const start of b.keys()) {
      if (start + this.#bucketMs > oldest) break;
      b.delete(start);
    }
    if (b.size === 0) this.#buckets.delete(key);
  }
}
