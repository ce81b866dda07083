import { describe, expect, it } from "vitest";
import type { AlarmMessage } from "../../alarms/messages.ts";
import { redactUrl } from "../../alarms/webhook/deliver.ts";
import { alarmMediaPath, clipPayload, raisedPayload, webhookPayload } from "../../alarms/webhook/payload.ts";

const alarm: AlarmMessage = {
  v: 1,
  type: "alarm",
  id: "shop/cam.front:entry:7:1700000000000",
  camera_id: "shop/cam.front",
  rule: "entry",
  kind: "presence",
  severity: "warning",
  track_id: 7,
  zone: null,
  box: [1, 2, 3, 4],
  timestamp: "2023-11-14T22:13:20.000Z",
  detail: "",
  snapshot_key: "shop/cam.front/entry_7_1700000000000.jpg",
  clip: { key: "shop/cam.front/entry_7_1700000000000.mp4", pre_seconds: 5, post_seconds: 10 },
  dedup_window_seconds: 60,
  webhook_secret: "hook",
};

describe("payload", () => {
  it("alarm.raised: the alarm and its snapshot, valid by the exported schema", () => {
    const p = raisedPayload(alarm);
    expect(webhookPayload.parse(p)).toEqual(p);
    expect(p).toMatchObject({
      type: "alarm.raised",
      timestamp: alarm.timestamp,
      data: {
        id: alarm.id,
        camera: { id: "shop/cam.front", namespace: "shop", name: "cam.front" },
        event_time: alarm.timestamp,
        snapshot: {
          key: alarm.snapshot_key,
          path: "/api/v1/alarms/shop%2Fcam.front%3Aentry%3A7%3A1700000000000/snapshot",
        },
      },
    });
    expect(raisedPayload({ ...alarm, snapshot_key: null }).data.snapshot).toBeNull();
  });

  it("alarm.clip: adds the clip's key, path, start and duration", () => {
    const p = clipPayload(alarm, { readyMs: 1700000012000, startMs: 1699999994500, durationSeconds: 15.5 });
    expect(webhookPayload.parse(p)).toEqual(p);
    expect(p.timestamp).toBe("2023-11-14T22:13:32.000Z");
    expect(p.data.clip).toEqual({
      key: alarm.clip.key,
      path: alarmMediaPath(alarm.id, "clip"),
      start: "2023-11-14T22:13:14.500Z",
      duration_seconds: 15.5,
    });
  });

  it("an assessment alarm carries the model's answer; a rule's alarm has no assessment key", () => {
    const assessment = {
      result_id: alarm.id,
      risk: 3,
      threshold: 2,
      labels: ["tailgating"],
      reason: "a second person follows",
      model: "qwen-vl-max",
    };
    const p = raisedPayload({ ...alarm, id: `${alarm.id}:assessment`, kind: "assessment", assessment });
    expect(webhookPayload.parse(p)).toEqual(p);
    expect(p.data.assessment).toEqual(assessment);
    expect(p.data.kind).toBe("assessment");
    const c = clipPayload({ ...alarm, assessment }, { readyMs: 1700000012000, startMs: 1, durationSeconds: 1 });
    expect(c.data.assessment).toEqual(assessment);
    expect("assessment" in raisedPayload(alarm).data).toBe(false);
  });

  it("the schema names what is wrong", () => {
    const bad = { ...raisedPayload(alarm), type: "alarm.clip" };
    const r = webhookPayload.safeParse(bad);
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.path.join("."))).toContain("data.clip");
  });
});

describe("redactUrl", () => {
  it.each([
    ["https://user:pw@hooks.example.com/api/v1/alarms?token=abc#x", "https://hooks.example.com/api/v1/alarms?…"],
    [
      "https://hooks.slack.com/services/T0001/B0002/XXXXXXXXXXXXXXXXXXXXXXXX",
      "https://hooks.slack.com/services/T0001/B0002/…",
    ],
    ["http://127.0.0.1:8080/", "http://127.0.0.1:8080"],
    ["not a url", "<invalid url>"],
  ])("%s → %s", (url, out) => {
    expect(redactUrl(url)).toBe(out);
  });
});
