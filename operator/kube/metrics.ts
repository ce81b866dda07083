// Prometheus metrics under controller-runtime's names, so existing dashboards and alerts work unchanged, and
// Vigil's own status gauges (observeStatus).
import type { KubernetesObject } from "@kubernetes/client-node";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { WORKER_PHASES } from "../api/detector-pool.ts";
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

/**
 * controller-runtime's initMetrics: every result of a controller at 0 from its start, so rate() sees its first error
 * and a dashboard shows 0 errors rather than no series.
 */
export function initReconcileMetrics(controller: string): void {
  for (const result of ["success", "error", "requeue", "requeue_after"]) reconcileTotal.inc({ controller, result }, 0);
  reconcileErrors.inc({ controller }, 0);
}

/** What the status gauges below are read from: the leader's caches (a standby's are empty, so it reports none). */
export type StatusSource = { cameras: () => KubernetesObject[]; pools: () => KubernetesObject[] };
let statusSource: StatusSource | undefined;

/**
 * Reports the cameras' and pools' status, as kube-state-metrics does for built-in kinds, read from the caches at
 * scrape time: what the chart's alerts (camera unschedulable, pool full, worker lost) and dashboard need, at no cost
 * between scrapes. Objects are named `<namespace>/<name>` in a `camera` or `pool` label, as the workers name
 * cameras; a `namespace` label would clash with the one Prometheus gives the operator's own target.
 */
export function observeStatus(source: StatusSource): void {
  statusSource = source;
}

type StatusView = {
  metadata?: { namespace?: string; name?: string };
  spec?: { poolRef?: { name?: string } };
  status?: {
    conditions?: { type?: string; status?: string; reason?: string }[];
    workers?: { phase?: string }[];
    assignedCameras?: number;
    unassignedCameras?: number;
  };
};
const nameOf = (o: StatusView, name = o.metadata?.name ?? "") => `${o.metadata?.namespace ?? ""}/${name}`;

new Gauge({
  name: "vigil_camera_condition",
  help: "1 for each condition in a CameraDetection's status (condition, status, reason)",
  labelNames: ["camera", "pool", "condition", "status", "reason"],
  registers,
  collect() {
    this.reset();
    for (const o of (statusSource?.cameras() ?? []) as StatusView[]) {
      const labels = { camera: nameOf(o), pool: nameOf(o, o.spec?.poolRef?.name) };
      for (const c of o.status?.conditions ?? [])
        this.set({ ...labels, condition: c.type ?? "", status: c.status ?? "", reason: c.reason ?? "" }, 1);
    }
  },
});
new Gauge({
  name: "vigil_pool_workers",
  help: "A DetectorPool's workers by phase (Starting, Ready, Unready, Lost), from its status",
  labelNames: ["pool", "phase"],
  registers,
  collect() {
    this.reset();
    for (const o of (statusSource?.pools() ?? []) as StatusView[]) {
      const pool = nameOf(o);
      for (const phase of WORKER_PHASES) this.set({ pool, phase }, 0);
      for (const w of o.status?.workers ?? []) if (w.phase) this.inc({ pool, phase: w.phase });
    }
  },
});
new Gauge({
  name: "vigil_pool_cameras",
  help: "A DetectorPool's cameras placed on a worker (assigned) or waiting for room (unassigned), from its status",
  labelNames: ["pool", "state"],
  registers,
  collect() {
    this.reset();
    for (const o of (statusSource?.pools() ?? []) as StatusView[]) {
      const pool = nameOf(o);
      this.set({ pool, state: "assigned" }, o.status?.assignedCameras ?? 0);
      this.set({ pool, state: "unassigned" }, o.status?.unassignedCameras ?? 0);
    }
  },
});
