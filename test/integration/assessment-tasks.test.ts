// The worker's assessment tasks on real components: vtest.avi over a real RTSP server, the real YOLOv8n model, real
// Redis for the bus events, and a real RabbitMQ, where the tasks are read from a queue bound to the assessment
// exchange beside the assessor's own. Two cameras on the same stream: `lobby` assesses its rule events (a presence
// rule that is an alarm, and a count rule that is not), `yard` only takes periodic samples.
import type { ChildProcess } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import amqp, { type ChannelModel } from "amqplib";
import { Redis } from "ioredis";
import pino from "pino";
import { Registry } from "prom-client";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { alarmObjectKeys } from "../../alarms/clips/store.ts";
import { ASSESSMENT_TOPOLOGY, type AssessmentTask, assessmentTask } from "../../assessor/messages.ts";
import { createAmqpTaskPublisher } from "../../worker/assessment/amqp-task-publisher.ts";
import { sampleTask } from "../../worker/assessment/tasks.ts";
import { CHANNELS, type EventMessage, eventMessage, parseMessage } from "../../worker/publish/messages.ts";
import { assessImages } from "../fakes/llm-provider.ts";
import { startRabbitMQ } from "../setup/brokers.ts";
import { metricValue, ROOT } from "../setup/operator-env.ts";
import { FIXTURES, freePort, type Service, startRedis, startRtsp, startWorker, waitFor } from "../setup/services.ts";

const VIDEO = join(FIXTURES, "vtest.avi");
const SAMPLE_S = 3;
const DEADLINE_S = 20;
let redis: Service;
let rtsp: Service;
let rabbit: Awaited<ReturnType<typeof startRabbitMQ>>;
let sub: Redis;
let conn: ChannelModel | undefined;
const workers: ChildProcess[] = [];
let workerPort = 0;
const logs: string[] = [];
const events: EventMessage[] = [];
const tasks: { task: AssessmentTask; key: string; messageId: unknown; persistent: boolean }[] = [];
const malformed: string[] = [];

const floor = [
  [0, 0],
  [1, 0],
  [1, 1],
  [0, 1],
];
function manifest(rtspPort: number): string {
  const url = `rtsp://127.0.0.1:${rtspPort}/cam1`;
  const camera = (name: string, spec: Record<string, unknown>) => ({
    apiVersion: "vigil.dev/v1alpha1",
    kind: "CameraDetection",
    metadata: { name },
    spec: { source: { url }, poolRef: { name: "local" }, detection: { targetFps: 5 }, ...spec },
  });
  const file = join(tmpdir(), `vigil-assessment-cameras-${process.pid}-${rtspPort}.yaml`);
  const docs = [
    camera("lobby", {
      zones: [{ name: "floor", polygon: floor }],
      rules: [
        // A new person: warning, at the camera's alarm.minSeverity, so its task is scheduled first.
        { name: "entered", severity: "warning", cooldownSeconds: 600, presence: { zone: "floor" } },
        // More than one person in view: an event about a group, info (below minSeverity).
        { name: "crowd", severity: "info", cooldownSeconds: 600, count: { max: 1 } },
      ],
      alarm: { minSeverity: "warning", dedupWindowSeconds: 45 },
      assessment: { poolRef: { name: "qwen" }, threshold: 2, prompt: "Is anyone at risk? Answer in json." },
    }),
    camera("yard", {
      zones: [{ name: "floor", polygon: floor }],
      rules: [{ name: "seen", severity: "info", cooldownSeconds: 600, presence: { zone: "floor" } }],
      // No rule's events: only the periodic samples.
      assessment: { poolRef: { name: "qwen" }, sampleIntervalSeconds: SAMPLE_S, onEvents: [] },
    }),
  ];
  writeFileSync(file, docs.map((d) => stringify(d)).join("---\n"));
  return file;
}

const of = (camera: string) => tasks.filter((t) => t.task.camera_id === camera).map((t) => t.task);
const metrics = async () => (await fetch(`http://127.0.0.1:${workerPort}/metrics`)).text();

