import { describe, expect, it } from "vitest";
import { type DetectorPool, detectorPoolSpec } from "../../operator/api/detector-pool.ts";
import { workerStatefulSet, workerTolerations } from "../../operator/controllers/workload.ts";

const spec = (extra: Record<string, unknown> = {}) =>
  detectorPoolSpec.parse({ model: { uri: "file:///m.onnx" }, ...extra });
const notReady = (s: number) => ({
  key: "node.kubernetes.io/not-ready",
  operator: "Exists",
  effect: "NoExecute",
  tolerationSeconds: s,
});
const unreachable = (s: number) => ({
  key: "node.kubernetes.io/unreachable",
  operator: "Exists",
  effect: "NoExecute",
  tolerationSeconds: s,
});
const gpu = { key: "nvidia.com/gpu", operator: "Exists", effect: "NoSchedule" };

describe("workerTolerations", () => {
  it("a GPU pool (the default resources) tolerates the GPU taint, and dead nodes for the operator's default", () => {
    expect(workerTolerations(spec(), 30)).toEqual([notReady(30), unreachable(30), gpu]);
  });

  it("spec.failover.tolerationSeconds wins over the operator's default", () => {
    expect(workerTolerations(spec({ failover: { tolerationSeconds: 5 } }), 30)).toEqual([
      notReady(5),
      unreachable(5),
      gpu,
    ]);
  });

  it("a CPU pool does not tolerate the GPU taint", () => {
    expect(workerTolerations(spec({ resources: { requests: { cpu: "2" } } }), 30)).toEqual([
      notReady(30),
      unreachable(30),
    ]);
    expect(workerTolerations(spec({ resources: { requests: { "nvidia.com/gpu": 1 } } }), 30)).toContainEqual(gpu);
  });

  it("merges with spec.tolerations: the pool's own come first and win for the key and effect they name", () => {
    const own = [
      {
        key: "node.kubernetes.io/unreachable",
        operator: "Exists" as const,
        effect: "NoExecute" as const,
        tolerationSeconds: 600,
      },
      { key: "dedicated", operator: "Equal" as const, value: "vision", effect: "NoSchedule" as const },
    ];
    expect(workerTolerations(spec({ tolerations: own }), 30)).toEqual([...own, notReady(30), gpu]);
    // A toleration of every taint (no key, operator Exists) is not shortened by ours.
    const all = [{ operator: "Exists" as const }];
    expect(workerTolerations(spec({ tolerations: all }), 30)).toEqual(all);
  });

  it("lands in the worker pod template", () => {
    const pool = {
      apiVersion: "vigil.dev/v1alpha1",
      kind: "DetectorPool",
      metadata: { name: "p", namespace: "ns", uid: "u" },
      spec: spec({ failover: { tolerationSeconds: 12 } }),
    } as DetectorPool;
    const sts = workerStatefulSet(pool, { image: "i", replicas: 1, serviceAccountName: "sa", workerEnvSecret: "e" });
    expect(sts.spec.template.spec.tolerations).toEqual([notReady(12), unreachable(12), gpu]);
  });
});
