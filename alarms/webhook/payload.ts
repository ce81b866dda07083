// The webhook bodies, Standard Webhooks style `{ type, timestamp, data }`: `alarm.raised` at once, with the
// snapshot; `alarm.clip` when the replay clip is ready. The zod schemas are exported because the body crosses a
// process boundary: receivers and tests validate with them. Additive changes only (receivers ignore unknown
// fields, zod strips them); a breaking one gets a new type name.
//
// Media are named by clip-store key and by a path on Vigil's gateway (`/api/v1/alarms/<id>/snapshot`), not by an
// absolute URL: only the deployment knows the address its receivers reach the gateway at.
import { z } from "zod";
import { cameraIdSchema, parseCameraId } from "../../worker/publish/camera-id.ts";
import { type AlarmMessage, alarmMessage } from "../messages.ts";

const time = z.iso.datetime({ offset: true });

/** The gateway route of an alarm's snapshot or clip (the alarm id is one path segment, encoded). */
export const alarmMediaPath = (alarmId: string, what: "snapshot" | "clip") =>
  `/api/v1/alarms/${encodeURIComponent(alarmId)}/${what}`;

const mediaPath = (what: "snapshot" | "clip") =>
  z.string().regex(new RegExp(`^/api/v1/alarms/[^/]+/${what}$`), `must be /api/v1/alarms/<encoded alarm id>/${what}`);

export const alarmData = z.object({
  id: alarmMessage.shape.id,
  camera: z.object({ id: cameraIdSchema, namespace: z.string().min(1), name: z.string().min(1) }),
  rule: alarmMessage.shape.rule,
  kind: alarmMessage.shape.kind,
  severity: alarmMessage.shape.severity,
  track_id: alarmMessage.shape.track_id,
  zone: alarmMessage.shape.zone,
  box: alarmMessage.shape.box,
  /** When the event happened (the frame's wall-clock time). */
  event_time: time,
  detail: alarmMessage.shape.detail,
  /** The annotated JPEG of the event's frame; null when the worker could not write it. */
  snapshot: z.object({ key: z.string().min(1), path: mediaPath("snapshot") }).nullable(),
  /** Only on an alarm of kind `assessment`: the model's answer that raised it (risk 0–3, labels, reason). */
  assessment: alarmMessage.shape.assessment,
});

export const alarmRaisedPayload = z.object({
  type: z.literal("alarm.raised"),
  /** The event's time. */
  timestamp: time,
  data: alarmData,
});

export const alarmClipPayload = z.object({
  type: z.literal("alarm.clip"),
  /** When the clip became ready. */
  timestamp: time,
  data: alarmData.extend({
    clip: z.object({
      key: z.string().min(1),
      path: mediaPath("clip"),
      /** The clip's first frame (it may start up to one keyframe interval before event time − preSeconds). */
      start: time,
      duration_seconds: z.number().positive(),
    }),
  }),
});

/** Either body, told apart by `type`: what a receiver validates. */
export const webhookPayload = z.discriminatedUnion("type", [alarmRaisedPayload, alarmClipPayload]);
export type AlarmRaisedPayload = z.infer<typeof alarmRaisedPayload>;
export type AlarmClipPayload = z.infer<typeof alarmClipPayload>;
export type WebhookPayload = z.infer<typeof webhookPayload>;

function data(m: AlarmMessage): z.infer<typeof alarmData> {
  const { namespace, name } = parseCameraId(m.camera_id);
  return {
    id: m.id,
    camera: { id: m.camera_id, namespace, name },
    rule: m.rule,
    kind: m.kind,
    severity: m.severity,
    track_id: m.track_id,
    zone: m.zone,
    box: m.box,
    event_time: m.timestamp,
    detail: m.detail,
    snapshot: m.snapshot_key ? { key: m.snapshot_key, path: alarmMediaPath(m.id, "snapshot") } : null,
    // Absent, not null, on a rule's alarm: the body a receiver got before assessments stays the same.
    ...(m.assessment ? { assessment: m.assessment } : {}),
  };
}

export function raisedPayload(m: AlarmMessage): AlarmRaisedPayload {
  return { type: "alarm.raised", timestamp: m.timestamp, data: data(m) };
}

/**
 * `clip` is what was cut: its first frame and its duration (ffprobe's). Where they are not known, the nominal
 * window (event time − preSeconds, preSeconds + postSeconds) is the honest lower bound.
 */
export function clipPayload(
  m: AlarmMessage,
  clip: { readyMs: number; startMs: number; durationSeconds: number },
): AlarmClipPayload {
  return {
    type: "alarm.clip",
    timestamp: new Date(clip.readyMs).toISOString(),
    data: {
      ...data(m),
      clip: {
        key: m.clip.key,
        path: alarmMediaPath(m.id, "clip"),
        start: new Date(clip.startMs).toISOString(),
        duration_seconds: clip.durationSeconds,
      },
    },
  };
}
