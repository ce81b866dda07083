// Starting and stopping cameras in a cluster (the gateway's POST /cameras/{id}/start and /stop): one JSON merge patch
// of the CameraDetection, spec.paused with the annotations naming who asked, under the gateway's own field manager.
// The operator does the rest: it frees or takes a worker slot, sets the phase, and records a Paused or Resumed Event
// naming the actor (the gateway may not create Events; its RBAC adds only `patch` on cameradetections).
import { type KubeConfig, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import { CONTROL_ACTOR_ANNOTATION, CONTROL_PAUSED_ANNOTATION } from "../operator/api/camera-detection.ts";
import type { CameraControl } from "../operator/api/executor.ts";
import { GROUP, VERSION } from "../operator/api/meta.ts";
import { cameraDetections } from "../operator/api/resources.ts";
import { isNotFound, makeClients } from "../operator/kube/client.ts";
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
        throw err;
      }
    },
  };
}
