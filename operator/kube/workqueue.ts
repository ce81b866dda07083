// Rate-limited work queue of object keys ("namespace/name"), after client-go's
// util/workqueue queue.go + delaying_queue.go + rate_limiting_queue.go.
//
// The guarantees reconcilers rely on:
//  - a key waiting in the queue is held once, however often it is added (events coalesce);
//  - a key being processed is never handed to a second worker: adding it meanwhile marks it
//    dirty, and it goes back in the queue only when the first worker calls done();
//  - otherwise keys come out in FIFO order.

import { defaultControllerRateLimiter, type RateLimiter } from "./rate-limiters.ts";

/**
 * Hooks for client-go style `workqueue_*` metrics, so this module need not depend on prom-client.
 * Semantics follow client-go: depth counts dirty keys (queued, or re-added while processing);
 * onRetry fires on every delayed add, rate-limited or not.
 */
export interface WorkQueueMetrics {
  onAdd?(key: string): void;
  onGet?(key: string, queuedMs: number): void;
  onDone?(key: string, workMs: number): void;
  onDepth?(depth: number): void;
  onRetry?(): void;
}

export interface WorkQueueOptions {
  name?: string;
  rateLimiter?: RateLimiter<string>;
  metrics?: WorkQueueMetrics;
  /** Monotonic clock in ms, for metrics and delayed-add dedupe. */
  now?: () => number;
}

type Waiter = (key: string | undefined) => void;

export class WorkQueue {
  readonly name: string;
  readonly #rateLimiter: RateLimiter<string>;
  readonly #metrics: WorkQueueMetrics;
  readonly #now: () => number;

  // FIFO of keys ready to hand out; #head avoids O(n) shift() on every get.
  #queue: string[] = [];
  #head = 0;
  // Keys that need processing: those in #queue plus those re-added while processing.
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #waiters: Waiter[] = [];
  readonly #delayed = new Map<string, { readyAt: number; timer: NodeJS.Timeout }>();
  readonly #addedAt = new Map<string, number>();
  readonly #startedAt = new Map<string, number>();
  #shuttingDown = false;

  constructor(options: WorkQueueOptions = {}) {
    this.name = options.name ?? "";
    this.#rateLimiter = options.rateLimiter ?? defaultControllerRateLimiter<string>();
    this.#metrics = options.metrics ?? {};
    this.#now = options.now ?? (() => performance.now());
  }

  add(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#dirty.add(key);
    if (!this.#addedAt.has(key)) this.#addedAt.set(key, this.#now());
    this.#metrics.onAdd?.(key);
    this.#metrics.onDepth?.(this.#dirty.size);
    if (this.#processing.has(key)) return;
    this.#queue.push(key);
    this.#dispatch();
  }

  addAfter(key: string, ms: number): void {
    if (this.#shuttingDown) return;
    this.#metrics.onRetry?.();
    if (!(ms > 0)) {
      this.add(key);
      return;
    }
    const readyAt = this.#now() + ms;
    const pending = this.#delayed.get(key);
    // Keep only the earliest deadline: a later request would just coalesce with the earlier add.
    if (pending !== undefined) {
      if (pending.readyAt <= readyAt) return;
      clearTimeout(pending.timer);
    }
    const timer = setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, ms);
    // A pending retry must not keep the process alive on its own.
    timer.unref();
    this.#delayed.set(key, { readyAt, timer });
  }

  addRateLimited(key: string): void {
    if (this.#shuttingDown) return;
    this.addAfter(key, this.#rateLimiter.when(key));
  }

  forget(key: string): void {
    this.#rateLimiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.#rateLimiter.numRequeues(key);
  }

  /** Next key to process, or undefined once the queue is shut down. Every key must be passed to done(). */
  get(): Promise<string | undefined> {
    if (this.#shuttingDown) return Promise.resolve(undefined);
    if (this.len() > 0) return Promise.resolve(this.#take());
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  done(key: string): void {
    // Guard: a stray done() for a queued key would otherwise push it into the queue twice.
    if (!this.#processing.delete(key)) return;
    const started = this.#startedAt.get(key);
    this.#startedAt.delete(key);
    if (started !== undefined) this.#metrics.onDone?.(key, this.#now() - started);
    if (this.#shuttingDown || !this.#dirty.has(key)) return;
    this.#queue.push(key);
    this.#dispatch();
  }

  /** Keys ready to be handed out (excludes delayed adds and keys dirty while processing). */
  len(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * Stop handing out keys. Unlike client-go's Get, queued keys are dropped rather than drained:
   * an operator that is stopping (or lost its lease) should exit promptly, and the informers'
   * initial list re-enqueues everything on the next start anyway.
   */
  shutDown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    for (const { timer } of this.#delayed.values()) clearTimeout(timer);
    this.#delayed.clear();
    this.#queue = [];
    this.#head = 0;
    this.#dirty.clear();
    this.#addedAt.clear();
    for (const waiter of this.#waiters.splice(0)) waiter(undefined);
  }

  shuttingDown(): boolean {
    return this.#shuttingDown;
  }

  #take(): string {
    const key = this.#queue[this.#head] as string;
    this.#head++;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    // Marked processing at hand-off, not when the getter's continuation runs, so an add() in
    // between cannot put the key back in the queue for another worker.
    this.#processing.add(key);
    this.#dirty.delete(key);
    const now = this.#now();
    const added = this.#addedAt.get(key);
    this.#addedAt.delete(key);
    this.#startedAt.set(key, now);
    this.#metrics.onDepth?.(this.#dirty.size);
    this.#metrics.onGet?.(key, added === undefined ? 0 : now - added);
    return key;
  }

  #dispatch(): void {
    while (this.#waiters.length > 0 && this.len() > 0) {
      const waiter = this.#waiters.shift() as Waiter;
      waiter(this.#take());
    }
  }
}

export type ReconcileResult = {
  /** Requeue after this delay; the failure count is reset first (controller-runtime's RequeueAfter). */
  requeueAfterMs?: number;
  /** Requeue through the rate limiter without counting as success (controller-runtime's Requeue). */
  requeue?: boolean;
};

/**
 * Run `concurrency` workers over the queue until it is shut down. A throw retries the key with
 * backoff; success forgets its failure history. Resolves once every worker has exited, i.e. after
 * shutDown() and after in-flight reconciles finish.
 */
export async function runWorkers(
  queue: WorkQueue,
  concurrency: number,
  // biome-ignore lint/suspicious/noConfusingVoidType: lets plain `async (key) => { ... }` reconcilers type-check.
  reconcile: (key: string) => Promise<ReconcileResult | void>,
  onError?: (key: string, err: unknown) => void,
): Promise<void> {
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new RangeError(`runWorkers: concurrency must be a positive integer, got ${concurrency}`);
  }
  const worker = async (): Promise<void> => {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      try {
        const result = await reconcile(key);
        const after = result?.requeueAfterMs ?? 0;
        if (after > 0) {
          queue.forget(key);
          queue.addAfter(key, after);
        } else if (result?.requeue) {
          queue.addRateLimited(key);
        } else {
          queue.forget(key);
        }
      } catch (err) {
        // A throwing error hook must not kill the worker and strand the key in processing.
        try {
          onError?.(key, err);
        } catch {}
        queue.addRateLimited(key);
      } finally {
        queue.done(key);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
