// The worker's alarm path on real components: vtest.avi over a real RTSP server, the real YOLOv8n model, real Redis,
// and a real RabbitMQ (Debian's, as a plain process) that is SIGKILLed while the worker publishes.
import { type ChildProcess, execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import amqp, { type Channel, type ChannelModel, type RecoveringChannelModel } from "amqplib";
import { Redis } from "ioredis";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { declareAlarmTopology } from "../../alarms/amqp-topology.ts";
import { createFsClipStore } from "../../alarms/clips/fs-store.ts";
import { alarmObjectKeys, readClipMeta } from "../../alarms/clips/store.ts";
import { ALARM_TOPOLOGY, type AlarmMessage, alarmMessage } from "../../alarms/messages.ts";
import {
  CHANNELS,
  type EventMessage,
  eventMessage,
  parseMessage,
  type StatsMessage,
  statsMessage,
} from "../../worker/publish/messages.ts";
import { startRabbitMQ } from "../setup/brokers.ts";
import { exitOf, metricValue, ROOT } from "../setup/operator-env.ts";
import { FIXTURES, freePort, type Service, startRedis, startRtsp, startWorker, waitFor } from "../setup/services.ts";

const VIDEO = join(FIXTURES, "vtest.avi");
const CAMERA = "default/lobby";
let redis: Service;
let rtsp: Service;
let rabbit: Awaited<ReturnType<typeof startRabbitMQ>>;
let sub: Redis;
let worker: ChildProcess | undefined;
let workerPort = 0;
let consumer: RecoveringChannelModel | undefined;
const clipDir = mkdtempSync(join(tmpdir(), "vigil-clips-"));
const store = createFsClipStore(clipDir);
const logs: string[] = [];
const stats: StatsMessage[] = [];
const events: EventMessage[] = [];
/** Every delivery from the vigil.alarms queue, in order, with whether the broker said it was a redelivery. */
const deliveries: { alarm: AlarmMessage; redelivered: boolean; at: number }[] = [];
const malformed: string[] = [];

const metrics = async () => (await fetch(`http://127.0.0.1:${workerPort}/metrics`)).text();
const alarmIds = () => new Set(deliveries.map((d) => d.alarm.id));
/** The bus events that must have become alarms: severity warning (≥ minSeverity) on the alarm camera. */
const alarmEvents = () => events.filter((e) => e.camera_id === CAMERA && e.severity !== "info");

function manifest(rtspPort: number): string {
  const file = join(tmpdir(), `vigil-alarm-cameras-${process.pid}-${rtspPort}.yaml`);
  const camera = {
    apiVersion: "vigil.dev/v1alpha1",
    kind: "CameraDetection",
    metadata: { name: "lobby" },
    spec: {
      source: { url: `rtsp://127.0.0.1:${rtspPort}/cam1` },
      poolRef: { name: "local" },
      detection: { targetFps: 5 },
      zones: [
        {
          name: "floor",
          polygon: [
            [0, 0],
            [1, 0],
            [1, 1],
            [0, 1],
          ],
        },
      ],
      rules: [
        // One event per new person (a new track), warning: each is an alarm.
        { name: "entered", severity: "warning", cooldownSeconds: 600, presence: { zone: "floor" } },
        // The same persons at info, below minSeverity: events on the bus, never alarms.
        { name: "seen", severity: "info", cooldownSeconds: 600, presence: { zone: "floor" } },
      ],
      alarm: {
        minSeverity: "warning",
        clip: { preSeconds: 3, postSeconds: 4 },
        dedupWindowSeconds: 45,
        webhookSecretRef: { name: "lobby-hook" },
      },
    },
  };
  writeFileSync(file, stringify(camera));
  return file;
}

/** The test consumer's channel and consumer tag, to pause it (messages then stay in the queue). */
let consuming: { ch: Channel; tag?: string } | undefined;

/** Reads the vigil.alarms queue with manual acks, reconnecting through amqplib's recovery like the worker. */
async function consume(url: string) {
  return amqp.connect(url, {
    recovery: {
      initialDelay: 200,
      maxDelay: 1000,
      async setup(model: ChannelModel) {
        const ch = await model.createChannel();
        await declareAlarmTopology(ch);
        await ch.prefetch(100);
        consuming = { ch };
        await resume();
      },
    },
  });
}

async function resume() {
  if (!consuming) return;
  const ch = consuming.ch;
  consuming.tag = (
    await ch.consume(ALARM_TOPOLOGY.queue, (msg) => {
      if (!msg) return;
      const r = parseMessage(alarmMessage, msg.content.toString());
      if (!r.ok) malformed.push(r.error);
      else if (msg.properties.messageId !== r.value.id) malformed.push(`messageId ${msg.properties.messageId}`);
      else if (msg.properties.deliveryMode !== 2) malformed.push(`${r.value.id}: not persistent`);
      else if (msg.fields.routingKey !== "alarm.default.lobby") malformed.push(`key ${msg.fields.routingKey}`);
      else deliveries.push({ alarm: r.value, redelivered: msg.fields.redelivered, at: Date.now() });
      ch.ack(msg);
    })
  ).consumerTag;
}

async function startAlarmWorker(rtspPort: number, env: Record<string, string>) {
  const w = await startWorker(["--cameras", manifest(rtspPort)], redis.port, { VIGIL_CLIP_DIR: clipDir, ...env }, logs);
  worker = w.proc;
  workerPort = w.port;
}

async function stopWorker(): Promise<number | null> {
  const w = worker;
  worker = undefined;
  if (!w || w.exitCode !== null) return w?.exitCode ?? null;
  const exited = exitOf(w).then((e) => e.code);
  w.kill("SIGTERM");
  return exited;
}

beforeAll(async () => {
  [redis, rtsp, rabbit] = await Promise.all([startRedis(), startRtsp(VIDEO), startRabbitMQ()]);
  sub = new Redis(redis.port, "127.0.0.1");
  await sub.subscribe(CHANNELS.stats, CHANNELS.events);
  sub.on("message", (channel, raw) => {
    if (channel === CHANNELS.stats) {
      const r = parseMessage(statsMessage, raw);
      if (r.ok) stats.push(r.value);
    } else {
      const r = parseMessage(eventMessage, raw);
      if (r.ok) events.push(r.value);
      else malformed.push(r.error);
    }
  });
  consumer = await consume(rabbit.url);
  // The broker is killed on purpose: its connection errors are expected, and recovery reconnects.
  consumer.on("error", () => undefined);
  await startAlarmWorker(rtsp.port, { RABBITMQ_URL: rabbit.url });
}, 120_000);

afterAll(async () => {
  await stopWorker();
  // The workers' logs, for a failure's post-mortem.
  mkdirSync(join(ROOT, ".cache", "artifacts"), { recursive: true });
  writeFileSync(join(ROOT, ".cache", "artifacts", "worker-alarms.log"), logs.join(""));
  await consumer?.close().catch(() => undefined);
  sub?.disconnect();
  await rtsp?.stop("SIGKILL");
  await rabbit?.destroy();
  await redis?.stop();
  rmSync(clipDir, { recursive: true, force: true });
});

describe("worker → RabbitMQ alarms", () => {
  it("publishes an alarm per warning event, with the event's id and a JPEG snapshot in the clip store", {
    timeout: 90_000,
  }, async () => {
    await waitFor("three alarms on the queue", async () => alarmIds().size >= 3, 60_000);
    // Both ways: the worker publishes an alarm before its bus event (the event waits for nothing more, but the two
    // travel apart, RabbitMQ and Redis), so the last alarm may arrive first.
    // What is checked is a snapshot of both taken when they agree: alarms go on arriving while the loop below awaits.
    const { checked, byId } = await waitFor(
      "every warning event's alarm and every alarm's bus event",
      async () => {
        const byId = new Map(events.map((e) => [e.id, e]));
        const checked = deliveries.slice();
        const ids = new Set(checked.map((d) => d.alarm.id));
        const agree = alarmEvents().every((e) => ids.has(e.id)) && checked.every((d) => byId.has(d.alarm.id));
        return agree && { checked, byId };
      },
      20_000,
    );
    const sizes: number[] = [];
    for (const { alarm } of checked) {
      const e = byId.get(alarm.id);
      expect(e, `bus event of ${alarm.id}`).toBeDefined();
      expect(alarm).toMatchObject({
        camera_id: CAMERA,
        rule: "entered",
        kind: "presence",
        severity: "warning",
        track_id: e!.track_id,
        zone: "floor",
        box: e!.box,
        timestamp: new Date(Date.parse(e!.timestamp)).toISOString(),
        dedup_window_seconds: 45,
        webhook_secret: "lobby-hook",
        clip: { key: alarmObjectKeys(alarm.id).clip, pre_seconds: 3, post_seconds: 4 },
      });
      // The snapshot was in the store before either message went out: both carry its key.
      expect(alarm.snapshot_key).toBe(alarmObjectKeys(alarm.id).snapshot);
      expect(e!.snapshot_key).toBe(alarm.snapshot_key);
      const obj = await store.stat(alarm.snapshot_key!);
      expect(obj?.size).toBeGreaterThan(1000);
      sizes.push(obj!.size);
      const chunks: Buffer[] = [];
      for await (const c of store.read(alarm.snapshot_key!)) chunks.push(c as Buffer);
      const meta = await sharp(Buffer.concat(chunks)).metadata();
      expect(meta.format).toBe("jpeg");
      expect(meta.width).toBeGreaterThan(300);
    }
    // Below minSeverity: events on the bus, no alarm, no snapshot.
    const info = events.filter((e) => e.rule === "seen");
    expect(info.length).toBeGreaterThan(0);
    for (const e of info) expect(e.snapshot_key).toBeNull();
    expect(deliveries.some((d) => d.alarm.rule === "seen")).toBe(false);
    expect(malformed).toEqual([]);
    // The broker confirms to the worker and delivers to us independently, and alarms go on coming: the counter and
    // what we received agree at some moment, not at any given read.
    const m = await waitFor("confirmed alarms = alarms received", async () => {
      const m = await metrics();
      return metricValue(m, "vigil_alarms_confirmed_total") === alarmIds().size && m;
    });
    expect(metricValue(m, "vigil_alarms_broker_connected")).toBe(1);
    const kb = Math.round(sizes.reduce((a, b) => a + b, 0) / sizes.length / 1024);
    console.log(`alarms before the outage: ${alarmIds().size} (bus events: ${events.length}), snapshots ~${kb} KB`);
  });

  it("has the clip service cut alarms' replay clips into the store, covering pre + post", {
    timeout: 90_000,
  }, async () => {
    // Alarms in the first seconds of the stream get a clip from where the recording began, its pre-roll shortened
    // (window.ts shortenedPreRoll); later ones get the whole pre-roll.
    const clipped = await waitFor(
      "two alarms' clips in the store",
      async () => {
        const have = [];
        for (const { alarm } of deliveries) if (await store.stat(alarm.clip.key)) have.push(alarm);
        return have.length >= 2 && have.slice(0, 2);
      },
      60_000,
      500,
    );
    let shortened = 0;
    for (const a of clipped) {
      const { stdout } = await promisify(execFile)("ffprobe", [
        "-v",
        "error",
        "-show_entries",
        "format=duration:stream=codec_name",
        "-of",
        "json",
        join(clipDir, ...a.clip.key.split("/")),
      ]);
      const probe = JSON.parse(stdout) as { format: { duration: string }; streams: { codec_name: string }[] };
      const meta = await readClipMeta(store, a.clip.key);
      const eventMs = Date.parse(a.timestamp);
      expect(meta).toBeDefined();
      // The whole post-roll always; the whole pre-roll unless the recording began after t − pre.
      expect(meta!.start_ms + meta!.duration_s * 1000).toBeGreaterThanOrEqual(eventMs + a.clip.post_seconds * 1000 - 1);
      expect(meta!.start_ms).toBeLessThanOrEqual(eventMs);
      if (meta!.start_ms > eventMs - a.clip.pre_seconds * 1000) shortened++;
      // Never short of what it holds; the clip service's own test measures how much longer (up to a keyframe).
      else expect(Number(probe.format.duration)).toBeGreaterThanOrEqual(a.clip.pre_seconds + a.clip.post_seconds);
      expect(probe.streams.map((s) => s.codec_name)).toContain("h264");
    }
    // A clip is in the store at its rename; its counters move once the directory's fsync is done.
    const m = await waitFor("the clips counted", async () => {
      const m = await metrics();
      const ok = metricValue(m, "vigil_alarm_clips_total", 'result="ok"') >= clipped.length;
      return ok && metricValue(m, "vigil_alarm_clip_pre_roll_shortened_total") >= shortened && m;
    });
    expect(metricValue(m, "vigil_alarm_clip_errors_total")).toBe(0);
  });

  it("keeps detecting while RabbitMQ is SIGKILLed, and drains the outbox when it is back: none lost", {
    timeout: 150_000,
  }, async () => {
    const before = alarmEvents().length;
    await rabbit.stop("SIGKILL");
    const killedAt = Date.now();
    // Alarms of events during the outage wait in the outbox; detection and the bus go on.
    await waitFor(
      "alarms waiting in the outbox",
      async () => metricValue(await metrics(), "vigil_alarms_outbox") >= 2,
      60_000,
      250,
    );
    await new Promise((r) => setTimeout(r, 3000));
    const downFor = Date.now() - killedAt;
    const during = stats.filter((s) => s.camera_id === CAMERA && Date.parse(s.timestamp) > killedAt);
    expect(during.length).toBeGreaterThanOrEqual(Math.floor(downFor / 1000) - 2);
    expect(during.at(-1)!.data.stream).toBe("streaming");
    expect(during.at(-1)!.data.fps).toBeGreaterThan(2);
    expect(alarmEvents().length).toBeGreaterThan(before);
    const m = await metrics();
    const pending = metricValue(m, "vigil_alarms_outbox");
    expect(metricValue(m, "vigil_alarms_broker_connected")).toBe(0);
    expect(metricValue(m, "vigil_alarms_outbox_overflow_total")).toBe(0);

    await rabbit.start();
    const upAt = Date.now();
    await waitFor("the outbox drained", async () => metricValue(await metrics(), "vigil_alarms_outbox") === 0, 60_000);
    const drainedAt = Date.now();
    const seen = alarmEvents().map((e) => e.id);
    // Counted over the events seen by now: later ones may be on the bus a few ms before their alarm reaches us.
    await waitFor("every alarm whose event was on the bus", async () => seen.every((id) => alarmIds().has(id)), 30_000)
      // The ones missing are counted (and asserted) below.
      .catch(() => undefined);
    const allSeenAt = Date.now();
    const lost = seen.filter((id) => !alarmIds().has(id)).length;
    // The worker counts an alarm when it enters its outbox and when the broker confirms it; both agree with what
    // reached us at some moment, not at any given read while alarms go on coming. If they never do (an alarm lost),
    // the last read is logged and asserted below.
    const agreed = await waitFor("the worker's counters agree with the alarms received", async () => {
      const after = await metrics();
      const received = deliveries.slice();
      const n = new Set(received.map((d) => d.alarm.id)).size;
      const agree =
        metricValue(after, "vigil_alarms_confirmed_total") === n &&
        metricValue(after, "vigil_alarms_published_total") === n;
      return agree && { after, received };
    }).catch(() => undefined);
    const after = agreed?.after ?? (await metrics());
    const received = agreed?.received ?? deliveries.slice();
    const counts = new Map<string, number>();
    for (const d of received) counts.set(d.alarm.id, (counts.get(d.alarm.id) ?? 0) + 1);
    const duplicated = [...counts.values()].reduce((n, c) => n + c - 1, 0);
    const redelivered = received.filter((d) => d.redelivered).length;
    console.log(
      JSON.stringify({
        outage_ms: upAt - killedAt,
        pending_at_restart: pending,
        drain_ms_after_broker_start: drainedAt - upAt,
        all_alarms_consumed_ms_after_start: allSeenAt - upAt,
        alarms: counts.size,
        alarm_events_on_bus: alarmEvents().length,
        lost,
        duplicated_deliveries: duplicated,
        broker_redeliveries: redelivered,
        worker_resends: metricValue(after, "vigil_alarms_resent_total"),
      }),
    );
    expect(lost).toBe(0);
    // Duplicates may only be the same alarm again (a confirm lost with the broker): same id, same content.
    for (const [id, n] of counts)
      if (n > 1) {
        const copies = received.filter((d) => d.alarm.id === id).map((d) => JSON.stringify(d.alarm));
        expect(new Set(copies).size).toBe(1);
      }
    expect(metricValue(after, "vigil_alarms_confirmed_total")).toBe(counts.size);
    expect(metricValue(after, "vigil_alarms_published_total")).toBe(counts.size);
    expect(metricValue(after, "vigil_alarms_broker_connected")).toBe(1);
    expect(malformed).toEqual([]);
  });

  it("sends a nacked alarm again until the broker takes it (the queue over a length limit)", {
    timeout: 90_000,
  }, async () => {
    const resentBefore = metricValue(await metrics(), "vigil_alarms_resent_total");
    const taken = alarmIds().size;
    // Consumer paused, and a policy capping the queue at 0 with x-overflow reject-publish (the topology's): the
    // first alarm is queued, every later one nacked, until the policy goes.
    await consuming!.ch.cancel(consuming!.tag!);
    rabbit.ctl("set_policy", "--apply-to", "queues", "alarms-full", "^vigil\\.alarms$", '{"max-length":0}');
    await waitFor(
      "nacked alarms sent again",
      async () => metricValue(await metrics(), "vigil_alarms_resent_total") >= resentBefore + 2,
      60_000,
      250,
    );
    const m = await metrics();
    expect(metricValue(m, "vigil_alarms_outbox")).toBeGreaterThanOrEqual(1);
    expect(metricValue(m, "vigil_alarms_broker_connected")).toBe(1); // a nack is not a broken connection
    // Debian's 3.10 keeps a quorum queue's limit after its policy is cleared (measured: still nacking 3 s on), so
    // the limit is lifted by a policy first.
    rabbit.ctl("set_policy", "--apply-to", "queues", "alarms-full", "^vigil\\.alarms$", '{"max-length":1000000}');
    rabbit.ctl("clear_policy", "alarms-full");
    await resume();
    await waitFor("the outbox drained", async () => metricValue(await metrics(), "vigil_alarms_outbox") === 0, 30_000);
    await waitFor(
      "every alarm whose event was on the bus",
      async () => alarmEvents().every((e) => alarmIds().has(e.id)),
      30_000,
    );
    expect(alarmIds().size).toBeGreaterThan(taken);
    const counts = new Map<string, number>();
    for (const d of deliveries) counts.set(d.alarm.id, (counts.get(d.alarm.id) ?? 0) + 1);
    console.log(
      JSON.stringify({
        nack_phase_resends: metricValue(await metrics(), "vigil_alarms_resent_total") - resentBefore,
        alarms: counts.size,
        duplicated_deliveries: [...counts.values()].reduce((n, c) => n + c - 1, 0),
      }),
    );
    expect(malformed).toEqual([]);
  });

  it("stops on SIGTERM with the outbox drained", { timeout: 60_000 }, async () => {
    expect(await stopWorker()).toBe(0);
    expect(logs.join("")).toContain("worker stopped");
    expect(logs.join("")).not.toContain("unconfirmed alarms");
    expect(logs.join("")).not.toContain("guest:guest");
  });

  it("counts what overflows a small outbox while the broker is unreachable, and still detects", {
    timeout: 120_000,
  }, async () => {
    // A fresh stream from the start of the video, and a broker address nobody listens on.
    await rtsp.stop("SIGKILL");
    rtsp = await startRtsp(VIDEO);
    const nobody = await freePort();
    // This worker's events: those arriving from now on (an event's own time is its frame's, not its arrival's).
    const firstEvent = events.length;
    await startAlarmWorker(rtsp.port, {
      RABBITMQ_URL: `amqp://guest:guest@127.0.0.1:${nobody}`,
      VIGIL_ALARM_OUTBOX_MAX: "3",
    });
    await waitFor(
      "alarms overflowing the outbox",
      async () => metricValue(await metrics(), "vigil_alarms_outbox_overflow_total") >= 1,
      90_000,
      250,
    );
    // A settled moment: every alarm raised is either in the outbox or counted as overflow (none mid-snapshot).
    const m = await waitFor(
      "raised = kept + overflowed",
      async () => {
        const m = await metrics();
        const raised = metricValue(m, "vigil_alarms_raised_total");
        const settled = metricValue(m, "vigil_alarms_outbox") + metricValue(m, "vigil_alarms_outbox_overflow_total");
        const onBus = events.slice(firstEvent).filter((e) => e.rule === "entered").length;
        if (raised === settled && onBus === raised) return m;
        throw new Error(JSON.stringify({ raised, settled, onBus })); // waitFor's timeout message carries it
      },
      20_000,
      50,
    );
    const raised = metricValue(m, "vigil_alarms_raised_total");
    expect(metricValue(m, "vigil_alarms_outbox")).toBe(3);
    expect(metricValue(m, "vigil_alarms_outbox_overflow_total")).toBe(raised - 3);
    expect(metricValue(m, "vigil_alarms_confirmed_total")).toBe(0);
    expect(metricValue(m, "vigil_alarms_broker_connected")).toBe(0);
    // Detection goes on with the outbox full: stats keep coming, frames keep being processed.
    const fullAt = Date.now();
    const framesAt = (stats.filter((s) => s.camera_id === CAMERA).at(-1)?.data.frames ?? 0) as number;
    await waitFor(
      "stats after the outbox filled",
      async () =>
        stats.filter(
          (s) =>
            s.camera_id === CAMERA &&
            Date.parse(s.timestamp) > fullAt &&
            s.data.stream === "streaming" &&
            s.data.fps > 0,
        ).length >= 3,
      20_000,
    );
    expect(stats.filter((s) => s.camera_id === CAMERA).at(-1)!.data.frames).toBeGreaterThan(framesAt);
    // The events still reach the bus, with their snapshots.
    const overflowEvents = events.slice(firstEvent).filter((e) => e.rule === "entered");
    for (const e of overflowEvents) expect(e.snapshot_key).not.toBeNull();
    console.log(`small outbox: ${raised} alarms raised, 3 kept, ${raised - 3} overflowed`);
    // A stop gives up on the unreachable broker after its drain timeout, and says how many it could not send.
    expect(await stopWorker()).toBe(0);
    expect(logs.join("")).toMatch(/"lost":3.*alarm publisher closed with unconfirmed alarms/);
  });
});
