// What the gateway shows of an alarm record (REST, the live streams, the dashboard): the record as stored, its
// event time in RFC 3339, a delivery state per webhook type, and the paths of its snapshot and clip. zod schemas
// for the responses and the OpenAPI document; the mapping is pure.
import { z } from "zod";
import { DELIVERY_TYPES } from "../alarms/messages.ts";
import { ALARM_STATUSES, type AlarmRecord, type DeliveryAttempt } from "../alarms/records.ts";

const deliveryState = z
  .enum(["delivered", "pending", "failed"])
  .describe(
    "delivered: the receiver answered 2xx; pending: not yet (retrying, or waiting for the clip); failed: the alarm is dead",
  );

export const alarmView = z.object({
  id: z.string().describe("The event id, `<camera id>:<rule>:<track>:<start ms>`; URL-encoded in paths."),
  camera_id: z.string(),
  rule: z.string(),
  kind: z.string(),
  severity: z.enum(["info", "warning", "critical"]),
  track_id: z.number(),
  zone: z.string().nullable(),
  box: z.tuple([z.number(), z.number(), z.number(), z.number()]).nullable(),
  detail: z.string(),
  timestamp: z.string().describe("When the event happened, RFC 3339."),
  event_ms: z.number().describe("The same, ms since epoch: the list's order and its since/until."),
  received_ms: z.number(),
  snapshot_key: z.string().nullable(),
  clip_key: z.string(),
  pre_seconds: z.number(),
  post_seconds: z.number(),
  raised_delivered_ms: z.number().nullable(),
  clip_ready_ms: z.number().nullable(),
  clip_delivered_ms: z.number().nullable(),
  completed_ms: z.number().nullable(),
  status: z.enum(ALARM_STATUSES),
  dead_reason: z.string().nullable(),
  duplicates: z.number().describe("Later events of the same camera, rule and track folded into this alarm."),
  updated_ms: z.number(),
  delivery: z.object({ "alarm.raised": deliveryState, "alarm.clip": deliveryState }),
  links: z.object({
    self: z.string(),
    snapshot: z.string().nullable().describe("image/jpeg; null when the worker could not write one"),
    clip: z.string().describe("video/mp4 with range requests; 404 until the clip is ready"),
  }),
});
export type AlarmView = z.infer<typeof alarmView>;

export const deliveryAttemptView = z.object({
  id: z.number(),
  type: z.enum(DELIVERY_TYPES),
  webhook_id: z.string().describe("Stable across retries (Standard Webhooks): receivers deduplicate on it."),
  started_ms: z.number(),
  finished_ms: z.number().nullable().describe("Null while in flight, or when the service died during the POST."),
  status_code: z.number().nullable(),
  latency_ms: z.number().nullable(),
  error: z.string().nullable(),
});

export const alarmDetailView = alarmView.extend({
  attempts: z.array(deliveryAttemptView).describe("Every delivery attempt, oldest first."),
});

/** The path of an alarm under the API prefix (ids hold `/` and `:`: one encoded segment). */
export const alarmPath = (prefix: string, id: string) => `${prefix}/alarms/${encodeURIComponent(id)}`;

function state(r: AlarmRecord, deliveredMs: number | null): AlarmView["delivery"]["alarm.raised"] {
  if (deliveredMs !== null) return "delivered";
  return r.status === "dead" ? "failed" : "pending";
}

export function toAlarmView(r: AlarmRecord, prefix: string): AlarmView {
  const self = alarmPath(prefix, r.id);
  return {
    ...r,
    timestamp: new Date(r.event_ms).toISOString(),
    delivery: { "alarm.raised": state(r, r.raised_delivered_ms), "alarm.clip": state(r, r.clip_delivered_ms) },
    links: { self, snapshot: r.snapshot_key ? `${self}/snapshot` : null, clip: `${self}/clip` },
  };
}

export function toAttemptView(a: DeliveryAttempt): z.infer<typeof deliveryAttemptView> {
  const { alarm_id: _alarm, ...rest } = a;
  return rest;
}
