// The alarm message: what a worker publishes to the `vigil.alarms` topic exchange (or the embedded queue under
// `vigil up`) for a rule event at or above its camera's `alarm.minSeverity`. One zod schema, shared by the
// publisher (worker), the consumer (`vigil alarms`) and the tests. Versioned like the bus messages (`v`): a new
// optional field keeps `v`; removing or changing one bumps it, and the consumer dead-letters what it cannot read.
import { z } from "zod";
import { cameraIdSchema } from "../worker/publish/camera-id.ts";
import { eventMessage } from "../worker/publish/messages.ts";

export const ALARM_MESSAGE_VERSION = 1;

/** Exchange, queues and routing, declared the same way by every publisher and consumer (amqp-topology.ts). */
export const ALARM_TOPOLOGY = {
  exchange: "vigil.alarms",
  queue: "vigil.alarms",
  deadLetterExchange: "vigil.alarms.dlx",
  deadLetterQueue: "vigil.alarms.dead",
  /** Deliveries before RabbitMQ dead-letters a message (Debian's 3.10 has no default: unlimited). */
  deliveryLimit: 20,
} as const;

export const DELIVERY_TYPES = ["alarm.raised", "alarm.clip"] as const;
export type DeliveryType = (typeof DELIVERY_TYPES)[number];

export const alarmMessage = z.object({
  v: z.literal(ALARM_MESSAGE_VERSION),
  type: z.literal("alarm"),
  /** The event id (`<camera_id>:<rule>:<track>:<start ms>`): the alarm's identity in every step and table. */
  id: eventMessage.shape.id,
  camera_id: cameraIdSchema,
  rule: eventMessage.shape.rule,
  /** The rule's kind, or `assessment` for an alarm `vigil assessor` raised from a high-risk answer. */
  kind: z.enum([...eventMessage.shape.kind.options, "assessment"]),
  severity: eventMessage.shape.severity,
  track_id: eventMessage.shape.track_id,
  zone: eventMessage.shape.zone,
  box: eventMessage.shape.box,
  /** When the event happened (the frame's wall-clock time), RFC 3339 with milliseconds. */
  timestamp: z.iso.datetime({ offset: true }),
  detail: eventMessage.shape.detail,
  /** Clip-store key of the annotated JPEG of the event's frame; null when it could not be written. */
  snapshot_key: z.string().min(1).nullable(),
  /** Where the worker will put the replay clip, and the window it covers around `timestamp`. */
  clip: z.object({
    key: z.string().min(1),
    pre_seconds: z.number().min(0).max(120),
    post_seconds: z.number().min(0).max(120),
  }),
  /** The camera's `alarm.dedupWindowSeconds` and `alarm.webhookSecretRef.name`, as the worker saw them. */
  dedup_window_seconds: z.number().min(0).max(86400),
  webhook_secret: z.string().min(1).max(253).nullable(),
  /** An assessment alarm: the model's answer that raised it (assessor/messages.ts result). */
  assessment: z
    .object({
      result_id: z.string().min(1).max(600),
      risk: z.int().min(0).max(3),
      threshold: z.int().min(0).max(3),
      labels: z.array(z.string().max(64)).max(16),
      reason: z.string().max(2000),
      model: z.string().max(253),
    })
    .optional(),
});
export type AlarmMessage = z.infer<typeof alarmMessage>;

/** Topic routing key: `alarm.<namespace>.<name>` (bindings may select one namespace with `alarm.<ns>.#`). */
export function alarmRoutingKey(cameraId: string): string {
  const slash = cameraId.indexOf("/");
  return `alarm.${cameraId.slice(0, slash)}.${cameraId.slice(slash + 1)}`;
}

/** The dedup key of an alarm: the same (camera, rule, track) within the window is one alarm. */
export function dedupKey(m: Pick<AlarmMessage, "camera_id" | "rule" | "track_id">): string {
  return `${m.camera_id}|${m.rule}|${m.track_id}`;
}
