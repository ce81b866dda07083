// The key pool's Prometheus metrics, per pool, scope and key. A key is labelled by its fingerprint, never by its
// value or its name in the Secret (a name may say more than it should, "prod-billing-key"). One set per registry:
// several pools in one process share the series, told apart by the `pool` label ("ns/name").
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { Phase } from "../keys/key-state.ts";

export type PoolMetrics = {
  calls: Counter<"pool" | "scope" | "key" | "outcome">;
  rateLimited: Counter<"pool" | "scope" | "key">;
  cooldowns: Counter<"pool" | "scope" | "key" | "level">;
  latency: Histogram<"pool" | "scope" | "key">;
  tokens: Counter<"pool" | "scope" | "key" | "kind">;
  outcomes: Counter<"pool" | "outcome">;
  /** Views registered by the pools of this registry, read at scrape time. */
  views: Set<() => PoolView>;
};

export type PoolView = {
  pool: string;
  keys: { fingerprint: string; scope: string; phase: Phase }[];
  scopes: { name: string; rate: number }[];
  waiting: number;
};

const PHASES: Phase[] = ["AVAILABLE", "IN_USE", "COOLING", "DISABLED"];
const byRegistry = new WeakMap<Registry, PoolMetrics>();

export function poolMetrics(registry: Registry): PoolMetrics {
  const had = byRegistry.get(registry);
  if (had) return had;
  const registers = [registry];
  const views = new Set<() => PoolView>();
  const m: PoolMetrics = {
    calls: new Counter({
      name: "vigil_assessor_calls_total",
      help: "Model calls by key (fingerprint) and outcome: ok, invalid (output failed validation), rate_limited, disabled, transient, rejected, aborted",
      labelNames: ["pool", "scope", "key", "outcome"],
      registers,
    }),
    rateLimited: new Counter({
      name: "vigil_assessor_429_total",
      help: "Calls the provider answered with a rate limit (429 or a Throttling code)",
      labelNames: ["pool", "scope", "key"],
      registers,
    }),
    cooldowns: new Counter({
      name: "vigil_assessor_cooldowns_total",
      help: "Cooldowns started (level key or scope)",
      labelNames: ["pool", "scope", "key", "level"],
      registers,
    }),
    latency: new Histogram({
      name: "vigil_assessor_call_seconds",
      help: "Model call latency, whatever the outcome",
      labelNames: ["pool", "scope", "key"],
      buckets: [0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30],
      registers,
    }),
    tokens: new Counter({
      name: "vigil_assessor_tokens_total",
      help: "Tokens the provider counted (usage), kind prompt or completion",
      labelNames: ["pool", "scope", "key", "kind"],
      registers,
    }),
    outcomes: new Counter({
      name: "vigil_assessor_pool_outcomes_total",
      help: "Tasks the key pool finished, by outcome: ok, dead, stale, budget, aborted",
      labelNames: ["pool", "outcome"],
      registers,
    }),
    views,
  };
  new Gauge({
    name: "vigil_assessor_key_state",
    help: "1 for the phase each key (fingerprint) is in on this replica",
    labelNames: ["pool", "scope", "key", "phase"],
    registers,
    collect() {
      this.reset();
      for (const view of views) {
        const v = view();
        for (const k of v.keys)
          for (const phase of PHASES)
            this.set({ pool: v.pool, scope: k.scope, key: k.fingerprint, phase }, k.phase === phase ? 1 : 0);
      }
    },
  });
  new Gauge({
    name: "vigil_assessor_scope_rate",
    help: "The scope's AIMD share of its configured limits in use now",
    labelNames: ["pool", "scope"],
    registers,
    collect() {
      this.reset();
      for (const view of views) {
        const v = view();
        for (const s of v.scopes) this.set({ pool: v.pool, scope: s.name }, s.rate);
      }
    },
  });
  new Gauge({
    name: "vigil_assessor_pool_waiting",
    help: "Tasks waiting in the key pool for a key and quota",
    labelNames: ["pool"],
    registers,
    collect() {
      this.reset();
      for (const view of views) {
        const v = view();
        this.set({ pool: v.pool }, v.waiting);
      }
    },
  });
  byRegistry.set(registry, m);
  return m;
}
