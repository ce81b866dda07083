// The assessment messages: what a worker publishes for a rule event (or a periodic sample) of a camera with
// spec.assessment, what `vigil assessor` publishes once the model answered, and their RabbitMQ and Redis names. One
// zod schema per message, shared by the publisher (worker), the assessor, the gateway and the tests. Versioned like
// the bus messages (`v`): a new optional field keeps `v`; removing or changing one bumps it, and a consumer
// dead-letters (the assessor) or drops with a metric (the gateway) what it cannot read.
import { z } from "zod";
import { alarmMessage } from "../alarms/messages.ts";
import { cameraIdSchema } from "../worker/publish/camera-id.ts";
import { eventMessage } from "../worker/publish/messages.ts";

export const ASSESSMENT_MESSAGE_VERSION = 1;

/**
 * RabbitMQ: exchange `vigil.assessment` (topic, durable).
 *   `task.<ns>.<name>`   → quorum queue vigil.assessment.tasks (manual ack, delivery limit, at-least-once DLX)
 *   `result.<ns>.<name>` → quorum queue vigil.assessment.results (a feed for other systems; bounded, oldest dropped)
 *   dead letters         → vigil.assessment.dlx (fanout) → quorum queue vigil.assessment.dead, reason in the
 *                          `x-vigil-reason` header.
 */
export const ASSESSMENT_TOPOLOGY = {
  exchange: "vigil.assessment",
  tasks: "vigil.assessment.tasks",
  results: "vigil.assessment.results",
  deadLetterExchange: "vigil.assessment.dlx",
  deadLetterQueue: "vigil.assessment.dead",
  /** Deliveries before RabbitMQ dead-letters a task (a task that crashes its consumer every time). */
  deliveryLimit: 10,
  /** Results kept for other consumers (x-max-length, drop-head): about an hour at 20 per second. */
  resultsMaxLength: 100_000,
  reasonHeader: "x-vigil-reason",
} as const;

/** Redis names the assessor writes and the gateway reads. */
export const ASSESSMENT_REDIS = {
  /** Hash: camera id → the latest result (JSON). */
  latest: "vigil:assessments:latest",
  /** List, newest first, capped at `recentMax`: every camera's results. */
  recent: "vigil:assessments:recent",
  /** List per camera, newest first, capped at `recentPerCameraMax`. */
  recentOf: (cameraId: string) => `vigil:assessments:recent:${cameraId}`,
  recentMax: 1000,
  recentPerCameraMax: 100,
  /** Pub/sub channel: each result (JSON) once it is stored. */
  channel: "vigil:assessments",
  /** String per task id, set once its result is published (expires after a day): a redelivered task is acked. */
  done: (taskId: string) => `vigil:assessment:done:${taskId}`,
  /** Key and scope state shared by the replicas (the key pool's edge) lives under this prefix. */
  poolPrefix: (namespace: string, pool: string) => `vigil:apool:${namespace}/${pool}:`,
  /** Cost ledger: hash per UTC day; fields `key:<fp>`, `scope:<s>`, `camera:<id>`, `model:<m>` → tokens. */
  ledger: (day: string) => `vigil:assessment:ledger:${day}`,
} as const;

export const RISK_LEVELS = [0, 1, 2, 3] as const;

/** The model's answer, as Vigil asks for it (the prompt says so) and validates it. */
export const modelAnswer = z.object({
  risk: z.int().min(0).max(3),
  labels: z.array(z.string().max(64)).max(16),
  reason: z.string().max(2000),
});
export type ModelAnswer = z.infer<typeof modelAnswer>;

const poolRef = z.object({ namespace: z.string().min(1).max(63), name: z.string().min(1).max(63) });

export const assessmentTrigger = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("event"),
    /** The bus event's id (`<camera_id>:<rule>:<track>:<start ms>`). */
    event_id: eventMessage.shape.id,
    rule: eventMessage.shape.rule,
    rule_kind: eventMessage.shape.kind,
    severity: eventMessage.shape.severity,
    track_id: eventMessage.shape.track_id,
    zone: eventMessage.shape.zone,
    detail: eventMessage.shape.detail,
  }),
  z.object({ kind: z.literal("sample") }),
]);
export type AssessmentTrigger = z.infer<typeof assessmentTrigger>;

