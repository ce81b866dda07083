import { describe, expect, it } from "vitest";
import { alarmMessage } from "../../alarms/messages.ts";
import { alarm as alarmSpec } from "../../operator/api/camera-detection.ts";
import { alarmOf, isAlarm } from "../../worker/alarms.ts";
import type { RuleEvent } from "../../worker/rules/engine.ts";

const event: RuleEvent = {
  id: "entered:7:1700000000000",
  rule: "entered",
  severity: "warning",
  kind: "presence",
  trackId: 7,
  zone: "floor",
  box: [10, 20, 110, 220],
  startedAtMs: 1_700_000_000_000,
  timestampMs: 1_700_000_000_250,
  detail: "person entered floor",
};

describe("alarm of a rule event", () => {
  it("is an alarm at or above minSeverity, on a camera with spec.alarm only", () => {
    const at = (minSeverity: "info" | "warning" | "critical") => ({ alarm: alarmSpec.parse({ minSeverity }) });
    expect(isAlarm(at("warning"), { severity: "info" })).toBe(false);
    expect(isAlarm(at("warning"), { severity: "warning" })).toBe(true);
    expect(isAlarm(at("warning"), { severity: "critical" })).toBe(true);
    expect(isAlarm(at("critical"), { severity: "warning" })).toBe(false);
    expect(isAlarm(at("info"), { severity: "info" })).toBe(true);
    expect(isAlarm({}, { severity: "critical" })).toBe(false);
  });

  it("carries the event's id, the clip window, dedup window and webhook Secret name, in the shared schema", () => {
    const spec = alarmSpec.parse({
      clip: { preSeconds: 5, postSeconds: 15 },
      dedupWindowSeconds: 90,
      webhookSecretRef: { name: "hook" },
    });
    const id = `site-a/door:${event.id}`;
    const m = alarmOf("site-a/door", spec, id, event, "site-a/door/entered_7_1700000000000.jpg");
    expect(alarmMessage.parse(m)).toEqual(m);
    expect(m).toMatchObject({
      id,
      camera_id: "site-a/door",
      track_id: 7,
      box: [10, 20, 110, 220],
      timestamp: "2023-11-14T22:13:20.250Z",
      clip: { key: "site-a/door/entered_7_1700000000000.mp4", pre_seconds: 5, post_seconds: 15 },
      dedup_window_seconds: 90,
      webhook_secret: "hook",
    });
    const bare = alarmOf("site-a/door", alarmSpec.parse({}), id, { ...event, box: undefined, zone: undefined }, null);
    expect(alarmMessage.parse(bare)).toMatchObject({ box: null, zone: null, snapshot_key: null, webhook_secret: null });
  });
});
