// The operator's status gauges (operator/kube/metrics.ts observeStatus), read from cached objects at scrape time.
import type { KubernetesObject } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import { initReconcileMetrics, observeStatus, registry } from "../../operator/kube/metrics.ts";

const samples = async (name: string) =>
  (await registry.getSingleMetricAsString(name)).split("\n").filter((l) => l && !l.startsWith("#"));

const camera = (name: string, conditions: object[]) =>
  ({
    apiVersion: "vigil.dev/v1alpha1",
    kind: "CameraDetection",
    metadata: { namespace: "shop", name },
    spec: { poolRef: { name: "p" } },
    status: { conditions },
  }) as KubernetesObject;
const pool = {
  apiVersion: "vigil.dev/v1alpha1",
  kind: "DetectorPool",
  metadata: { namespace: "shop", name: "p" },
  status: {
    assignedCameras: 3,
    unassignedCameras: 2,
    workers: [
      { name: "p-worker-0", phase: "Ready" },
      { name: "p-worker-1", phase: "Ready" },
      { name: "p-worker-2", phase: "Lost" },
    ],
  },
} as KubernetesObject;

describe("operator status metrics", () => {
  it("reports each camera condition, each pool's workers by phase (all phases) and its cameras", async () => {
    let cameras = [
      camera("door", [{ type: "Scheduled", status: "True", reason: "Assigned" }]),
      camera("yard", [{ type: "Scheduled", status: "False", reason: "WorkerUnschedulable" }]),
    ];
    observeStatus({ cameras: () => cameras, pools: () => [pool] });
    expect(await samples("vigil_camera_condition")).toEqual([
      'vigil_camera_condition{camera="shop/door",pool="shop/p",condition="Scheduled",status="True",reason="Assigned"} 1',
      'vigil_camera_condition{camera="shop/yard",pool="shop/p",condition="Scheduled",status="False",reason="WorkerUnschedulable"} 1',
    ]);
    expect(await samples("vigil_pool_workers")).toEqual([
      'vigil_pool_workers{pool="shop/p",phase="Starting"} 0',
      'vigil_pool_workers{pool="shop/p",phase="Ready"} 2',
      'vigil_pool_workers{pool="shop/p",phase="Unready"} 0',
      'vigil_pool_workers{pool="shop/p",phase="Lost"} 1',
      'vigil_pool_workers{pool="shop/p",phase="Unschedulable"} 0',
    ]);
    expect(await samples("vigil_pool_cameras")).toEqual([
      'vigil_pool_cameras{pool="shop/p",state="assigned"} 3',
      'vigil_pool_cameras{pool="shop/p",state="unassigned"} 2',
    ]);
    // A deleted camera leaves no series behind.
    cameras = cameras.slice(0, 1);
    expect(await samples("vigil_camera_condition")).toHaveLength(1);
  });

  it("reports nothing without caches (a standby replica)", async () => {
    observeStatus({ cameras: () => [], pools: () => [] });
    expect(await samples("vigil_camera_condition")).toEqual([]);
    expect(await samples("vigil_pool_workers")).toEqual([]);
  });

  it("starts a controller's reconcile counters at 0, every result", async () => {
    initReconcileMetrics("unit-test");
    const mine = (l: string[]) => l.filter((s) => s.includes('controller="unit-test"'));
    expect(mine(await samples("controller_runtime_reconcile_errors_total"))).toEqual([
      'controller_runtime_reconcile_errors_total{controller="unit-test"} 0',
    ]);
    expect(mine(await samples("controller_runtime_reconcile_total")).map((s) => /result="(\w+)"/.exec(s)?.[1])).toEqual(
      ["success", "error", "requeue", "requeue_after"],
    );
  });
});
