// DetectorPool: a model and the GPU workers that run it; cameras point at a pool.
// This schema is the single source of the TS type, runtime validation and crds/vigil.dev_detectorpools.yaml.
import { z } from "zod";
import { conditions, dnsLabel, objectMeta } from "./meta.ts";

/** A Kubernetes quantity ("500m", "2Gi", 1): the one union structural schemas allow. */
const quantity = z
  .union([z.int(), z.string().max(64)])
  .meta({ "x-kubernetes-int-or-string": true })
  .describe("Kubernetes quantity.");

const resourceList = z.record(z.string().max(253), quantity);

export const model = z
  .object({
    uri: z
      .string()
      .min(1)
      .max(2048)
      .regex(/^(file|https?):\/\//, "model.uri must start with file:// or http(s)://")
      .describe(
        "Where the ONNX file is: file:// (a path in the worker image or a mounted volume) or http(s):// (downloaded into the worker's model volume, checked against sha256).",
      ),
    sha256: z
      .string()
      .regex(/^[a-f0-9]{64}$/, "model.sha256 must be 64 lower-case hex digits")
      .optional()
      .describe("Checked before the worker loads the model."),
    // No defaults: when omitted the worker reads both from the model; when given, it checks the model against them.
    format: z
      .enum(["yolov5", "yolov8", "yolov11"])
      .optional()
      .describe("Output head layout; read from the output shape when omitted, checked when given."),
    inputSize: z
      .int()
      .min(32)
      .max(4096)
      .multipleOf(32)
      .optional()
      .describe("Square input side in pixels; read from the model when omitted, checked when given."),
    // Rect inference, as Ultralytics' rect mode or DeepStream's 960×544 networks: a 16:9 camera letterboxed into
    // 640×384 instead of 640×640 wastes 40 % fewer pixels on grey bars, and the model's time falls with them.
    inputWidth: z
      .int()
      .min(32)
      .max(4096)
      .multipleOf(32)
      .optional()
      .describe(
        "With inputHeight: frames are letterboxed to inputWidth × inputHeight instead of the model's square; a square YOLOv8/v11 export is rewritten for it at load. 640 × 384 suits 16:9 cameras, 640 × 480 suits 4:3.",
      ),
    inputHeight: z
      .int()
      .min(32)
      .max(4096)
      .multipleOf(32)
      .optional()
      .describe("With inputWidth: the height frames are letterboxed to."),
    classNames: z
      .array(z.string().min(1).max(63))
      .min(1)
      .max(1000)
      .optional()
      .describe("Class names by index; COCO's 80 when omitted."),
    maxBatch: z
      .int()
      .min(1)
      .max(64)
      .default(8)
      .describe(
        "Most frames (from different cameras) per model run when the model has a dynamic batch axis; 1 runs them one by one.",
      ),
    maxBatchDelayMs: z
      .int()
      .min(0)
      .max(1000)
      .default(0)
      .describe(
        "How long a model run may wait for a full batch after its oldest frame arrived (Triton's max_queue_delay); 0 runs at once. A GPU finishes a frame before the next camera's arrives, so batches fill only with a window.",
      ),
    instances: z
      .int()
      .min(1)
      .max(16)
      .default(1)
      .describe(
        "Sessions of the model per worker that run frames at once, the pool's threads shared out among them (Triton's instance_group count). On a CPU with many cameras, 2 instances of 1 thread each carry more frames per second than 1 of 2 threads; 1 camera gets each frame sooner from 1.",
      ),
    credentialsSecretRef: z
      .object({ name: dnsLabel.describe("Secret with the model server's credentials.") })
      .optional()
      .describe(
        "Secret for downloading an http(s) model: key `token` (sent as a Bearer token), or keys `username` and `password` (Basic). Passed to workers as secretKeyRef variables, never written into the StatefulSet.",
      ),
  })
  .meta({
    "x-kubernetes-validations": [
      {
        rule: "has(self.inputWidth) == has(self.inputHeight)",
        message: "model.inputWidth and model.inputHeight are given together",
        fieldPath: ".inputWidth",
      },
      {
        // As source.url: a password inside the URL would be copied in clear text into the worker StatefulSet.
        rule: "!self.uri.matches('^[a-zA-Z][a-zA-Z0-9+.-]*://[^/@]*@')",
        message: "model.uri must not carry credentials; reference a Secret in model.credentialsSecretRef",
        fieldPath: ".uri",
      },
    ],
  });

export const toleration = z.object({
  key: z.string().max(316).optional(),
  operator: z.enum(["Exists", "Equal"]).optional(),
  value: z.string().max(63).optional(),
  effect: z.enum(["NoSchedule", "PreferNoSchedule", "NoExecute"]).optional(),
  tolerationSeconds: z.int().optional(),
});

export const detectorPoolSpec = z
  .object({
    model,
    camerasPerWorker: z.int().min(1).max(256).default(8).describe("Cameras one worker serves."),
    minWorkers: z.int().min(0).max(1000).default(0),
    maxWorkers: z.int().min(1).max(1000).default(4).describe("Caps the GPUs the pool may take."),
    executionProviders: z
      .array(z.enum(["tensorrt", "cuda", "cpu"]))
      .min(1)
      .max(3)
      .default(["cuda", "cpu"])
      .describe("onnxruntime execution providers in order of preference."),
    resources: z
      .object({ limits: resourceList.optional(), requests: resourceList.optional() })
      .default({ limits: { "nvidia.com/gpu": 1 } })
      .describe("Worker container resources, e.g. nvidia.com/gpu: 1."),
    nodeSelector: z.record(z.string().max(316), z.string().max(63)).optional(),
    tolerations: z.array(toleration).max(32).optional(),
    image: z.string().min(1).max(512).optional().describe("Worker image; the operator's default when omitted."),
    failover: z
      .object({
        tolerationSeconds: z
          .int()
          .min(0)
          .max(86_400)
          .optional()
          .describe(
            "How long a worker pod stays bound to a node that is not-ready or unreachable before Kubernetes evicts it (its NoExecute tolerations); the operator's VIGIL_WORKER_TOLERATION_SECONDS (30) when omitted. Kubernetes' own default is 300.",
          ),
      })
      .optional()
      .describe(
        "How fast a lost worker is replaced. Its cameras move within seconds anyway (the worker's Lease); this bounds how long its GPU stays taken on a dead node.",
      ),
  })
  .meta({
    "x-kubernetes-validations": [
      {
        rule: "self.minWorkers <= self.maxWorkers",
        message: "minWorkers must not exceed maxWorkers",
        fieldPath: ".minWorkers",
      },
    ],
  });
export type DetectorPoolSpec = z.infer<typeof detectorPoolSpec>;

/**
 * From the worker's Lease (operator/controllers/worker-health.ts). Starting: its Lease was never renewed; Ready: its
 * Lease is live, so it takes cameras; Lost: its Lease expired or was released, its cameras move elsewhere;
 * Unschedulable: its pod waits for a node (no free GPU). Unready: a local worker of `vigil up` restarting
 * (single/catalog.ts), and what operators before the Lease wrote; the operator reads it like Lost.
 */
export const WORKER_PHASES = ["Starting", "Ready", "Unready", "Lost", "Unschedulable"] as const;
export type WorkerPhase = (typeof WORKER_PHASES)[number];

export const workerStatus = z.object({
  name: z.string(),
  phase: z.enum(WORKER_PHASES),
  cameras: z.int().min(0),
  since: z.string().describe("When the worker entered this phase."),
  message: z.string().max(1024).optional().describe("Why, when Unschedulable: the scheduler's message."),
});
export type WorkerStatus = z.infer<typeof workerStatus>;

export const detectorPoolStatus = z.object({
  observedGeneration: z.int().min(0).optional(),
  replicas: z.int().min(0).optional(),
  readyWorkers: z.int().min(0).optional(),
  capacity: z.int().min(0).optional().describe("Cameras the pool can take at maxWorkers."),
  assignedCameras: z.int().min(0).optional(),
  unassignedCameras: z.int().min(0).optional(),
  workers: z
    .array(workerStatus)
    .max(1000)
    .optional()
    .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] }),
  conditions: conditions.optional(),
});
export type DetectorPoolStatus = z.infer<typeof detectorPoolStatus>;

export const detectorPool = z.object({
  apiVersion: z.string(),
  kind: z.literal("DetectorPool"),
  metadata: objectMeta,
  spec: detectorPoolSpec,
  status: detectorPoolStatus.optional(),
});
export type DetectorPool = z.infer<typeof detectorPool>;
