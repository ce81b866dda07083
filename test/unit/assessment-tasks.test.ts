import { Writable } from "node:stream";
import pino from "pino";
import { Registry } from "prom-client";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { createOutbox } from "../../alarms/outbox.ts";
import { assessmentTask } from "../../assessor/messages.ts";
import { type CameraDetectionSpec, cameraDetectionSpec } from "../../operator/api/camera-detection.ts";
import { alarmOf } from "../../worker/alarms.ts";
import {
  letterboxRegion,
  MAX_CROPS,
  paddedBox,
  subjectsOfEvent,
  subjectsOfSample,
} from "../../worker/assessment/crops.ts";
import { encodeTaskImages } from "../../worker/assessment/images.ts";
import { createSampler } from "../../worker/assessment/sampler.ts";
import { createAssessmentStage } from "../../worker/assessment/stage.ts";
import {
  assessesEvent,
  countsOf,
  DEFAULT_PROMPT,
  eventTask,
  mayRaiseAlarm,
  priorityOf,
  sampleEvidenceId,
  sampleTask,
} from "../../worker/assessment/tasks.ts";
import { detectionsFrom } from "../../worker/detections.ts";
import { letterboxParams } from "../../worker/infer/letterbox.ts";
import type { RuleEvent } from "../../worker/rules/engine.ts";
import { assessImages, jpegSize } from "../fakes/llm-provider.ts";

const CLASSES = ["person", "bicycle", "car"];
const spec = (extra: Partial<Record<string, unknown>> = {}): CameraDetectionSpec =>
  cameraDetectionSpec.parse({
    source: { url: "rtsp://cam/1" },
    poolRef: { name: "local" },
    zones: [
      {
        name: "left",
        polygon: [
          [0, 0],
          [0.5, 0],
          [0.5, 1],
          [0, 1],
        ],
      },
    ],
    rules: [
      { name: "entered", severity: "warning", presence: { zone: "left" } },
      { name: "crowd", severity: "critical", count: { zone: "left", min: 0, max: 1 } },
      { name: "many", severity: "info", count: { max: 1 } },
    ],
    assessment: { poolRef: { name: "qwen" }, threshold: 2 },
    ...extra,
  });

const presence: RuleEvent = {
  id: "entered:7:1000",
  rule: "entered",
  severity: "warning",
  kind: "presence",
  trackId: 7,
  zone: "left",
  box: [100, 50, 200, 350],
  startedAtMs: 1000,
  timestampMs: 1000,
  detail: "person entered zone left",
};
const crowd: RuleEvent = {
  id: "crowd:0:2000",
  rule: "crowd",
  severity: "critical",
  kind: "count",
  trackId: 0,
  zone: "left",
  startedAtMs: 2000,
  timestampMs: 2400,
  detail: "3 person in zone left (max 1) for 0.4s",
};
const img = [{ role: "frame" as const, jpeg_base64: "AA==", width: 320, height: 240 }];
const base = (s: CameraDetectionSpec) => ({
  cameraId: "shop/door",
  spec: s,
  images: img,
  counts: { person: 3 },
  nowMs: Date.parse("2026-12-01T20:00:00.000Z"),
  deadlineSeconds: 30,
});

describe("which events are assessed", () => {
  it("needs spec.assessment, and the rule in onEvents when it is given", () => {
    expect(assessesEvent(spec({ assessment: undefined }), presence)).toBe(false);
    expect(assessesEvent(spec(), presence)).toBe(true);
    expect(assessesEvent(spec(), crowd)).toBe(true);
    const only = spec({ assessment: { poolRef: { name: "qwen" }, onEvents: ["crowd"] } });
    expect(assessesEvent(only, presence)).toBe(false);
    expect(assessesEvent(only, crowd)).toBe(true);
    expect(assessesEvent(spec({ assessment: { poolRef: { name: "qwen" }, onEvents: [] } }), crowd)).toBe(false);
  });

  it("is alarm priority at or above alarm.minSeverity, or critical without spec.alarm", () => {
    const alarmed = spec({ alarm: { minSeverity: "warning" } });
    expect(priorityOf(alarmed, { severity: "info" })).toBe("normal");
    expect(priorityOf(alarmed, { severity: "warning" })).toBe("alarm");
    expect(priorityOf(alarmed, { severity: "critical" })).toBe("alarm");
    const plain = spec();
    expect(priorityOf(plain, { severity: "warning" })).toBe("normal");
    expect(priorityOf(plain, { severity: "critical" })).toBe("alarm");
  });
});

