// The assessor's per-pool metrics (the key pool exports its own per scope and key). Names under vigil_assessor_;
// the pool label is `<namespace>/<name>`. Tasks are counted once, by what became of them, so
//   sum(vigil_assessor_tasks_total) == tasks taken off the queue (minus those still waiting or in flight).
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export const TASK_OUTCOMES = [
  "ok",
  "dead",
  "dropped-stale",
  "dropped-overflow",
  "budget",
  /** A redelivered task whose result was already stored (acked, no call). */
  "duplicate",
] as const;
export type TaskOutcome = (typeof TASK_OUTCOMES)[number];

/** Messages refused before they reached a pool (dead-lettered with the reason). */
export const REJECT_REASONS = ["malformed", "unknown-pool"] as const;
export type RejectReason = (typeof REJECT_REASONS)[number];

export type PoolGauges = {
  queueDepth(): number;
  inFlight(): number;
  /** Jain's index over the sliding window. */
  fairness(): number;
  /** Completed tasks per second over the sliding window. */
  throughput(): number;
};

export type AssessorMetrics = {
  task(pool: string, outcome: TaskOutcome): void;
  rejected(reason: RejectReason): void;
  latency(pool: string, seconds: number): void;
  /** The service registers each pool's gauges; a pool that went away is removed. */
  watchPool(pool: string, gauges: PoolGauges): void;
  forgetPool(pool: string): void;
};

export function createAssessorMetrics(
  registry: Registry,
  depth: () => Promise<{ ready: number; dead: number }>,
): AssessorMetrics {
  const registers = [registry];
  const pools = new Map<string, PoolGauges>();
  const tasks = new Counter({
    name: "vigil_assessor_tasks_total",
    help: "Tasks by outcome: ok (result published), dead (DLQ), dropped-stale, dropped-overflow, budget, duplicate",
    labelNames: ["pool", "outcome"],
    registers,
  });
  const rejected = new Counter({
    name: "vigil_assessor_rejected_total",
    help: "Task messages dead-lettered before scheduling: malformed (failed the schema) or unknown-pool",
    labelNames: ["reason"],
    registers,
  });
  for (const r of REJECT_REASONS) rejected.inc({ reason: r }, 0);
  const latency = new Histogram({
    name: "vigil_assessor_task_latency_seconds",
    help: "A task's created_at to its result's completed_at",
    labelNames: ["pool"],
    buckets: [0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60],
    registers,
  });
  const perPool = (name: string, help: string, pick: (g: PoolGauges) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ["pool"],
      registers,
      collect() {
        this.reset();
        for (const [pool, g] of pools) this.set({ pool }, pick(g));
      },
    });
  perPool("vigil_assessor_queue_depth", "Tasks waiting in this replica's scheduler queues", (g) => g.queueDepth());
  perPool("vigil_assessor_in_flight", "Tasks handed to the key pool and not finished", (g) => g.inFlight());
  perPool(
    "vigil_assessor_fairness",
    "Jain's index of per-camera completions over the last minute (1 = equal shares)",
    (g) => g.fairness(),
  );
  perPool("vigil_assessor_throughput", "Completed tasks per second over the last minute", (g) => g.throughput());
  const broker = (name: string, help: string, pick: (d: { ready: number; dead: number }) => number) =>
    new Gauge({
      name,
      help,
      registers,
      async collect() {
        try {
          this.set(pick(await depth()));
        } catch {
          // The broker is away: no sample rather than a stale one.
          this.reset();
        }
      },
    });
  broker("vigil_assessor_tasks_ready", "Tasks ready in vigil.assessment.tasks (not yet delivered)", (d) => d.ready);
  broker("vigil_assessor_dlq_depth", "Messages in vigil.assessment.dead", (d) => d.dead);

  return {
    task: (pool, outcome) => tasks.inc({ pool, outcome }),
    rejected: (reason) => rejected.inc({ reason }),
    latency: (pool, s) => latency.observe({ pool }, s),
    watchPool(pool, gauges) {
      pools.set(pool, gauges);
      for (const o of TASK_OUTCOMES) tasks.inc({ pool, outcome: o }, 0);
    },
    forgetPool(pool) {
      pools.delete(pool);
    },
  };
}