beforeAll(async () => {
  [redis, rtsp, rabbit] = await Promise.all([startRedis(), startRtsp(VIDEO, { loop: true }), startRabbitMQ()]);
  sub = new Redis(redis.port, "127.0.0.1");
  await sub.subscribe(CHANNELS.events);
  sub.on("message", (_channel, raw) => {
    const r = parseMessage(eventMessage, raw);
    if (r.ok) events.push(r.value);
  });
  // A queue of our own on the exchange (the assessor's vigil.assessment.tasks keeps its copy): declared before the
  // worker starts, so it sees every task.
  conn = await amqp.connect(rabbit.url);
  const ch = await conn.createChannel();
  await ch.assertExchange(ASSESSMENT_TOPOLOGY.exchange, "topic", { durable: true });
  const { queue } = await ch.assertQueue("", { exclusive: true });
  await ch.bindQueue(queue, ASSESSMENT_TOPOLOGY.exchange, "task.#");
  await ch.consume(queue, (msg) => {
    if (!msg) return;
    const r = parseMessage(assessmentTask, msg.content.toString());
    if (!r.ok) malformed.push(r.error);
    else
      tasks.push({
        task: r.value,
        key: msg.fields.routingKey,
        messageId: msg.properties.messageId,
        persistent: msg.properties.deliveryMode === 2,
      });
    ch.ack(msg);
  });
  const w = await startWorker(
    ["--cameras", manifest(rtsp.port)],
    redis.port,
    { RABBITMQ_URL: rabbit.url, VIGIL_ASSESSMENT_DEADLINE_SECONDS: String(DEADLINE_S) },
    logs,
  );
  workers.push(w.proc);
  workerPort = w.port;
}, 60_000);

afterAll(async () => {
  for (const w of workers) if (w.exitCode === null) w.kill("SIGTERM");
  mkdirSync(join(ROOT, ".cache", "artifacts"), { recursive: true });
  writeFileSync(join(ROOT, ".cache", "artifacts", "assessment-tasks.log"), logs.join(""));
  await conn?.close().catch(() => undefined);
  sub?.disconnect();
  await rtsp?.stop("SIGKILL");
  await rabbit?.destroy();
  await redis?.stop();
});

/** A JPEG's own size, decoded by libvips (not the task's word for it). */
async function decoded(b64: string): Promise<{ format?: string; width?: number; height?: number }> {
  const m = await sharp(Buffer.from(b64, "base64")).metadata();
  return { format: m.format, width: m.width, height: m.height };
}