describe("task messages", () => {
  it("an event's task: the bus id, the camera's pool and prompt, the deadline, the context", () => {
    const t = eventTask(base(spec()), "shop/door:entered:7:1000", presence, null);
    expect(assessmentTask.parse(t)).toEqual(t);
    expect(t).toMatchObject({
      id: "shop/door:entered:7:1000",
      camera_id: "shop/door",
      pool: { namespace: "shop", name: "qwen" },
      trigger: {
        kind: "event",
        event_id: "shop/door:entered:7:1000",
        rule: "entered",
        rule_kind: "presence",
        severity: "warning",
        track_id: 7,
        zone: "left",
      },
      priority: "normal",
      prompt: DEFAULT_PROMPT,
      threshold: 2,
      created_at: "2026-12-01T20:00:00.000Z",
      deadline: "2026-12-01T20:00:30.000Z",
      context: { camera: "shop/door", zone: "left", rule: "entered", counts: { person: 3 } },
      alarm: null,
    });
    expect(DEFAULT_PROMPT).toMatch(/people/);
  });

  it("carries the camera's own prompt, and a null threshold when none is set", () => {
    const t = eventTask(
      base(spec({ assessment: { poolRef: { name: "qwen" }, prompt: "Anyone climbing the fence?" } })),
      "shop/door:crowd:0:2000",
      crowd,
      null,
    );
    expect(t.prompt).toBe("Anyone climbing the fence?");
    expect(t.threshold).toBeNull();
    expect(t.priority).toBe("alarm");
  });

  it("with spec.alarm: the same delivery bits an alarm of the event carries, with the event's snapshot", () => {
    const s = spec({
      alarm: { minSeverity: "critical", dedupWindowSeconds: 45, webhookSecretRef: { name: "hook" } },
    });
    const id = "shop/door:entered:7:1000";
    const t = eventTask(base(s), id, presence, "shop/door/entered_7_1000.jpg");
    const a = alarmOf(
      "shop/door",
      s.alarm as NonNullable<CameraDetectionSpec["alarm"]>,
      id,
      presence,
      "shop/door/entered_7_1000.jpg",
    );
    expect(t.alarm).toEqual({
      snapshot_key: a.snapshot_key,
      clip: a.clip,
      dedup_window_seconds: 45,
      webhook_secret: "hook",
    });
    expect(t.alarm?.clip).toEqual({ key: "shop/door/entered_7_1000.mp4", pre_seconds: 10, post_seconds: 20 });
    expect(t.priority).toBe("normal"); // warning < critical
    expect(assessmentTask.safeParse(t).success).toBe(true);
  });

  it("a sample's task: <camera>:sample:<ms>, normal priority, no rule", () => {
    const s = spec({ alarm: {} });
    const t = sampleTask(base(s), 123456);
    expect(assessmentTask.parse(t)).toEqual(t);
    expect(t).toMatchObject({
      id: "shop/door:sample:123456",
      trigger: { kind: "sample" },
      priority: "normal",
      context: { zone: null, rule: null },
      alarm: { snapshot_key: null, clip: { key: "shop/door/sample_0_123456.mp4" } },
    });
  });

  it("no alarm delivery without a threshold: no answer can raise one, so no snapshot or clip is kept for it", () => {
    const s = spec({ alarm: {}, assessment: { poolRef: { name: "qwen" } } });
    expect(mayRaiseAlarm(s)).toBe(false);
    expect(mayRaiseAlarm(spec({ alarm: {} }))).toBe(true);
    expect(mayRaiseAlarm(spec())).toBe(false);
    expect(eventTask(base(s), "shop/door:entered:7:1000", presence, null).alarm).toBeNull();
    expect(sampleTask(base(s), 5).alarm).toBeNull();
  });

  it("a sample's alarm names the snapshot kept for it, under the sample's alarm id", () => {
    const s = spec({ alarm: {} });
    expect(sampleEvidenceId("shop/door", 123456.4)).toBe("shop/door:sample:0:123456");
    const t = sampleTask(base(s), 123456, "shop/door/sample_0_123456.jpg");
    expect(t.alarm?.snapshot_key).toBe("shop/door/sample_0_123456.jpg");
    expect(t.alarm?.clip.key).toBe("shop/door/sample_0_123456.mp4");
  });

  it("counts detections per class", () => {
    const d = detectionsFrom([
      { box: [0, 0, 1, 1], score: 1, classId: 0 },
      { box: [0, 0, 1, 1], score: 1, classId: 2 },
      { box: [0, 0, 1, 1], score: 1, classId: 0 },
    ]);
    expect(countsOf(d, CLASSES)).toEqual({ person: 2, car: 1 });
  });
});

