// CameraDetection → finalizer, and status (Conditions, phase, worker) from the pool's placement decision.
// Status is written only when it changes, so a quiet cluster sees no writes from us.
import { isDeepStrictEqual } from "node:util";
import type { KubernetesObject } from "@kubernetes/client-node";
import {
  type CameraDetectionStatus,
  CONTROL_ACTOR_ANNOTATION,
  CONTROL_PAUSED_ANNOTATION,
  cameraDetectionSpec,
} from "../api/camera-detection.ts";
import type { Condition } from "../api/meta.ts";
import { cameraDetections } from "../api/resources.ts";
import { addFinalizer, applyCustomStatus, removeFinalizer } from "../kube/apply.ts";
import { isNotFound } from "../kube/client.ts";
import { type ConditionInput, findCondition, setConditions } from "../kube/conditions.ts";
import type { ReconcileResult } from "../kube/workqueue.ts";
import { type Context, FINALIZER, hasFinalizer, isDeleting, keyOf, type Placement, splitKey } from "./context.ts";
import { eventTarget } from "./pool-reconciler.ts";
import { createWebhookCheck, WEBHOOK_RECHECK_MS } from "./webhook-check.ts";

type Camera = KubernetesObject & {
  spec?: unknown;
  status?: CameraDetectionStatus;
};

// The cache can trail our own status write by a few events; within this window the status we wrote is the
// truth for the fields we own, so a stale cache neither re-sends them nor repeats their Events. The worker's
// fields always come from the cache. After the window, the cache wins again.
const OWN_WRITE_TRUST_MS = 10_000;

