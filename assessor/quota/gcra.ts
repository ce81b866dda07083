// GCRA (the generic cell rate algorithm: a token bucket written as one timestamp) per quota scope, over rps, rpm
// and tpm at once. Pure arithmetic on a "theoretical arrival time" (TAT) per dimension, in milliseconds; the Redis
// Lua script (redis-quota.ts) runs exactly these formulas, in the same order, on Redis's clock.
//
// Why GCRA and not fixed windows: a fixed calendar-minute counter (LiteLLM's) admits a full minute's quota just
// before a boundary and another just after it, 2x the limit in one sliding minute. GCRA has no boundary: with
// burst 1, any half-open window of a period's length admits at most the limit.
//
// The rule, per dimension with rate L per period P (emission interval T = P / L) and burst b (in units):
//   newTat = max(tat, now) + cost * T;  conforming iff newTat - now <= b * T  (tau = b * T, explicit)
// so any window [s, s + P) admits less than L + b units (at most L + b - 1 for unit costs: exactly L at b = 1).
// A reservation is all or nothing across dimensions; a refused one leaves the state as it was.

import { z } from "zod";

export type Dimension = "rps" | "rpm" | "tpm";
export const DIMENSIONS: readonly Dimension[] = ["rps", "rpm", "tpm"];
export const PERIOD_MS: Readonly<Record<Dimension, number>> = { rps: 1_000, rpm: 60_000, tpm: 60_000 };

export type Limit = {
  /** Units (requests, or tokens for tpm) per period. */
  readonly rate: number;
  /**
   * Units admitted at once from idle (GCRA's tau = burst * T). Requests default to 1, which keeps every sliding
   * window at or under the limit; tokens default to one second's worth (tpm / 60) and must cover the largest
   * single estimate, or that reservation can never conform.
   */
  readonly burst?: number;
};

/** A scope's limits; an absent dimension is not limited. */
export type Limits = Partial<Record<Dimension, Limit>>;

/** Limits as configuration gives them (a pool's key Secret): positive, finite rates and bursts. */
export const limitSchema = z.object({
  rate: z.number().positive().finite(),
  burst: z.number().positive().finite().optional(),
});
export const limitsSchema = z.object({
  rps: limitSchema.optional(),
  rpm: limitSchema.optional(),
  tpm: limitSchema.optional(),
});

/** TAT per dimension, ms on the clock that `now` comes from; absent or in the past means an idle (full) bucket. */
export type QuotaState = Readonly<Partial<Record<Dimension, number>>>;

export type Cost = { readonly requests: number; readonly tokens: number };

export type Reserved = { ok: true; state: QuotaState };
export type Refused = {
  ok: false;
  /**
   * Wait this long and the same reservation conforms, if nobody else reserves meanwhile. Infinity when it never
   * can: its cost exceeds the dimension's burst.
   */
  retryAfterMs: number;
  /** The dimension that needs the longest wait. */
  limitedBy: Dimension;
  state: QuotaState;
};

export function burstOf(dim: Dimension, limit: Limit): number {
  return limit.burst ?? (dim === "tpm" ? limit.rate / 60 : 1);
}

export function emissionMs(dim: Dimension, limit: Limit): number {
  return PERIOD_MS[dim] / limit.rate;
}

function costOf(dim: Dimension, cost: Cost): number {
  return dim === "tpm" ? cost.tokens : cost.requests;
}

export function reserve(state: QuotaState, cost: Cost, now: number, limits: Limits): Reserved | Refused {
  const next: Partial<Record<Dimension, number>> = { ...state };
  let retryAfterMs = 0;
  let limitedBy: Dimension | undefined;
  for (const dim of DIMENSIONS) {
    const limit = limits[dim];
    const c = costOf(dim, cost);
    if (!limit || c <= 0) continue;
    const t = emissionMs(dim, limit);
    const tau = burstOf(dim, limit) * t;
    const newTat = Math.max(state[dim] ?? now, now) + c * t;
    const wait = c * t > tau ? Number.POSITIVE_INFINITY : newTat - now - tau;
    if (wait > 0) {
      if (wait > retryAfterMs) [retryAfterMs, limitedBy] = [wait, dim];
      continue;
    }
    next[dim] = newTat;
  }
  if (limitedBy) return { ok: false, retryAfterMs, limitedBy, state };
  return { ok: true, state: next };
}

/**
 * Corrects tpm once the response's usage is known: an underestimate moves the TAT on (a debt later reservations
 * wait for), an overestimate gives the difference back, but never past `now` (a bucket holds at most its burst).
 * A TAT already in the past counts as `now` (a full bucket), so a debt is never lost in the idle gap.
 */
export function settle(
  state: QuotaState,
  usage: { readonly estimated: number; readonly actual: number },
  now: number,
  limits: Limits,
): QuotaState {
  const limit = limits.tpm;
  if (!limit || usage.actual === usage.estimated) return state;
  const moved = Math.max(state.tpm ?? now, now) + (usage.actual - usage.estimated) * emissionMs("tpm", limit);
  return { ...state, tpm: Math.max(moved, now) };
}