describe("worker → assessment tasks on RabbitMQ", () => {
  it("a task per assessed rule event, with the bus event's id, a low-resolution frame and crops of its people", {
    timeout: 60_000,
  }, async () => {
    const started = Date.now();
    await waitFor(
      "tasks of an entered and a crowd event, and three samples",
      async () =>
        of("default/lobby").some((t) => t.context.rule === "entered") &&
        of("default/lobby").some((t) => t.context.rule === "crowd") &&
        of("default/yard").length >= 3,
      40_000,
    );
    console.log(
      `tasks after ${Date.now() - started} ms: lobby ${of("default/lobby").length}, yard ${of("default/yard").length}`,
    );
    expect(malformed).toEqual([]);
    const bytes = tasks.map((t) => JSON.stringify(t.task).length).sort((a, b) => a - b);
    const mean = (role: string) => {
      const l = tasks.flatMap((t) => t.task.images.filter((i) => i.role === role).map((i) => i.jpeg_base64.length));
      return Math.round(l.reduce((a, b) => a + b, 0) / l.length);
    };
    console.log(
      `task sizes (bytes): min ${bytes[0]}, median ${bytes[bytes.length >> 1]}, max ${bytes.at(-1)}; ` +
        `base64 per frame ${mean("frame")}, per crop ${mean("crop")}`,
    );
    for (const t of tasks) {
      expect(t.messageId).toBe(t.task.id);
      expect(t.persistent).toBe(true);
      expect(t.key).toBe(t.task.camera_id === "default/lobby" ? "task.default.lobby" : "task.default.yard");
    }

    const lobby = of("default/lobby");
    // A task and its bus event travel apart (RabbitMQ and Redis): wait for the bus side too.
    await waitFor(
      "every lobby task's bus event",
      async () => {
        const onBus = new Set(events.map((e) => e.id));
        return lobby.every((t) => onBus.has(t.id));
      },
      10_000,
    );
    const busEvents = new Map(events.filter((e) => e.camera_id === "default/lobby").map((e) => [e.id, e]));
    for (const t of lobby) {
      // The task's id is its bus event's, and it tells the same event.
      const e = busEvents.get(t.id);
      expect(e, `bus event ${t.id}`).toBeDefined();
      expect(t.trigger).toEqual({
        kind: "event",
        event_id: e?.id,
        rule: e?.rule,
        rule_kind: e?.kind,
        severity: e?.severity,
        track_id: e?.track_id,
        zone: e?.zone,
        detail: e?.detail,
      });
      expect(t.pool).toEqual({ namespace: "default", name: "qwen" });
      expect(t.prompt).toBe("Is anyone at risk? Answer in json.");
      expect(t.threshold).toBe(2);
      expect(Date.parse(t.deadline) - Date.parse(t.created_at)).toBe(DEADLINE_S * 1000);
      expect(t.context.counts.person).toBeGreaterThanOrEqual(1);
      // The alarm stage's snapshot key (no clip store here: none) and the clip key an alarm of this id has.
      expect(t.alarm).toEqual({
        snapshot_key: e?.snapshot_key ?? null,
        clip: { key: alarmObjectKeys(t.id).clip, pre_seconds: 10, post_seconds: 20 },
        dedup_window_seconds: 45,
        webhook_secret: null,
      });
      expect(t.priority).toBe(t.context.rule === "entered" ? "alarm" : "normal");

      const [frame, ...crops] = t.images;
      expect(frame).toMatchObject({ role: "frame", width: 320, height: 240 });
      expect(crops.length).toBeGreaterThanOrEqual(1);
      expect(crops.length).toBeLessThanOrEqual(8);
      for (const img of t.images) {
        expect(await decoded(img.jpeg_base64)).toEqual({ format: "jpeg", width: img.width, height: img.height });
      }
      for (const c of crops) {
        expect(c.role).toBe("crop");
        const [x1, y1, x2, y2] = c.box ?? [0, 0, 0, 0];
        expect(x1).toBeGreaterThanOrEqual(0);
        expect(y1).toBeGreaterThanOrEqual(0);
        expect(x2).toBeLessThanOrEqual(768);
        expect(y2).toBeLessThanOrEqual(576);
        // At the letterbox's scale (640 / 768) of the source box, within a pixel of rounding.
        expect(Math.abs(c.width - (x2 - x1) * (640 / 768))).toBeLessThanOrEqual(2);
        expect(Math.abs(c.height - (y2 - y1) * (640 / 768))).toBeLessThanOrEqual(2);
      }
      if (t.context.rule === "entered") {
        // One person: the event's box, padded by 15 % on each side (clamped to the frame).
        expect(crops).toHaveLength(1);
        const b = e?.box as [number, number, number, number];
        const box = crops[0]?.box as [number, number, number, number];
        const [pw, ph] = [(b[2] - b[0]) * 0.15, (b[3] - b[1]) * 0.15];
        expect(box[0]).toBeCloseTo(Math.max(0, Math.floor(b[0] - pw)), 5);
        expect(box[1]).toBeCloseTo(Math.max(0, Math.floor(b[1] - ph)), 5);
        expect(box[2]).toBeCloseTo(Math.min(768, Math.ceil(b[2] + pw)), 5);
        expect(box[3]).toBeCloseTo(Math.min(576, Math.ceil(b[3] + ph)), 5);
      } else {
        // A group: one crop per person counted (up to 8), each a person-shaped (upright) box.
        const counted = Number(/^(\d+) person/.exec(t.trigger.kind === "event" ? t.trigger.detail : "")?.[1]);
        expect(counted).toBeGreaterThanOrEqual(2);
        expect(crops.length).toBe(Math.min(8, t.context.counts.person ?? 0));
        for (const c of crops) expect(c.height).toBeGreaterThan(c.width * 0.8);
        // What the fake provider answers for these images: one person per crop.
        const answer = assessImages(t.images.map((i) => Buffer.from(i.jpeg_base64, "base64")));
        expect(answer.reason).toMatch(new RegExp(`^${crops.length} people in ${crops.length + 1} images`));
      }
    }
  });

  it("samples of the sampling camera: <camera>:sample:<ms>, at least the interval apart, with people", async () => {
    const yard = of("default/yard");
    expect(yard.length).toBeGreaterThanOrEqual(3);
    const ms = yard.map((t) => {
      const m = /^default\/yard:sample:(\d+)$/.exec(t.id);
      expect(m, t.id).not.toBeNull();
      expect(t).toMatchObject({ trigger: { kind: "sample" }, priority: "normal", alarm: null, threshold: null });
      expect(t.images.length).toBeGreaterThanOrEqual(2); // the frame and at least one person
      return Number(m?.[1]);
    });
    const gaps = ms.slice(1).map((m, i) => m - (ms[i] as number));
    console.log(`sample gaps (ms): ${gaps.join(", ")}`);
    for (const g of gaps) expect(g).toBeGreaterThanOrEqual(SAMPLE_S * 1000);
    // onEvents: []: the yard's own events made no task.
    expect(events.some((e) => e.camera_id === "default/yard")).toBe(true);
  });

  it("counts what it published and the broker confirmed; nothing dropped", async () => {
    // Tasks go on coming: what we had before a read is what the read must cover.
    const had = tasks.length;
    const m = await metrics();
    const published = metricValue(m, "vigil_assessment_tasks_published_total");
    expect(published).toBeGreaterThanOrEqual(had);
    await waitFor("every task confirmed", async () => {
      const t = await metrics();
      return (
        metricValue(t, "vigil_assessment_tasks_confirmed_total") ===
        metricValue(t, "vigil_assessment_tasks_published_total")
      );
    });
    expect(metricValue(m, "vigil_assessment_tasks_dropped_total")).toBe(0);
    expect(metricValue(m, "vigil_assessment_task_build_failures_total")).toBe(0);
    expect(metricValue(m, "vigil_assessment_broker_connected")).toBe(1);
    // The assessor's own queue holds them too (nobody consumes it here).
    const ch = await (conn as ChannelModel).createChannel();
    const queued = tasks.length;
    const q = await ch.checkQueue(ASSESSMENT_TOPOLOGY.tasks);
    expect(q.messageCount).toBeGreaterThanOrEqual(queued);
    await ch.close();
  });
});

