// Prometheus metrics under controller-runtime's names, so existing dashboards and alerts work unchanged.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { WorkQueueMetrics } from "./workqueue.ts";

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

const registers = [registry];
const buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

export const reconcileTotal = new Counter({
  name: "controller_runtime_reconcile_total",
  help: "Total number of reconciliations per controller",
  labelNames: ["controller", "result"],
  registers,
});
export const reconcileErrors = new Counter({
  name: "controller_runtime_reconcile_errors_total",
  help: "Total number of reconciliation errors per controller",
  labelNames: ["controller"],
  registers,
});
export const reconcileTime = new Histogram({
  name: "controller_runtime_reconcile_time_seconds",
  help: "Length of time per reconciliation per controller",
  labelNames: ["controller"],
  buckets,
  registers,
});
export const maxConcurrent = new Gauge({
  name: "controller_runtime_max_concurrent_reconciles",
  help: "Maximum number of concurrent reconciles per controller",
  labelNames: ["controller"],
  registers,
});
export const activeWorkers = new Gauge({
  name: "controller_runtime_active_workers",
  help: "Number of currently used workers per controller",
  labelNames: ["controller"],
  registers,
});
const depth = new Gauge({
  name: "workqueue_depth",
  help: "Current depth of workqueue",
  labelNames: ["name", "controller"],
  registers,
});
const adds = new Counter({
  name: "workqueue_adds_total",
  help: "Total number of adds handled by workqueue",
  labelNames: ["name", "controller"],
  registers,
});
const queueDuration = new Histogram({
  name: "workqueue_queue_duration_seconds",
  help: "How long in seconds an item stays in workqueue before being requested",
  labelNames: ["name", "controller"],
  buckets,
  registers,
});
const workDuration = new Histogram({
  name: "workqueue_work_duration_seconds",
  help: "How long in seconds processing an item from workqueue takes",
  labelNames: ["name", "controller"],
  buckets,
  registers,
});
const retries = new Counter({
  name: "workqueue_retries_total",
  help: "Total number of retries handled by workqueue",
  labelNames: ["name", "controller"],
  registers,
});
export const leaderStatus = new Gauge({
  name: "leader_election_master_status",
  help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master",
  labelNames: ["name"],
  registers,
});

export function workqueueMetrics(controller: string): WorkQueueMetrics {
  const l = { name: controller, controller };
  return {
    onAdd: () => adds.inc(l),
    onDepth: (n) => depth.set(l, n),
    onGet: (_k, queuedMs) => queueDuration.observe(l, queuedMs / 1000),
    onDone: (_k, workMs) => workDuration.observe(l, workMs / 1000),
    onRetry: () => retries.inc(l),
  };
}
