// The cost ledger: tokens per UTC day by key (fingerprint), scope, camera and model, from each answer's `usage`,
// in one Redis hash per day shared by all replicas (ASSESSMENT_REDIS.ledger). The daily budget per scope reads the
// same hash: past it, periodic samples stop (they are the optional part of the service) while event tasks go on.
import type { Redis } from "ioredis";
import { ASSESSMENT_REDIS } from "../messages.ts";

/** Days a ledger hash is kept: a month of history for a cost report, then Redis forgets it. */
const KEEP_DAYS = 35;

export const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

export type LedgerEntry = { fingerprint: string; scope: string; camera: string; model: string; tokens: number };

export class Ledger {
  readonly #redis: Redis;
  readonly #now: () => number;

  constructor(redis: Redis, now: () => number) {
    this.#redis = redis;
    this.#now = now;
  }

  async record(e: LedgerEntry): Promise<void> {
    if (e.tokens <= 0) return;
    const key = ASSESSMENT_REDIS.ledger(utcDay(this.#now()));
    await this.#redis
      .multi()
      .hincrby(key, `key:${e.fingerprint}`, e.tokens)
      .hincrby(key, `scope:${e.scope}`, e.tokens)
      .hincrby(key, `camera:${e.camera}`, e.tokens)
      .hincrby(key, `model:${e.model}`, e.tokens)
      .expire(key, KEEP_DAYS * 86_400)
      .exec();
  }

  /** Today's tokens of each field asked for (`scope:<s>`, `key:<fp>`, ...); 0 when none. */
  async today(fields: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (fields.length === 0) return out;
    const values = await this.#redis.hmget(ASSESSMENT_REDIS.ledger(utcDay(this.#now())), ...fields);
    fields.forEach((f, i) => {
      out.set(f, Number(values[i] ?? 0) || 0);
    });
    return out;
  }

  /** The scopes at or over their daily budget (`budgets`: scope → tokens per day). */
  async overBudget(budgets: ReadonlyMap<string, number>, scopes: Iterable<string>): Promise<Set<string>> {
    const asked = [...new Set(scopes)].filter((s) => budgets.has(s));
    const used = await this.today(asked.map((s) => `scope:${s}`));
    return new Set(asked.filter((s) => (used.get(`scope:${s}`) ?? 0) >= (budgets.get(s) as number)));
  }
}
