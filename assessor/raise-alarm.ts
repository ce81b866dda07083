// The alarm a high-risk answer raises (pure): a result at or above its camera's `assessment.threshold`, on a camera
// with spec.alarm, becomes an alarm message for the alarm pipeline, with the model's answer attached. The id is the
// task's plus `:assessment`, and the rule `assessment:<rule>` (`assessment:sample` for a periodic sample): the
// alarm service's dedup key is (camera, rule, track), so the answer is an alarm of its own beside the rule's, and a
// redelivered result (the same task id) is the same alarm. Snapshot, clip, dedup window and webhook are the
// event's, as the worker put them in the task (task.alarm).
import { createHash } from "node:crypto";
import type { AlarmMessage } from "../alarms/messages.ts";
import { MAX_ALARM_ID } from "../alarms/records-core.ts";
import type { AssessmentResult, AssessmentTask } from "./messages.ts";

export const ASSESSMENT_ALARM_SUFFIX = ":assessment";

/**
 * The alarm id of a task: `<task id>:assessment`. A task id may be up to 600 characters and the records hold 400
 * (alarms/migrations/mysql/001_init.sql): a longer one keeps its start and a hash of the whole, still unique and
 * the same on every replica and redelivery.
 */
export function assessmentAlarmId(taskId: string): string {
  const id = `${taskId}${ASSESSMENT_ALARM_SUFFIX}`;
  if (id.length <= MAX_ALARM_ID) return id;
  const hash = createHash("sha256").update(taskId, "utf8").digest("hex").slice(0, 16);
  return `${taskId.slice(0, MAX_ALARM_ID - ASSESSMENT_ALARM_SUFFIX.length - hash.length - 1)}~${hash}${ASSESSMENT_ALARM_SUFFIX}`;
}

/**
 * The model's risk as the alarm's severity: the rule's own alarm already carries the rule's severity, this one
 * says how bad the model found it (3: critical, 2: warning, 0–1: info).
 */
export function severityOfRisk(risk: number): AlarmMessage["severity"] {
  return risk >= 3 ? "critical" : risk >= 2 ? "warning" : "info";
}

/** The human line of the alarm: the risk against the threshold, the model, the labels and the reason. */
export function assessmentDetail(
  result: Pick<AssessmentResult, "risk" | "labels" | "reason" | "model">,
  threshold: number,
) {
  const labels = result.labels.length ? ` [${result.labels.join(", ")}]` : "";
  return `risk ${result.risk}/3 (threshold ${threshold}, ${result.model})${labels}: ${result.reason}`;
}

/** The alarm a result raises, or null: no threshold, no spec.alarm on the camera, or a risk below the threshold. */
export function alarmOfResult(task: AssessmentTask, result: AssessmentResult): AlarmMessage | null {
  const { threshold, alarm } = task;
  if (threshold === null || alarm === null || result.risk < threshold) return null;
  const t = task.trigger;
  const crop = task.images.find((i) => i.role === "crop" && i.box);
  return {
    v: 1,
    type: "alarm",
    id: assessmentAlarmId(task.id),
    camera_id: task.camera_id,
    rule: `assessment:${t.kind === "event" ? t.rule : "sample"}`,
    kind: "assessment",
    severity: severityOfRisk(result.risk),
    track_id: t.kind === "event" ? t.track_id : 0,
    zone: t.kind === "event" ? t.zone : task.context.zone,
    box: crop?.box ? [crop.box[0], crop.box[1], crop.box[2], crop.box[3]] : null,
    // The frame the task was built from: the clip window (the event's clip) is around it.
    timestamp: task.created_at,
    detail: assessmentDetail(result, threshold),
    snapshot_key: alarm.snapshot_key,
    clip: { ...alarm.clip },
    dedup_window_seconds: alarm.dedup_window_seconds,
    webhook_secret: alarm.webhook_secret,
    assessment: {
      result_id: result.id,
      risk: result.risk,
      threshold,
      labels: [...result.labels],
      reason: result.reason,
      // The alarm's field holds 253 characters (a model name is far shorter; a proxy's may not be).
      model: result.model.slice(0, 253),
    },
  };
}
