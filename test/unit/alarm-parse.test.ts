import { describe, expect, it } from "vitest";
import { parseAlarm } from "../../alarms/service.ts";
import { alarmFixture } from "../setup/alarm-service.ts";

const bytes = (v: unknown) => Buffer.from(typeof v === "string" ? v : JSON.stringify(v));

describe("parseAlarm", () => {
  it("accepts what a worker publishes", () => {
    const m = alarmFixture("shop", 3, { eventMs: 1_700_000_000_000 });
    expect(parseAlarm(bytes(m))).toEqual({ ok: true, value: m });
  });

  it("says which field is wrong, never throws", () => {
    const m = alarmFixture("shop", 3);
    expect(parseAlarm(bytes("{"))).toEqual({ ok: false, reason: "malformed alarm message: not JSON" });
    expect(parseAlarm(bytes({ ...m, v: 2 }))).toEqual({
      ok: false,
      reason: "malformed alarm message: v: Invalid input: expected 1",
    });
    const r = parseAlarm(bytes({ ...m, camera_id: "no-slash", clip: { ...m.clip, post_seconds: -1 } }));
    expect(r.ok).toBe(false);
    expect(!r.ok && r.reason).toMatch(/^malformed alarm message: camera_id: camera id "no-slash": must be/);
    expect(!r.ok && r.reason).toContain("clip.post_seconds: Too small");
    expect(parseAlarm(bytes(null))).toEqual({
      ok: false,
      reason: "malformed alarm message: (message): Invalid input: expected object, received null",
    });
  });
});
