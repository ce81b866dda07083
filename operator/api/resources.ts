// The custom resources Vigil serves, with what the CRD needs beyond their schemas.
import type { z } from "zod";
import { assessmentPoolSpec, assessmentPoolStatus } from "./assessment-pool.ts";
import { cameraDetectionSpec, cameraDetectionStatus } from "./camera-detection.ts";
import { detectorPoolSpec, detectorPoolStatus } from "./detector-pool.ts";
import { GROUP, VERSION } from "./meta.ts";

export type PrinterColumn = { name: string; type: string; jsonPath: string; description?: string; priority?: number };

export type ResourceDef = {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  spec: z.ZodType;
  status: z.ZodType;
  printerColumns: PrinterColumn[];
  /** CEL rules on the whole object, the only place that can see metadata.name. */
  rootValidations?: { rule: string; message: string }[];
};

export const cameraDetections: ResourceDef = {
  kind: "CameraDetection",
  plural: "cameradetections",
  singular: "cameradetection",
  shortNames: ["cam"],
  spec: cameraDetectionSpec,
  status: cameraDetectionStatus,
  printerColumns: [
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    { name: "Pool", type: "string", jsonPath: ".spec.poolRef.name" },
    { name: "Worker", type: "string", jsonPath: ".status.worker" },
    { name: "FPS", type: "number", jsonPath: ".status.fps" },
    { name: "Last Frame", type: "date", jsonPath: ".status.lastFrameTime", description: "Age of the last frame" },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
};

export const detectorPools: ResourceDef = {
  kind: "DetectorPool",
  plural: "detectorpools",
  singular: "detectorpool",
  shortNames: ["pool"],
  spec: detectorPoolSpec,
  status: detectorPoolStatus,
  rootValidations: [
    {
      rule: "self.metadata.name.size() <= 48",
      message: "DetectorPool name must be at most 48 characters: its worker pods are named <pool>-worker-<n>",
    },
  ],
  printerColumns: [
    { name: "Format", type: "string", jsonPath: ".spec.model.format" },
    { name: "Replicas", type: "integer", jsonPath: ".status.replicas" },
    { name: "Ready", type: "integer", jsonPath: ".status.readyWorkers" },
    { name: "Cameras", type: "integer", jsonPath: ".status.assignedCameras" },
    { name: "Capacity", type: "integer", jsonPath: ".status.capacity" },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
};

export const assessmentPools: ResourceDef = {
  kind: "AssessmentPool",
  plural: "assessmentpools",
  singular: "assessmentpool",
  shortNames: ["apool"],
  spec: assessmentPoolSpec,
  status: assessmentPoolStatus,
  printerColumns: [
    { name: "Model", type: "string", jsonPath: ".spec.provider.model" },
    { name: "Strategy", type: "string", jsonPath: ".spec.strategy" },
    { name: "Keys", type: "integer", jsonPath: ".status.keyCount" },
    {
      name: "Available",
      type: "integer",
      jsonPath: ".status.availableKeys",
      description: "Keys not cooling or disabled",
    },
    { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
    { name: "Queue", type: "integer", jsonPath: ".status.queueDepth", priority: 1 },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
};

export const RESOURCES = [cameraDetections, detectorPools, assessmentPools];

/** Path of a resource collection for raw API calls: /apis/vigil.dev/v1alpha1/namespaces/ns/plural. */
export const collectionPath = (def: ResourceDef, namespace?: string) =>
  `/apis/${GROUP}/${VERSION}${namespace ? `/namespaces/${namespace}` : ""}/${def.plural}`;
