import { describe, expect, it } from "vitest";
import { alarmMessage, dedupKey } from "../../alarms/messages.ts";
import { MAX_ALARM_ID } from "../../alarms/records-core.ts";
import {
  type AssessmentResult,
  type AssessmentTask,
  assessmentResult,
  assessmentTask,
} from "../../assessor/messages.ts";
import { alarmOfResult, assessmentAlarmId, severityOfRisk } from "../../assessor/raise-alarm.ts";

const eventId = "shop/entrance:loiter:7:1700000000000";

const task: AssessmentTask = assessmentTask.parse({
  v: 1,
  type: "assessment.task",
  id: eventId,
  camera_id: "shop/entrance",
  pool: { namespace: "shop", name: "qwen" },
  trigger: {
    kind: "event",
    event_id: eventId,
    rule: "loiter",
    rule_kind: "dwell",
    severity: "warning",
    track_id: 7,
    zone: "door",
    detail: "person in door for 31 s",
  },
  priority: "normal",
  prompt: "Assess the risk; answer in json.",
  threshold: 2,
  created_at: "2023-11-14T22:13:31.250Z",
  deadline: "2023-11-14T22:13:41.250Z",
  context: { camera: "shop/entrance", zone: "door", rule: "loiter", counts: { person: 2 } },
  images: [
    { role: "frame", jpeg_base64: "AAAA", width: 320, height: 180 },
    { role: "crop", jpeg_base64: "AAAA", width: 100, height: 200, box: [10, 20, 110, 220] },
  ],
  alarm: {
    snapshot_key: "shop/entrance/loiter_7_1700000000000.jpg",
    clip: { key: "shop/entrance/loiter_7_1700000000000.mp4", pre_seconds: 5, post_seconds: 10 },
    dedup_window_seconds: 60,
    webhook_secret: "hooks",
  },
});

const result = (risk: number, over: Partial<AssessmentResult> = {}): AssessmentResult =>
  assessmentResult.parse({
    v: 1,
    type: "assessment.result",
    id: task.id,
    camera_id: task.camera_id,
    pool: task.pool,
    trigger: task.trigger,
    priority: task.priority,
    risk,
    labels: ["loitering", "night"],
    reason: "two people wait at the closed door",
    model: "qwen-vl-max",
    key_fingerprint: "1a2b3c4d",
    scope: "A",
    usage: { prompt_tokens: 900, completion_tokens: 40, total_tokens: 940 },
    attempts: 1,
    created_at: task.created_at,
    completed_at: "2023-11-14T22:13:32.000Z",
    latency_ms: 750,
    alarm_id: null,
    ...over,
  });

describe("alarm of an assessment result", () => {
  it("raises at and above the threshold, with the answer attached", () => {
    const a = alarmOfResult(task, result(3));
    expect(a).not.toBeNull();
    expect(alarmMessage.parse(a)).toEqual(a);
    expect(a).toEqual({
      v: 1,
      type: "alarm",
      id: `${eventId}:assessment`,
      camera_id: "shop/entrance",
      rule: "assessment:loiter",
      kind: "assessment",
      severity: "critical",
      track_id: 7,
      zone: "door",
      box: [10, 20, 110, 220],
      timestamp: "2023-11-14T22:13:31.250Z",
      detail: "risk 3/3 (threshold 2, qwen-vl-max) [loitering, night]: two people wait at the closed door",
      snapshot_key: "shop/entrance/loiter_7_1700000000000.jpg",
      clip: { key: "shop/entrance/loiter_7_1700000000000.mp4", pre_seconds: 5, post_seconds: 10 },
      dedup_window_seconds: 60,
      webhook_secret: "hooks",
      assessment: {
        result_id: eventId,
        risk: 3,
        threshold: 2,
        labels: ["loitering", "night"],
        reason: "two people wait at the closed door",
        model: "qwen-vl-max",
      },
    });
    const atThreshold = alarmOfResult(task, result(2));
    expect(atThreshold?.severity).toBe("warning");
    expect(atThreshold?.assessment?.risk).toBe(2);
  });

  it("raises nothing below the threshold, without a threshold, or on a camera without spec.alarm", () => {
    expect(alarmOfResult(task, result(1))).toBeNull();
    expect(alarmOfResult(task, result(0))).toBeNull();
    expect(alarmOfResult({ ...task, threshold: null }, result(3))).toBeNull();
    expect(alarmOfResult({ ...task, alarm: null }, result(3))).toBeNull();
    // Threshold 0: every answer is an alarm.
    expect(alarmOfResult({ ...task, threshold: 0 }, result(0))?.severity).toBe("info");
  });

  it("keeps apart from the rule's own alarm in dedup", () => {
    const a = alarmOfResult(task, result(3));
    if (!a) throw new Error("no alarm");
    const ruleAlarm = { camera_id: "shop/entrance", rule: "loiter", track_id: 7 };
    expect(dedupKey(a)).not.toBe(dedupKey(ruleAlarm));
    expect(dedupKey(a)).toBe("shop/entrance|assessment:loiter|7");
  });

  it("names a periodic sample's alarm assessment:sample, track 0, the context's zone, no box without a crop", () => {
    const sample: AssessmentTask = {
      ...task,
      id: "shop/entrance:sample:1700000005000",
      trigger: { kind: "sample" },
      context: { ...task.context, zone: null, rule: null },
      images: [{ role: "frame", jpeg_base64: "AAAA", width: 320, height: 180 }],
    };
    const a = alarmOfResult(sample, result(2, { id: sample.id, trigger: { kind: "sample" } }));
    expect(alarmMessage.safeParse(a).success).toBe(true);
    expect(a).toMatchObject({
      id: "shop/entrance:sample:1700000005000:assessment",
      rule: "assessment:sample",
      track_id: 0,
      zone: null,
      box: null,
      severity: "warning",
      assessment: { result_id: "shop/entrance:sample:1700000005000", risk: 2, threshold: 2 },
    });
    expect(alarmOfResult(sample, result(2, { labels: [] }))?.detail).toBe(
      "risk 2/3 (threshold 2, qwen-vl-max): two people wait at the closed door",
    );
  });

  it("fits a long task id into the records' 400 characters, deterministically and uniquely", () => {
    const short = `${"a".repeat(MAX_ALARM_ID - ":assessment".length)}`;
    expect(assessmentAlarmId(short)).toBe(`${short}:assessment`);
    const long = `ns/${"n".repeat(253)}:${"r".repeat(63)}:123456:1700000000000${"x".repeat(200)}`;
    const id = assessmentAlarmId(long);
    expect(id.length).toBeLessThanOrEqual(MAX_ALARM_ID);
    expect(id.endsWith(":assessment")).toBe(true);
    expect(id).toBe(assessmentAlarmId(long));
    expect(assessmentAlarmId(`${long}y`)).not.toBe(id);
    expect(assessmentAlarmId(`${long}y`).length).toBeLessThanOrEqual(MAX_ALARM_ID);
  });

  it("cuts a model name longer than the alarm's field", () => {
    const a = alarmOfResult(task, result(3, { model: "m".repeat(300) }));
    expect(a?.assessment?.model).toHaveLength(253);
    expect(alarmMessage.safeParse(a).success).toBe(true);
  });

  it("maps risk to severity", () => {
    expect([0, 1, 2, 3].map(severityOfRisk)).toEqual(["info", "info", "warning", "critical"]);
  });
});
