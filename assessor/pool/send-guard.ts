// The last line of defence before a call goes out: a sliding log of this replica's send times per scope, so that no
// window of the provider's (a second for rps, a minute for rpm) ever holds more of our calls than its limit, whatever
// the GCRA admitted. The GCRA keeps the rate (and shares it between replicas); this keeps the spacing when the event
// loop did not: a call delayed 40 ms by a stall (GC, a busy CPU) leaves the next L calls of a scope at exactly the
// limit only ~990 ms apart in the provider's sliding second, a 429 that costs the scope a second of cooldown and an
// AIMD dip (measured here: one stall at start-up, 429s on all three scopes, 78 % of capacity over 20 s). Pure, one
// instance per pool; `claim` is atomic because JS is.
export type Window = { count: number; spanMs: number };

/** The provider's windows for a scope's limits, as DashScope (and the fake) count them. */
export function windowsFor(l: { rps?: number; rpm?: number }): Window[] {
  const out: Window[] = [];
  if (l.rps !== undefined) {
    // 10 rps → 10 per 1 s; 0.5 rps → 1 per 2 s.
    const count = Math.max(1, Math.floor(l.rps));
    out.push({ count, spanMs: (1000 * count) / l.rps });
  }
  if (l.rpm !== undefined) out.push({ count: Math.max(1, Math.floor(l.rpm)), spanMs: 60_000 });
  return out;
}

export class SendGuard {
  readonly #log = new Map<string, number[]>();
  readonly #marginMs: number;

  /** `marginMs`: the clock and network slack between our send and the provider's count. */
  constructor(marginMs = 3) {
    this.#marginMs = marginMs;
  }

  /**
   * 0 when a call may go out now (and it is recorded as sent now), else how long to wait first. Ask again after
   * the wait, right before sending: a stall during the wait is then seen, not assumed away.
   */
  tryClaim(scope: string, now: number, windows: readonly Window[]): number {
    const log = this.#log.get(scope) ?? [];
    this.#log.set(scope, log);
    let wait = 0;
    for (const w of windows) {
      // With the new call, `count` calls may lie in any span: the count-th one back must be a span (and the
      // margin) earlier.
      const back = log.at(-w.count);
      if (back !== undefined) wait = Math.max(wait, back + w.spanMs + this.#marginMs - now);
    }
    if (wait > 0) return wait;
    log.push(now);
    const keep = Math.max(1, ...windows.map((w) => w.count));
    if (log.length > keep * 2) log.splice(0, log.length - keep);
    return 0;
  }
}
