import { describe, expect, it } from "vitest";
import { detectorPool } from "../../operator/api/detector-pool.ts";
import { workerEnv } from "../../operator/api/worker-env.ts";
import { CLIP_DIR, workerStatefulSet } from "../../operator/controllers/workload.ts";

const pool = detectorPool.parse({
  apiVersion: "vigil.dev/v1alpha1",
  kind: "DetectorPool",
  metadata: { name: "gpu", namespace: "site-a", uid: "u1" },
  spec: { model: { uri: "https://models.example/yolov8n.onnx" } },
});
const base = { image: "vigil:1", replicas: 1, serviceAccountName: "vigil-worker", workerEnvSecret: "vigil-worker-env" };
const podOf = (s: ReturnType<typeof workerStatefulSet>) => s.spec.template.spec;

describe("worker StatefulSet: alarms", () => {
  it("without the options, has no broker URL, clip volume or clip variables", () => {
    const pod = podOf(workerStatefulSet(pool, base));
    const c = pod.containers[0]!;
    expect(c.env.map((e) => e.name)).not.toContain("RABBITMQ_URL");
    expect(c.env.map((e) => e.name)).not.toContain("VIGIL_CLIP_DIR");
    expect(pod.volumes.map((v) => v.name)).toEqual(["model-cache", "tmp"]);
  });

  it("takes RABBITMQ_URL from the Secret's key (never a value), optional so detection runs without it", () => {
    const c = podOf(workerStatefulSet(pool, { ...base, rabbitmqSecret: { name: "vigil-rabbitmq", key: "url" } }))
      .containers[0]!;
    const url = c.env.find((e) => e.name === "RABBITMQ_URL");
    expect(url).toEqual({
      name: "RABBITMQ_URL",
      valueFrom: { secretKeyRef: { name: "vigil-rabbitmq", key: "url", optional: true } },
    });
  });

  it("takes REDIS_URL from the Secret's key when given one, optional, never a value", () => {
    const c = podOf(workerStatefulSet(pool, { ...base, redisSecret: { name: "vigil-redis", key: "url" } }))
      .containers[0]!;
    expect(c.env.filter((e) => e.name === "REDIS_URL")).toEqual([
      { name: "REDIS_URL", valueFrom: { secretKeyRef: { name: "vigil-redis", key: "url", optional: true } } },
    ]);
    expect(podOf(workerStatefulSet(pool, base)).containers[0]!.env.map((e) => e.name)).not.toContain("REDIS_URL");
  });

  it("mounts the clip claim at the clip dir and the scratch on an emptyDir; the root stays read-only", () => {
    const pod = podOf(workerStatefulSet(pool, { ...base, clipClaim: "vigil-clips" }));
    const c = pod.containers[0]!;
    const env = Object.fromEntries(c.env.map((e) => [e.name, "value" in e ? e.value : undefined]));
    expect(env.VIGIL_CLIP_DIR).toBe(CLIP_DIR);
    expect(CLIP_DIR).toBe("/var/lib/vigil/clips");
    const scratch = env.VIGIL_CLIP_SCRATCH_DIR;
    expect(scratch).toBeTruthy();
    expect(c.volumeMounts).toContainEqual({ name: "clips", mountPath: CLIP_DIR });
    expect(c.volumeMounts).toContainEqual({ name: "clip-scratch", mountPath: scratch });
    expect(pod.volumes).toContainEqual({ name: "clips", persistentVolumeClaim: { claimName: "vigil-clips" } });
    expect(pod.volumes.find((v) => v.name === "clip-scratch")).toMatchObject({ emptyDir: {} });
    expect(c.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    // The worker accepts what the pod sets.
    const parsed = workerEnv.parse({ ...env, RABBITMQ_URL: "amqp://u:p@rabbitmq:5672" });
    expect(parsed.VIGIL_CLIP_DIR).toBe(CLIP_DIR);
    expect(parsed.VIGIL_ALARM_OUTBOX_MAX).toBe(10_000);
  });

  it("changes the pod template (and so its hash) only when an alarm option is set", () => {
    const hash = (s: ReturnType<typeof workerStatefulSet>) => s.metadata.annotations["vigil.dev/spec-hash"];
    expect(hash(workerStatefulSet(pool, base))).toBe(hash(workerStatefulSet(pool, { ...base })));
    expect(hash(workerStatefulSet(pool, { ...base, clipClaim: "c" }))).not.toBe(hash(workerStatefulSet(pool, base)));
  });
});
