// Starting and stopping cameras in a cluster (the gateway's POST /cameras/{id}/start and /stop): one JSON merge patch
// of the CameraDetection, spec.paused with the annotations naming who asked, under the gateway's own field manager.
// The operator does the rest: it frees or takes a worker slot, sets the phase, and records a Paused or Resumed Event
// naming the actor (the gateway may not create Events; its RBAC adds only `patch` on cameradetections).
import { type KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { CONTROL_ACTOR_ANNOTATION, CONTROL_PAUSED_ANNOTATION } from "../operator/api/camera-detection.ts";
import type { CameraControl } from "../operator/api/executor.ts";
import { GROUP, VERSION } from "../operator/api/meta.ts";
import { cameraDetections } from "../operator/api/resources.ts";
import { apiMessage, isNotFound, makeClients, statusCode } from "../operator/kube/client.ts";
import { parseCameraId } from "../worker/publish/camera-id.ts";

export const GATEWAY_FIELD_MANAGER = "vigil-gateway";

export function createKubeControl(kc: KubeConfig): CameraControl {
  const { custom } = makeClients(kc);
  const mergePatch = setHeaderOptions("Content-Type", PatchStrategy.MergePatch);
  return {
    async setPaused(cameraId, paused, actor) {
      const { namespace, name } = parseCameraId(cameraId);
      // Idempotent as a merge patch is: the same values again change nothing (no new generation, no Event).
      const body = {
        metadata: { annotations: { [CONTROL_ACTOR_ANNOTATION]: actor, [CONTROL_PAUSED_ANNOTATION]: String(paused) } },
        spec: { paused },
      };
      try {
        await custom.patchNamespacedCustomObject(
          {
            group: GROUP,
            version: VERSION,
            plural: cameraDetections.plural,
            namespace,
            name,
            body,
            fieldManager: GATEWAY_FIELD_MANAGER,
          },
          mergePatch,
        );
        return "done";
      } catch (err) {
        if (isNotFound(err)) return "not-found";
        // The gateway's RBAC lost `patch`, an admission webhook said no, the apiserver is away: the caller gets a 503
        // with the cause, not a 500 that reads like a bug in the gateway.
        const code = statusCode(err);
        return {
          refused:
            code === undefined
              ? `the Kubernetes API could not be reached: ${(err as Error).message}`
              : `the Kubernetes API answered ${code}: ${apiMessage(err)}`,
        };
      }
    },
  };
}