export function createCameraReconciler(ctx: Context) {
  const { caches, clients } = ctx;
  const webhooks = createWebhookCheck(clients.core);
  // Per uid as well as name: a camera created again under the same name starts with no status of ours.
  const written = new Map<string, { uid: string | undefined; owned: OwnedStatus; at: number }>();
  const currentStatus = (key: string, cam: Camera): CameraDetectionStatus => {
    const cached = cam.status ?? {};
    const own = written.get(key);
    if (!own || own.uid !== cam.metadata?.uid || Date.now() - own.at >= OWN_WRITE_TRUST_MS) {
      written.delete(key);
      return cached;
    }
    return { ...cached, ...own.owned, conditions: mergeConditions(cached.conditions, own.owned.conditions) };
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
      return void (await writeStatus(cam, { phase: "Pending", pool: poolName }, [
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
      // Paused and Resumed say who did it when the gateway did (the annotations its merge patch sets with
      // spec.paused); each is recorded once, on the transition.
      const paused = scheduled.reason === "Paused";
      const resumed = previous?.reason === "Paused" && !paused;
      if (paused) ctx.events.emit(eventTarget(cam), "Normal", "Paused", pauseMessage(cam, true));
      if (resumed) ctx.events.emit(eventTarget(cam), "Normal", "Resumed", pauseMessage(cam, false));
      // Waiting for a worker that starts is how every pool begins: no Event (the pool's WorkerLost and
      // WorkerUnschedulable say when a worker is missing). A worker that cannot be scheduled, a full pool or a bad
      // pool are Warnings.
      const warning = scheduled.status === "False";
      if (!paused && scheduled.reason !== "WorkerNotReady")
        ctx.events.emit(eventTarget(cam), warning ? "Warning" : "Normal", scheduled.reason, scheduled.message);
    }
    // Stream health is the worker's to report (its own field manager); until it does, the camera is not Ready.
    const streamHealthy =
      placement.worker === undefined ? undefined : findCondition(current.conditions, "StreamHealthy");
    const ready: ConditionInput =
      scheduled.status !== "True"
        ? { type: "Ready", status: "False", reason: scheduled.reason, message: scheduled.message }
        : streamHealthy?.status === "True"
          ? { type: "Ready", status: "True", reason: "Running", message: "frames are being processed" }
          : {
              type: "Ready",
              status: "False",
              reason: streamHealthy ? "StreamNotHealthy" : "AwaitingWorker",
              message: streamHealthy?.message ?? "no frames reported yet",
            };
    const phase: CameraDetectionStatus["phase"] =
      placement.worker === undefined
        ? placement.reason === "Paused"
          ? "Paused"
          : "Unschedulable"
        : streamHealthy?.status === "True"
          ? "Running"
          : streamHealthy?.status === "False"
            ? "Degraded"
            : "Scheduled";
    // The stream's transitions as Events too (Scheduled's have been recorded above).
    const wasReady = findCondition(current.conditions, "Ready");
    if (
      scheduled.status === "True" &&
      wasReady &&
      wasReady.status !== ready.status &&
      (ready.status === "True" || wasReady.status === "True")
    )
      ctx.events.emit(eventTarget(cam), ready.status === "True" ? "Normal" : "Warning", ready.reason, ready.message);
    // The alarm webhook's Secret: a camera whose Secret is missing or unusable says so (its alarms wait).
    const webhook = await webhooks.condition(namespace, parsed.data.alarm?.webhookSecretRef?.name);
    const wasWebhook = findCondition(current.conditions, "WebhookReady");
    if (
      webhook &&
      webhook.status === "False" &&
      (wasWebhook?.status !== "False" || wasWebhook.reason !== webhook.reason)
    )
      ctx.events.emit(eventTarget(cam), "Warning", webhook.reason, webhook.message);
    await writeStatus(
      cam,
      { phase, pool: poolName, worker: placement.worker },
      webhook ? [scheduled, ready, webhook] : [scheduled, ready],
      webhook ? [] : ["WebhookReady"],
    );
    // The operator does not watch Secrets: one not ready yet is looked at again.
    return webhook && webhook.status !== "True"
      ? { requeueAfterMs: ctx.config.webhookRecheckMs ?? WEBHOOK_RECHECK_MS }
      : undefined;

    async function writeStatus(
      c: Camera,
      fields: Omit<OwnedStatus, "conditions" | "observedGeneration">,
      conds: ConditionInput[],
      drop: string[] = [],
    ) {
      const prev = ownedPart(currentStatus(key, c));
      const owned: OwnedStatus = JSON.parse(
        JSON.stringify({
          ...fields,
          observedGeneration: generation,
          conditions: setConditions(
            prev.conditions,
            conds.map((x) => ({ ...x, observedGeneration: generation })),
            now,
          ).filter((x) => OWNED_CONDITIONS.includes(x.type) && !drop.includes(x.type)),
        }),
      );
      if (isDeepStrictEqual(owned, prev)) return;
      await applyCustomStatus(clients.custom, cameraDetections, namespace, name, owned).catch((err) => {
        if (!isNotFound(err)) throw err; // deleted under us: nothing left to report on
      });
      written.set(key, { uid: c.metadata?.uid, owned, at: Date.now() });
    }
  };
}

// The operator's part of a camera's status. StreamHealthy, fps, lastFrameTime and reconnects belong to the worker
// serving the camera; server-side apply with separate field managers keeps the two writers from clobbering.
const OWNED_CONDITIONS = ["Scheduled", "Ready", "WebhookReady"];
type OwnedStatus = Pick<CameraDetectionStatus, "observedGeneration" | "phase" | "pool" | "worker"> & {
  conditions: Condition[];
};

function ownedPart(s: CameraDetectionStatus): OwnedStatus {
  return JSON.parse(
    JSON.stringify({
      phase: s.phase,
      pool: s.pool,
      worker: s.worker,
      observedGeneration: s.observedGeneration,
      conditions: (s.conditions ?? []).filter((x) => OWNED_CONDITIONS.includes(x.type)),
    }),
  );
}

function mergeConditions(all: Condition[] | undefined, ours: Condition[]): Condition[] {
  return [...(all ?? []).filter((x) => !OWNED_CONDITIONS.includes(x.type)), ...ours];
}

/**
 * A Paused or Resumed Event's message: who set spec.paused, when it was the gateway (its annotations name the token
 * and the value it set, and still match spec.paused), else what happened.
 */
export function pauseMessage(cam: KubernetesObject & { spec?: unknown }, paused: boolean): string {
  const annotations = cam.metadata?.annotations ?? {};
  const actor = annotations[CONTROL_ACTOR_ANNOTATION];
  const byGateway = actor && annotations[CONTROL_PAUSED_ANNOTATION] === String(paused);
  if (byGateway) return `${paused ? "stopped" : "started"} through the gateway by token ${actor}`;
  return paused ? "camera is paused" : "camera is no longer paused";
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
