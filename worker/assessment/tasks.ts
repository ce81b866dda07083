// Assessment tasks of a camera with spec.assessment (pure): which rule events become one, and the task message of
// an event or a periodic sample once its images are encoded. The message is checked against the schema the
// assessor reads (assessor/messages.ts) by the stage before it is published.
import {
  ASSESSMENT_MESSAGE_VERSION,
  type AssessmentTask,
  type AssessmentTrigger,
  type TaskImage,
} from "../../assessor/messages.ts";
import type { CameraDetectionSpec } from "../../operator/api/camera-detection.ts";
import { alarmDeliveryOf, isAlarm } from "../alarms.ts";
import type { Detections } from "../detections.ts";
import { parseCameraId } from "../publish/camera-id.ts";
import type { RuleEvent } from "../rules/engine.ts";

export type AssessedSpec = Pick<CameraDetectionSpec, "assessment" | "alarm">;

/**
 * Asked when the camera gives no prompt. The assessor adds the answer format (json: risk 0–3, labels, reason), so
 * this only says what to look for.
 */
export const DEFAULT_PROMPT =
  "These images come from a security camera: the first is the whole scene, the others are close-ups of the people " +
  "involved. Judge the risk to people and property: is anyone hurt, fallen, in a fight, threatening someone, " +
  "carrying a weapon, climbing or breaking in, or somewhere dangerous? 0 means normal activity, 1 unusual, " +
  "2 worrying, 3 an emergency.";

/** Whether this rule event of this camera is assessed: the camera has spec.assessment and names the rule (or none). */
export function assessesEvent(spec: AssessedSpec, e: Pick<RuleEvent, "rule">): boolean {
  const a = spec.assessment;
  return a !== undefined && (a.onEvents === undefined || a.onEvents.includes(e.rule));
}

/** `alarm` (scheduled first): an event at or above the camera's alarm.minSeverity, or critical without spec.alarm. */
export function priorityOf(spec: AssessedSpec, e: Pick<RuleEvent, "severity">): AssessmentTask["priority"] {
  const alarm = spec.alarm ? isAlarm(spec, e) : e.severity === "critical";
  return alarm ? "alarm" : "normal";
}

/** Per-class counts of a frame's detections ("person": 3); classes not seen are absent. */
export function countsOf(d: Detections, classNames: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < d.length; i++) {
    const name = classNames[d.classId[i] as number] ?? "unknown";
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

/** The id of a periodic sample: `<camera_id>:sample:<frame ms>`. */
export const sampleId = (cameraId: string, frameMs: number) => `${cameraId}:sample:${Math.round(frameMs)}`;
/** The alarm-id form (`<camera>:<rule>:<track>:<ms>`) a sample's snapshot and clip are stored under. */
export const sampleEvidenceId = (cameraId: string, frameMs: number) => `${cameraId}:sample:0:${Math.round(frameMs)}`;

/**
 * Whether an answer can raise an alarm on this camera: it has spec.alarm and an assessment threshold. Only then do
 * its tasks carry the alarm's delivery (and the worker keep a snapshot and a clip for them).
 */
export const mayRaiseAlarm = (spec: Pick<CameraDetectionSpec, "alarm" | "assessment">): boolean =>
  spec.alarm !== undefined && spec.assessment?.threshold !== undefined;

export type TaskBase = {
  cameraId: string;
  spec: AssessedSpec;
  images: TaskImage[];
  counts: Record<string, number>;
  /** Wall clock of the build (created_at); the deadline is this plus deadlineSeconds. */
  nowMs: number;
  deadlineSeconds: number;
};

function task(
  b: TaskBase,
  id: string,
  trigger: AssessmentTrigger,
  priority: AssessmentTask["priority"],
  zone: string | null,
  rule: string | null,
  alarm: AssessmentTask["alarm"],
): AssessmentTask {
  const a = b.spec.assessment;
  if (!a) throw new Error(`camera ${b.cameraId} has no spec.assessment`);
  return {
    v: ASSESSMENT_MESSAGE_VERSION,
    type: "assessment.task",
    id,
    camera_id: b.cameraId,
    pool: { namespace: parseCameraId(b.cameraId).namespace, name: a.poolRef.name },
    trigger,
    priority,
    prompt: a.prompt ?? DEFAULT_PROMPT,
    threshold: a.threshold ?? null,
    created_at: new Date(b.nowMs).toISOString(),
    deadline: new Date(b.nowMs + b.deadlineSeconds * 1000).toISOString(),
    context: { camera: b.cameraId, zone, rule, counts: b.counts },
    images: b.images,
    alarm,
  };
}

/**
 * The task of a rule event. `eventId` is the bus event's id (`<camera_id>:<rule>:<track>:<start ms>`), and
 * `snapshotKey` the snapshot its alarm wrote (null when the event was no alarm).
 */
export function eventTask(b: TaskBase, eventId: string, e: RuleEvent, snapshotKey: string | null): AssessmentTask {
  const trigger: AssessmentTrigger = {
    kind: "event",
    event_id: eventId,
    rule: e.rule,
    rule_kind: e.kind,
    severity: e.severity,
    track_id: e.trackId,
    zone: e.zone ?? null,
    detail: e.detail,
  };
  const alarm = mayRaiseAlarm(b.spec) && b.spec.alarm ? alarmDeliveryOf(b.spec.alarm, eventId, snapshotKey) : null;
  return task(b, eventId, trigger, priorityOf(b.spec, e), e.zone ?? null, e.rule, alarm);
}

/**
 * The task of a periodic sample of the frame at `frameMs`. Its alarm's object keys are those of an alarm id
 * `<camera_id>:sample:0:<ms>` (the clip store's key form needs a track), and it has no snapshot.
 */
export function sampleTask(b: TaskBase, frameMs: number, snapshotKey: string | null = null): AssessmentTask {
  const id = sampleId(b.cameraId, frameMs);
  const alarm =
    mayRaiseAlarm(b.spec) && b.spec.alarm
      ? alarmDeliveryOf(b.spec.alarm, sampleEvidenceId(b.cameraId, frameMs), snapshotKey)
      : null;
  return task(b, id, { kind: "sample" }, "normal", null, null, alarm);
}