describe("the task publisher's outbox", () => {
  const task = (camera: string, ms: number, builtAgoMs = 0) =>
    sampleTask(
      {
        cameraId: camera,
        spec: { assessment: { poolRef: { name: "qwen" } } },
        images: [{ role: "frame", jpeg_base64: "AA==", width: 1, height: 1 }],
        counts: {},
        nowMs: Date.now() - builtAgoMs,
        deadlineSeconds: 30,
      },
      ms,
    );

  it("keeps the newest while the broker is away: the oldest of a camera past its bound, of all past the total", async () => {
    const registry = new Registry();
    const p = createAmqpTaskPublisher({
      url: `amqp://127.0.0.1:${await freePort()}`,
      registry,
      log: pino({ level: "silent" }),
      outboxMax: 5,
      perCameraMax: 3,
    });
    for (let i = 0; i < 5; i++) p.publish(task("default/a", i));
    for (let i = 0; i < 4; i++) p.publish(task("default/b", i));
    p.publish(task("default/b", 3)); // the same id again: one entry
    const m = await registry.metrics();
    expect(p.pending()).toBe(5);
    expect(metricValue(m, "vigil_assessment_tasks_published_total")).toBe(9);
    // a: 0, 1 gave way to 3, 4; b: 0 to 3; then the total of 5: a:2 (the oldest left) gave way to b:3.
    expect(metricValue(m, "vigil_assessment_tasks_dropped_total", 'reason="camera_bound"')).toBe(3);
    expect(metricValue(m, "vigil_assessment_tasks_dropped_total", 'reason="outbox_full"')).toBe(1);
    await p.close(100);
  });

  it("drops a task past its deadline before sending it, and sends the rest", async () => {
    const registry = new Registry();
    const p = createAmqpTaskPublisher({ url: rabbit.url, registry, log: pino({ level: "silent" }) });
    const before = tasks.length;
    // Built 31 s ago (the broker was away, say): past its 30 s deadline. The other is fresh.
    p.publish(task("default/stale", 1, 31_000));
    p.publish(task("default/stale", 2));
    await waitFor("the fresh task confirmed", async () => p.pending() === 0, 10_000);
    const m = await registry.metrics();
    expect(metricValue(m, "vigil_assessment_tasks_dropped_total", 'reason="stale"')).toBe(1);
    expect(metricValue(m, "vigil_assessment_tasks_confirmed_total")).toBe(1);
    // The worker's cameras go on sending tasks to the same exchange: only this camera's are ours. One channel, one
    // queue: had the stale one been sent, it would be here before the fresh one.
    const mine = () => tasks.slice(before).filter((t) => t.task.camera_id === "default/stale");
    await waitFor("the fresh task in our queue", async () => mine().length > 0, 10_000);
    expect(mine().map((t) => t.task.id)).toEqual(["default/stale:sample:2"]);
    await p.close(1000);
  });
});