describe("the periodic sampler", () => {
  it("emits at most one sample per interval per camera, only with people in view", () => {
    const s = createSampler();
    expect(s.due("a", 10, 0, 0)).toBe(false); // nobody there
    expect(s.due("a", 10, 1000, 2)).toBe(true);
    expect(s.due("b", 10, 1000, 1)).toBe(true); // cameras are independent
    expect(s.due("a", 10, 10_999, 2)).toBe(false);
    expect(s.due("a", 10, 11_000, 0)).toBe(false); // due, but empty: waits for people
    expect(s.due("a", 10, 15_000, 1)).toBe(true);
    expect(s.due("a", 10, 20_000, 1)).toBe(false);
    expect(s.due("a", 10, 5_000, 1)).toBe(true); // the clock went back: start over
    s.forget("a");
    expect(s.due("a", 10, 5_001, 1)).toBe(true);
  });

  it("a stream of frames gives samples at least the interval apart", () => {
    const s = createSampler();
    const taken: number[] = [];
    for (let t = 0; t < 60_000; t += 200) if (s.due("a", 7, t, t % 9000 < 6000 ? 1 : 0)) taken.push(t);
    expect(taken.length).toBeGreaterThan(4);
    for (let i = 1; i < taken.length; i++)
      expect((taken[i] as number) - (taken[i - 1] as number)).toBeGreaterThanOrEqual(7000);
  });
});

describe("crops", () => {
  const people = detectionsFrom([
    { box: [10, 100, 60, 300], score: 0.9, classId: 0 }, // left, 50×200
    { box: [150, 50, 250, 350], score: 0.9, classId: 0 }, // left, 100×300 (largest)
    { box: [500, 100, 560, 300], score: 0.9, classId: 0 }, // right
    { box: [200, 300, 300, 400], score: 0.9, classId: 2 }, // a car, left
  ]);
  const view = { width: 768, height: 576, detections: people, classNames: CLASSES };

  it("an event about one track crops its box; a count event each counted object in its zone, largest first", () => {
    expect(subjectsOfEvent(spec(), presence, view)).toEqual([presence.box]);
    expect(subjectsOfEvent(spec(), crowd, view)).toEqual([
      [150, 50, 250, 350],
      [10, 100, 60, 300],
    ]);
    const many = { ...crowd, rule: "many", zone: undefined };
    expect(subjectsOfEvent(spec(), many, view)).toHaveLength(3);
    expect(subjectsOfSample(view)).toHaveLength(3);
  });

  it("at most MAX_CROPS", () => {
    const lots = detectionsFrom(
      Array.from({ length: 12 }, (_, i) => ({ box: [i * 60, 0, i * 60 + 50, 100 + i] as const, score: 1, classId: 0 })),
    );
    const s = subjectsOfSample({ ...view, detections: lots });
    expect(s).toHaveLength(MAX_CROPS);
    expect(s[0]?.[3]).toBe(111); // the tallest first
  });

  it("pads 15 % on each side, clamped to the frame", () => {
    expect(paddedBox([100, 100, 200, 300], 768, 576)).toEqual([85, 70, 215, 330]);
    expect(paddedBox([0, 500, 100, 576], 768, 576)).toEqual([0, 488, 115, 576]);
    expect(paddedBox([800, 0, 900, 10], 768, 576)).toBeNull();
  });

  it("maps source pixels into the letterboxed frame (768×576 at 640: scale 0.833, 80 px bars above and below)", () => {
    expect(letterboxRegion([0, 0, 768, 576], 768, 576, 640)).toEqual({ left: 0, top: 80, width: 640, height: 480 });
    expect(letterboxRegion([120, 60, 240, 300], 768, 576, 640)).toEqual({
      left: 100,
      top: 130,
      width: 100,
      height: 200,
    });
    // A portrait source: bars left and right.
    expect(letterboxRegion([0, 0, 480, 640], 480, 640, 640)).toEqual({ left: 80, top: 0, width: 480, height: 640 });
  });
});

