// Warnings about a camera's alarms where its owner looks: a Kubernetes Event on the CameraDetection (kubectl
// describe shows it), or, on a single host with no API, the log. Many alarms of one camera hit the same problem
// at once (every one of them waits on the same missing Secret), so one (camera, reason, message) is sent at most
// once a minute; the EventRecorder then folds repeats within 10 minutes into one Event's count.
import type { CustomObjectsApi } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { GROUP, VERSION } from "../operator/api/meta.ts";
import type { Clients } from "../operator/kube/client.ts";
import { EventRecorder, type EventTarget } from "../operator/kube/events.ts";
import { parseCameraId } from "../worker/publish/camera-id.ts";

export interface CameraEvents {
  /** A Warning about camera `cameraId` (`<ns>/<name>`); `message` never holds a secret (URLs included). */
  warn(cameraId: string, reason: string, message: string): void;
}

const THROTTLE_MS = 60_000;

function throttled(send: (cameraId: string, reason: string, message: string) => void): CameraEvents {
  const last = new Map<string, number>();
  return {
    warn(cameraId, reason, message) {
      const key = `${cameraId}|${reason}|${message}`;
      const now = Date.now();
      if (now - (last.get(key) ?? Number.NEGATIVE_INFINITY) < THROTTLE_MS) return;
      last.set(key, now);
      if (last.size > 10_000) last.delete(last.keys().next().value as string);
      send(cameraId, reason, message);
    },
  };
}

/** Events on the CameraDetection, with its uid when the camera can be read (kubectl describe matches on it). */
export function kubeCameraEvents(clients: Pick<Clients, "core" | "custom">, log: Logger): CameraEvents {
  const recorder = new EventRecorder(clients.core, "vigil-alarms", log);
  const uids = new Map<string, string>();
  const uidOf = async (custom: CustomObjectsApi, namespace: string, name: string) => {
    const key = `${namespace}/${name}`;
    if (!uids.has(key)) {
      const obj = (await custom
        .getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: "cameradetections", name })
        .catch(() => undefined)) as { metadata?: { uid?: string } } | undefined;
      if (obj?.metadata?.uid) uids.set(key, obj.metadata.uid);
    }
    return uids.get(key);
  };
  return throttled((cameraId, reason, message) => {
    const { namespace, name } = parseCameraId(cameraId);
    log.warn({ camera: cameraId, reason }, message);
    void uidOf(clients.custom, namespace, name).then((uid) => {
      const target: EventTarget = {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: "CameraDetection",
        metadata: { name, namespace, ...(uid ? { uid } : {}) },
      };
      recorder.emit(target, "Warning", reason, message);
    });
  });
}

/** A single host has no Events: the warning goes to the log, as rarely as Events would be sent. */
export function logCameraEvents(log: Logger): CameraEvents {
  return throttled((cameraId, reason, message) => log.warn({ camera: cameraId, reason }, message));
}
