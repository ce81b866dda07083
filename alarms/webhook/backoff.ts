// When to try a webhook again: exponential backoff with jitter, `Retry-After` honoured, inside a budget of attempts
// and total time. Pure (random and the clock come in), so the schedule is unit-tested without waiting.
//
// Why a budget of minutes and not the spec's days-long schedule: the alarm message stays unacked in the queue while
// its webhook is retried (the ack comes only after `alarm.clip` is delivered and recorded), and RabbitMQ closes a
// channel whose delivery stays unacked past `consumer_timeout` (30 min by default). Past the budget the alarm goes to
// the dead-letter queue with the reason, where it can be replayed; a redelivery starts a fresh budget.

export type Jitter = "full" | "equal" | "none";

export type RetryBudget = {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** No attempt starts later than this after the first one started (one may still run `attemptTimeoutMs` past it). */
  maxElapsedMs: number;
  /** The delay before the first retry; it doubles after each failure... */
  initialDelayMs: number;
  /** ...up to this cap (a `Retry-After` may ask for longer: it is honoured up to the remaining budget). */
  maxDelayMs: number;
  /**
   * "full": uniform in [0, d]; "equal": uniform in [d/2, d]; "none": d. AWS measured full jitter as the least total
   * work for many clients contending for one server ("Exponential Backoff And Jitter", 2015). The default is equal:
   * a webhook receiver is one endpoint retried by at most a few replicas, the spread is still a factor of two, and a
   * floor of d/2 means a struggling receiver never gets an immediate retry and the budget spans a predictable time.
   */
  jitter: Jitter;
  /** One POST, headers included. The spec recommends a receiver timeout of 15 to 30 s. */
  attemptTimeoutMs: number;
};

/**
 * 10 attempts, 1 s doubling to a 60 s cap, equal jitter: the delays sum to 121–243 s, and with every attempt timing
 * out (15 s each) the whole takes under 6.5 min, inside the 10 min time budget: the attempt budget decides, except
 * when `Retry-After` asks for long waits.
 */
export const DEFAULT_BUDGET: RetryBudget = Object.freeze({
  maxAttempts: 10,
  maxElapsedMs: 10 * 60_000,
  initialDelayMs: 1000,
  maxDelayMs: 60_000,
  jitter: "equal",
  attemptTimeoutMs: 15_000,
});

/** The budget with `partial` applied, checked: a nonsense budget is a configuration error, said at once. */
export function retryBudget(partial: Partial<RetryBudget> = {}): RetryBudget {
  const b = { ...DEFAULT_BUDGET, ...partial };
  const whole = (k: keyof RetryBudget, min: number) => {
    const v = b[k] as number;
    if (!Number.isFinite(v) || v < min) throw new Error(`retry budget: ${k} must be a number ≥ ${min}, got ${v}`);
  };
  whole("maxAttempts", 1);
  whole("maxElapsedMs", 0);
  whole("initialDelayMs", 0);
  whole("maxDelayMs", 0);
  whole("attemptTimeoutMs", 1);
  if (!["full", "equal", "none"].includes(b.jitter))
    throw new Error(`retry budget: jitter must be full, equal or none`);
  return b;
}

/** The delay before retry `n` (1 after the first failure), jittered; `random` returns [0, 1). */
export function backoffDelay(
  n: number,
  b: Pick<RetryBudget, "initialDelayMs" | "maxDelayMs" | "jitter">,
  random: () => number,
): number {
  // 2 ** 1024 is Infinity, and min() takes care of it, but a huge n must not produce NaN from Infinity * 0.
  const d = Math.min(b.maxDelayMs, b.initialDelayMs * 2 ** Math.min(n - 1, 1000));
  const r = Math.min(Math.max(random(), 0), 1);
  const ms = b.jitter === "full" ? d * r : b.jitter === "equal" ? d / 2 + (d / 2) * r : d;
  return Math.round(ms);
}

const HTTP_DATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)/i;

/**
 * A `Retry-After` value in ms from now: delta-seconds (`120`) or an HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`,
 * a date in the past is 0). Undefined when absent or unreadable (then only the backoff counts).
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  if (!HTTP_DATE.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

export type RetryDecision = { retry: true; delayMs: number } | { retry: false; reason: string };

/**
 * After failed attempt number `attempts`: wait and retry, or stop. The wait is the larger of the backoff and the
 * server's `Retry-After`, capped by what is left of the time budget (the last attempt then starts at its end).
 */
export function nextRetry(
  s: { attempts: number; startedMs: number; nowMs: number; retryAfterMs?: number | undefined },
  b: RetryBudget,
  random: () => number,
): RetryDecision {
  if (s.attempts >= b.maxAttempts) return { retry: false, reason: `${s.attempts} attempts, the budget's limit` };
  const elapsed = s.nowMs - s.startedMs;
  const remaining = b.maxElapsedMs - elapsed;
  if (remaining <= 0)
    return { retry: false, reason: `${s.attempts} attempts in ${elapsed} ms, past the budget's ${b.maxElapsedMs} ms` };
  const wanted = Math.max(backoffDelay(s.attempts, b, random), s.retryAfterMs ?? 0);
  return { retry: true, delayMs: Math.min(wanted, remaining) };
}