describe("task images (sharp)", () => {
  /** A 768×576 source letterboxed to 640: grey bars, a dark scene, a red "person" at source [120, 60, 240, 300]. */
  async function frame() {
    const lb = letterboxParams(768, 576, 640);
    const content = await sharp({ create: { width: lb.newW, height: lb.newH, channels: 3, background: "#202020" } })
      .composite([
        {
          input: await sharp({ create: { width: 100, height: 200, channels: 3, background: "#ff0000" } })
            .png()
            .toBuffer(),
          left: 100,
          top: 50,
        },
      ])
      .removeAlpha()
      .raw()
      .toBuffer();
    return sharp(content, { raw: { width: lb.newW, height: lb.newH, channels: 3 } })
      .extend({
        top: lb.padY,
        bottom: 640 - lb.newH - lb.padY,
        left: lb.padX,
        right: 640 - lb.newW - lb.padX,
        background: "#727272",
      })
      .raw()
      .toBuffer();
  }

  it("the frame at 320 px wide without the bars, and crops of the boxes at the scaled resolution", async () => {
    const letterboxed = await frame();
    expect(letterboxed.length).toBe(640 * 640 * 3);
    const rects = [
      [120, 60, 240, 300] as [number, number, number, number],
      paddedBox([120, 60, 240, 300], 768, 576) as [number, number, number, number],
    ];
    const images = await encodeTaskImages(
      { letterboxed, shape: { width: 640, height: 640 }, width: 768, height: 576 },
      rects,
    );
    expect(images.map((i) => [i.role, i.width, i.height])).toEqual([
      ["frame", 320, 240],
      ["crop", 100, 200],
      ["crop", 130, 260],
    ]);
    expect(images[2]?.box).toEqual([102, 24, 258, 336]);
    const jpegs = images.map((i) => Buffer.from(i.jpeg_base64, "base64"));
    expect(jpegs.map((j) => jpegSize(j))).toEqual(images.map((i) => ({ width: i.width, height: i.height })));
    // The exact crop is all red: the letterbox mapping hit the person, not the bars or the floor.
    const { channels } = await sharp(jpegs[1] as Buffer).stats();
    expect(channels[0]?.mean).toBeGreaterThan(230);
    expect(channels[1]?.mean).toBeLessThan(25);
    // The frame has no grey bars: its top row is the dark scene.
    const top = await sharp(jpegs[0] as Buffer)
      .extract({ left: 0, top: 0, width: 320, height: 2 })
      .stats();
    expect(top.channels[0]?.mean).toBeLessThan(50);
    // The fake provider reads people from the crops: two crops → two people.
    expect(assessImages(jpegs)).toMatchObject({ risk: 1, labels: ["person"] });
  });
});

describe("outbox: dropping what is not on the wire", () => {
  it("drops an unsent entry, keeps one on the wire", () => {
    const o = createOutbox<string>(10);
    o.add("a", "A");
    o.add("b", "B");
    o.sent("a");
    expect(o.has("a")).toBe(true);
    expect(o.dropUnsent("a")).toBe(false);
    expect(o.dropUnsent("b")).toBe(true);
    expect(o.has("b")).toBe(false);
    expect(o.size).toBe(1);
    expect(o.inFlight).toBe(1);
    expect(o.dropUnsent("zz")).toBe(false);
  });
});

describe("the stage without a broker", () => {
  it("says once per camera that assessments are off, and builds nothing", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const log = pino({ level: "info" }, sink);
    const registry = new Registry();
    const stage = createAssessmentStage({ registry, log, deadlineSeconds: 30 });
    const camera = { id: "shop/door", spec: spec() };
    stage.addCamera(camera);
    stage.addCamera(camera); // an update: no second warning
    stage.addCamera({ id: "shop/back", spec: spec({ assessment: undefined }) });
    const view = { width: 768, height: 576, detections: detectionsFrom([]), classNames: CLASSES };
    const frame = {
      letterboxed: Buffer.alloc(640 * 640 * 3),
      shape: { width: 640, height: 640 },
      width: 768,
      height: 576,
    };
    stage.event(camera, "shop/door:entered:7:1000", presence, null, frame, view);
    await stage.idle();
    const off = lines.filter((l) => l.includes("assessments are off"));
    expect(off).toHaveLength(1);
    expect(off[0]).toContain('"camera":"shop/door"');
    expect(stage.wants(camera.spec, presence)).toBe(false);
    expect(await registry.metrics()).not.toMatch(/vigil_assessment_tasks_built_total\{[^}]*\} [1-9]/);
  });
});