export const taskImage = z.object({
  /** `frame`: the whole frame at low resolution; `crop`: one person or group, at source resolution (capped). */
  role: z.enum(["frame", "crop"]),
  jpeg_base64: z.string().min(1),
  width: z.int().min(1).max(8192),
  height: z.int().min(1).max(8192),
  /** A crop's box in source pixels (x1, y1, x2, y2). */
  box: eventMessage.shape.box.optional(),
});
export type TaskImage = z.infer<typeof taskImage>;

export const assessmentTask = z.object({
  v: z.literal(ASSESSMENT_MESSAGE_VERSION),
  type: z.literal("assessment.task"),
  /** The idempotency key: the event id for an event, `<camera_id>:sample:<ms>` for a sample. */
  id: z.string().min(1).max(600),
  camera_id: cameraIdSchema,
  pool: poolRef,
  trigger: assessmentTrigger,
  /** `alarm`: from a rule at or above the camera's alarm.minSeverity (or critical); scheduled first. */
  priority: z.enum(["alarm", "normal"]),
  prompt: z.string().min(1).max(4096),
  /** The camera's assessment.threshold; null: a result never raises an alarm. */
  threshold: z.int().min(0).max(3).nullable(),
  /** RFC 3339 with ms. */
  created_at: z.iso.datetime({ offset: true }),
  /** Not sent to the model after this: dropped and counted as stale. */
  deadline: z.iso.datetime({ offset: true }),
  context: z.object({
    camera: z.string(),
    zone: z.string().nullable(),
    rule: z.string().nullable(),
    /** Per-class counts in the frame ("person": 3). */
    counts: z.record(z.string(), z.int().min(0)),
  }),
  images: z.array(taskImage).min(1).max(9),
  /**
   * What an alarm raised from this task's result carries (the camera's spec.alarm as the worker saw it, the event's
   * snapshot and replay clip); null when the camera has no spec.alarm (then no alarm is raised).
   */
  alarm: alarmMessage
    .pick({ snapshot_key: true, clip: true, dedup_window_seconds: true, webhook_secret: true })
    .nullable(),
});
export type AssessmentTask = z.infer<typeof assessmentTask>;

export const assessmentResult = z.object({
  v: z.literal(ASSESSMENT_MESSAGE_VERSION),
  type: z.literal("assessment.result"),
  /** The task's id: consumers deduplicate on it. */
  id: assessmentTask.shape.id,
  camera_id: cameraIdSchema,
  pool: poolRef,
  trigger: assessmentTrigger,
  priority: assessmentTask.shape.priority,
  risk: modelAnswer.shape.risk,
  labels: modelAnswer.shape.labels,
  reason: modelAnswer.shape.reason,
  model: z.string(),
  /** The key that answered, by fingerprint, and its quota scope. */
  key_fingerprint: z.string(),
  scope: z.string(),
  usage: z.object({
    prompt_tokens: z.int().min(0),
    completion_tokens: z.int().min(0),
    total_tokens: z.int().min(0),
  }),
  /** Calls made for this task (1 when the first answered). */
  attempts: z.int().min(1),
  created_at: assessmentTask.shape.created_at,
  completed_at: z.iso.datetime({ offset: true }),
  /** completed_at − created_at. */
  latency_ms: z.number().min(0),
  /** The alarm this result raised (its id), or null. */
  alarm_id: z.string().nullable(),
});
export type AssessmentResult = z.infer<typeof assessmentResult>;

/** Topic routing keys: `task.<namespace>.<name>`, `result.<namespace>.<name>`. */
export function taskRoutingKey(cameraId: string): string {
  return `task.${cameraId.replace("/", ".")}`;
}
export function resultRoutingKey(cameraId: string): string {
  return `result.${cameraId.replace("/", ".")}`;
}
