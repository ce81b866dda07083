// CameraDetection → finalizer, and status (Conditions, phase, worker) from the pool's placement decision.
// Status is written only when it changes, so a quiet cluster sees no writes from us.
import { isDeepStrictEqual } from "node:util";
import { type CameraDetectionStatus, cameraDetectionSpec } from "../api/camera-detection.ts";
import type { Condition } from "../api/meta.ts";
import { cameraDetections } from "../api/resources.ts";
import { addFinalizer, patchCustomStatus, removeFinalizer } from "../kube/apply.ts";
import { isNotFound } from "../kube/client.ts";
import { type ConditionInput, findCondition, setConditions } from "../kube/conditions.ts";
import type { ReconcileResult } from "../kube/workqueue.ts";
import { type Context, FINALIZER, hasFinalizer, isDeleting, keyOf, type Placement, splitKey } from "./context.ts";
import { eventTarget } from "./pool-reconciler.ts";

type Camera = import("@kubernetes/client-node").KubernetesObject & {
  spec?: unknown;
  status?: CameraDetectionStatus;
};

// The cache can trail our own status write by a few events; within this window the status we wrote is the
// truth, so a stale cache neither re-sends it nor repeats its Event. Later, the cache wins again.
const OWN_WRITE_TRUST_MS = 10_000;

export function createCameraReconciler(ctx: Context) {
  const { caches, clients } = ctx;
  const written = new Map<string, { status: CameraDetectionStatus; at: number }>();
  const currentStatus = (key: string, cam: Camera): CameraDetectionStatus => {
    const own = written.get(key);
    if (own && Date.now() - own.at < OWN_WRITE_TRUST_MS) return own.status;
    written.delete(key);
    return cam.status ?? {};
  };

  return async function reconcileCamera(key: string): Promise<ReconcileResult | undefined> {
    const cam = caches.cameras.get(key) as Camera | undefined;
    const { namespace, name } = splitKey(key);
    if (!cam) {
      ctx.placements.delete(key);
      written.delete(key);
      return;
    }
    const poolName = (cam.spec as { poolRef?: { name?: string } } | undefined)?.poolRef?.name ?? "";
    const poolKey = keyOf(namespace, poolName);

    if (isDeleting(cam)) {
      if (hasFinalizer(cam)) {
        ctx.enqueuePool(poolKey); // frees the slot
        await removeFinalizer(clients.custom, cam, FINALIZER).catch((err) => {
          if (!isNotFound(err)) throw err;
        });
        ctx.events.emit(eventTarget(cam), "Normal", "Released", `camera released from pool ${poolName}`);
      }
      ctx.placements.delete(key);
      return;
    }

    const now = new Date();
    const generation = cam.metadata?.generation;
    const parsed = cameraDetectionSpec.safeParse(cam.spec);
    if (!parsed.success) {
      const message = parsed.error.issues.map((i) => `spec.${i.path.join(".")}: ${i.message}`).join("; ");
      return void (await writeStatus(cam, { phase: "Pending" }, [
        { type: "Scheduled", status: "False", reason: "InvalidSpec", message },
        { type: "Ready", status: "False", reason: "InvalidSpec", message },
      ]));
    }
    if (!hasFinalizer(cam)) {
      await addFinalizer(clients.custom, cam, FINALIZER);
      return;
    }

    const placement = ctx.placements.get(key);
    if (!placement || placement.pool !== poolName) {
      ctx.enqueuePool(poolKey); // the pool reconciler decides, then enqueues us again
      return;
    }
    const scheduled = scheduledCondition(placement);
    const current = currentStatus(key, cam);
    const previous = findCondition(current.conditions, "Scheduled");
    if (
      previous?.status !== scheduled.status ||
      previous?.reason !== scheduled.reason ||
      previous?.message !== scheduled.message
    ) {
      const warning = scheduled.status === "False" && scheduled.reason !== "Paused";
      ctx.events.emit(eventTarget(cam), warning ? "Warning" : "Normal", scheduled.reason, scheduled.message);
    }
    // Stream health comes from the worker's reports; until one arrives it is Unknown.
    const streamHealthy: ConditionInput = findCondition(current.conditions, "StreamHealthy") ?? {
      type: "StreamHealthy",
      status: "Unknown",
      reason: "AwaitingWorker",
      message: "no frames reported yet",
    };
    const ready: ConditionInput =
      scheduled.status === "True" && streamHealthy.status === "True"
        ? { type: "Ready", status: "True", reason: "Running", message: "camera is processed" }
        : {
            type: "Ready",
            status: "False",
            reason: scheduled.status !== "True" ? scheduled.reason : "StreamNotHealthy",
            message: scheduled.status !== "True" ? scheduled.message : streamHealthy.message,
          };
    const phase: CameraDetectionStatus["phase"] =
      placement.worker === undefined
        ? placement.reason === "Paused"
          ? "Paused"
          : "Unschedulable"
        : streamHealthy.status === "True"
          ? "Running"
          : "Scheduled";
    await writeStatus(cam, { phase, pool: poolName, worker: placement.worker }, [
      scheduled,
      { ...streamHealthy, observedGeneration: generation },
      ready,
    ]);
    return;

    async function writeStatus(c: Camera, fields: Partial<CameraDetectionStatus>, conds: ConditionInput[]) {
      const prev = currentStatus(key, c);
      const status: CameraDetectionStatus = {
        ...prev,
        ...fields,
        observedGeneration: generation,
        conditions: setConditions(
          prev.conditions as Condition[] | undefined,
          conds.map((x) => ({ ...x, observedGeneration: generation })),
          now,
        ),
      };
      if (fields.worker === undefined) delete status.worker;
      const clean = JSON.parse(JSON.stringify(status));
      if (isDeepStrictEqual(clean, JSON.parse(JSON.stringify(prev)))) return;
      // Merge patch: keys we drop (worker) must be sent as null to be removed.
      await patchCustomStatus(clients.custom, cameraDetections.plural, namespace, name, {
        ...clean,
        worker: clean.worker ?? null,
      }).catch((err) => {
        if (!isNotFound(err)) throw err; // deleted under us: nothing left to report on
      });
      written.set(key, { status: clean, at: Date.now() });
    }
  };
}

function scheduledCondition(p: Placement): ConditionInput {
  if (p.worker !== undefined)
    return {
      type: "Scheduled",
      status: "True",
      reason: "Assigned",
      message: `assigned to worker ${p.worker} of pool ${p.pool}`,
    };
  return { type: "Scheduled", status: "False", reason: p.reason, message: p.message };
}
