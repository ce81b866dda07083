// `vigil alarms` end to end: real RabbitMQ and MariaDB (Debian's, test/setup/brokers.ts), a real verifying webhook
// receiver (standardwebhooks, test/setup/webhook-receiver.ts), the service as a real child process, and the test
// in the worker's place: it publishes alarm messages straight to the exchange on a confirm channel and puts the
// clips (a real MP4 cut once from vtest.avi) into the filesystem clip store itself.
//
// Every case that delivers asserts the invariants: every alarm delivered, one MySQL row per alarm, one
// webhook-id per delivery type per alarm at the receiver (a repeat only ever with that same id, and counted by
// vigil_alarm_webhook_repeats_total), and, once the service stopped, nothing left in the queue (ack came last).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import mysql from "mysql2/promise";
import { Registry } from "prom-client";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { createFsClipStore } from "../../alarms/clips/fs-store.ts";
import { clipFailureKey } from "../../alarms/clips/store.ts";
import { type AlarmMessage, DELIVERY_TYPES, type DeliveryType } from "../../alarms/messages.ts";
import { createSqliteAlarmPublisher } from "../../alarms/sqlite-queue.ts";
import { webhookId } from "../../alarms/webhook/sign.ts";
import type { AssessmentTask } from "../../assessor/messages.ts";
import { alarmOfResult } from "../../assessor/raise-alarm.ts";
import { type AlarmServiceProc, alarmFixture, alarmQueueClient, startAlarmService } from "../setup/alarm-service.ts";
import { type Broker, startMariaDB, startRabbitMQ } from "../setup/brokers.ts";
import { admin, cameraManifest, createCr, freshNamespace, waitFor } from "../setup/kube.ts";
import { FIXTURES } from "../setup/services.ts";
import { type Received, startWebhookReceiver, type WebhookReceiver } from "../setup/webhook-receiver.ts";

let rmq: Broker & { ctl(...args: string[]): string };
let maria: Broker;
let q: Awaited<ReturnType<typeof alarmQueueClient>>;
let db: mysql.Pool;
let dir: string;
let clipBytes: Buffer;
const store = () => createFsClipStore(join(dir, "clips"));
const running: AlarmServiceProc[] = [];
const receivers: WebhookReceiver[] = [];

beforeAll(async () => {
  [rmq, maria] = await Promise.all([startRabbitMQ(), startMariaDB()]);
  q = await alarmQueueClient(rmq.url);
  db = mysql.createPool({ uri: maria.url, connectionLimit: 2 });
  dir = mkdtempSync(join(tmpdir(), "vigil-alarm-service-"));
  // A real replay clip, as a worker would cut it: 2 s of vtest.avi in H.264, faststart.
  const clip = join(dir, "clip.mp4");
  execFileSync("ffmpeg", [
    ...["-v", "error", "-y", "-i", join(FIXTURES, "vtest.avi"), "-t", "2", "-an"],
    ...["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", clip],
  ]);
  clipBytes = readFileSync(clip);
}, 120_000);

afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop("SIGKILL")));
  await Promise.all(receivers.splice(0).map((r) => r.close()));
});

afterAll(async () => {
  await q?.close().catch(() => {});
  await db?.end().catch(() => {});
  await Promise.all([rmq?.destroy(), maria?.destroy()]);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Short clip waits, claims and webhook backoff, so each case takes seconds. */
const baseEnv = (extra: Record<string, string> = {}): Record<string, string> => ({
  RABBITMQ_URL: rmq.url,
  MYSQL_URL: maria.url,
  VIGIL_CLIP_DIR: join(dir, "clips"),
  VIGIL_ALARMS_CLIP_POLL_MS: "100",
  VIGIL_ALARMS_CLIP_GRACE_MS: "60000",
  VIGIL_ALARMS_CLAIM_MS: "3000",
  VIGIL_ALARMS_SECRET_RECHECK_MS: "500",
  VIGIL_ALARMS_WEBHOOK_ATTEMPTS: "30",
  VIGIL_ALARMS_WEBHOOK_BACKOFF_MS: "100",
  VIGIL_ALARMS_WEBHOOK_MAX_BACKOFF_MS: "500",
  VIGIL_ALARMS_WEBHOOK_TIMEOUT_MS: "5000",
  ...extra,
});

async function service(env: Record<string, string>, args: string[] = []): Promise<AlarmServiceProc> {
  const s = await startAlarmService(env, args);
  running.push(s);
  return s;
}

/** A receiver, and a manifests file whose Secret `<ns>/hook` names it (single-host Secrets). */
async function receiverFor(ns: string): Promise<{ receiver: WebhookReceiver; args: string[] }> {
  const receiver = await startWebhookReceiver();
  receivers.push(receiver);
  const file = join(dir, `${ns}.yaml`);
  writeFileSync(
    file,
    [
      "apiVersion: v1",
      "kind: Secret",
      `metadata: { name: hook, namespace: ${ns} }`,
      `stringData: { url: "${receiver.url}", secret: "${receiver.secret}" }`,
      "",
    ].join("\n"),
  );
  return { receiver, args: ["--manifests", file] };
}

const putClip = (m: AlarmMessage) => store().put(m.clip.key, { bytes: clipBytes }, "video/mp4");

const of = (r: Received) => (r.body as { data?: { id?: string } } | undefined)?.data?.id;
const receipts = (rx: WebhookReceiver, id: string, type: DeliveryType) =>
  rx.received.filter((r) => r.type === type && of(r) === id);
const accepted = (rx: WebhookReceiver, id: string, type: DeliveryType) =>
  receipts(rx, id, type).some((r) => r.status >= 200 && r.status < 300);

type Row = { id: string; status: string; completed_ms: number | null; dead_reason: string | null } & Record<
  string,
  unknown
>;
async function rows(ids: string[]): Promise<Row[]> {
  if (!ids.length) return [];
  const [r] = await db.query("SELECT * FROM alarms WHERE id IN (?)", [ids]);
  return r as Row[];
}
async function attemptRows(id: string) {
  const [r] = await db.query("SELECT * FROM alarm_deliveries WHERE alarm_id = ? ORDER BY id", [id]);
  return r as { type: string; webhook_id: string; status_code: number | null; finished_ms: number | null }[];
}

const allDelivered = (rx: WebhookReceiver, ms: AlarmMessage[]) => async () =>
  ms.every((m) => accepted(rx, m.id, "alarm.clip")) &&
  (await rows(ms.map((m) => m.id))).filter((r) => r.completed_ms !== null).length === ms.length;

/**
 * The invariants of every delivering case. Returns the repeats the receiver saw: receipts of a webhook-id after
 * one it had already accepted (retries before the first acceptance are not repeats).
 */
async function expectDelivered(rx: WebhookReceiver, ms: AlarmMessage[]): Promise<number> {
  let repeats = 0;
  expect(rx.received.filter((r) => !r.verified || r.schemaError)).toEqual([]);
  for (const m of ms) {
    for (const type of DELIVERY_TYPES) {
      const got = receipts(rx, m.id, type);
      expect(new Set(got.map((r) => r.webhookId)), `${m.id} ${type}`).toEqual(new Set([webhookId(m.id, type)]));
      const first = got.findIndex((r) => r.status >= 200 && r.status < 300);
      expect(first, `${m.id} ${type} accepted`).toBeGreaterThanOrEqual(0);
      repeats += got.length - first - 1;
    }
    const raisedAt = receipts(rx, m.id, "alarm.raised").find((r) => r.status < 300)?.at ?? Infinity;
    const clipAt = receipts(rx, m.id, "alarm.clip").find((r) => r.status < 300)?.at ?? -Infinity;
    expect(raisedAt).toBeLessThanOrEqual(clipAt);
    const attempts = await attemptRows(m.id);
    for (const type of DELIVERY_TYPES)
      expect(attempts.some((a) => a.type === type && a.status_code !== null && a.status_code < 300)).toBe(true);
  }
  const r = await rows(ms.map((m) => m.id));
  expect(r.length).toBe(ms.length);
  expect(r.every((x) => x.status === "delivered" && x.completed_ms !== null)).toBe(true);
  return repeats;
}

/** Stops the services gracefully; whatever they had not acked returns to the queue then, so it must be empty. */
async function expectQueueDrained(...svcs: AlarmServiceProc[]) {
  for (const s of svcs) expect((await s.stop("SIGTERM")).code).toBe(0);
  expect(await q.ready()).toBe(0);
}

const repeatsOf = async (s: AlarmServiceProc) => s.metric("vigil_alarm_webhook_repeats_total");

describe("vigil alarms", () => {
  it("delivers alarm.raised at once and alarm.clip when the clip is ready, signed, recorded, acked last", async () => {
    const { receiver, args } = await receiverFor("happy");
    const s = await service(baseEnv(), args);
    const ms = [1, 2, 3].map((t) => alarmFixture("happy", t));
    await q.publish(...ms);
    await waitFor("alarm.raised of all three", async () => ms.every((m) => accepted(receiver, m.id, "alarm.raised")));
    // No clip in the store yet: only the raised deliveries went out, and the alarms are not complete.
    expect(receiver.verified("alarm.clip")).toEqual([]);
    expect((await rows(ms.map((m) => m.id))).every((r) => r.completed_ms === null)).toBe(true);
    for (const m of ms) await putClip(m);
    await waitFor("every alarm complete", allDelivered(receiver, ms));
    expect(await expectDelivered(receiver, ms)).toBe(0);

    const raised = receipts(receiver, ms[0]!.id, "alarm.raised")[0]!.body as any;
    expect(raised.data.snapshot.key).toBe(ms[0]!.snapshot_key);
    expect(raised.data.camera).toEqual({ id: "happy/cam", namespace: "happy", name: "cam" });
    const clip = receipts(receiver, ms[0]!.id, "alarm.clip")[0]!.body as any;
    expect(clip.data.clip.key).toBe(ms[0]!.clip.key);
    expect(await s.metric("vigil_alarm_deliveries_total", 'result="delivered"')).toBe(6);
    expect(await s.metric("vigil_alarm_raised_latency_seconds_count")).toBe(3);
    expect(await s.metric("vigil_alarm_clip_latency_seconds_count")).toBe(3);
    expect(await repeatsOf(s)).toBe(0);
    await expectQueueDrained(s);
    // The signing secret never reaches the logs (nor any part of it past the prefix).
    expect(s.logs.join("")).not.toContain(receiver.secret.slice("whsec_".length, "whsec_".length + 12));
  });

  describe("kill -9 of the service", () => {
    it("after alarm.raised was accepted, before it was recorded: resent once with the same webhook-id, counted", async () => {
      const { receiver, args } = await receiverFor("crash-raised");
      const m = alarmFixture("crash-raised", 1);
      await putClip(m);
      const first = await service(baseEnv({ VIGIL_ALARMS_TEST_CRASH_AT: "raised-sent" }), args);
      await q.publish(m);
      expect((await first.exited).signal).toBe("SIGKILL");
      expect(receipts(receiver, m.id, "alarm.raised").length).toBe(1);
      expect((await rows([m.id]))[0]?.raised_delivered_ms).toBeNull();

      const second = await service(baseEnv(), args);
      await waitFor("alarm complete after the restart", allDelivered(receiver, [m]), 30_000);
      expect(await expectDelivered(receiver, [m])).toBe(1);
      expect(await second.metric("vigil_alarm_webhook_repeats_total", 'type="alarm.raised"')).toBe(1);
      expect(await repeatsOf(second)).toBe(1);
      await expectQueueDrained(second);
    });

    it("while waiting for the clip: resumes waiting, alarm.raised is not sent again", async () => {
      const { receiver, args } = await receiverFor("crash-wait");
      const m = alarmFixture("crash-wait", 1);
      const first = await service(baseEnv({ VIGIL_ALARMS_TEST_CRASH_AT: "clip-wait" }), args);
      await q.publish(m);
      expect((await first.exited).signal).toBe("SIGKILL");
      const [row] = await rows([m.id]);
      expect(row?.raised_delivered_ms).not.toBeNull();
      expect(row?.clip_ready_ms).toBeNull();

      const second = await service(baseEnv(), args);
      await new Promise((r) => setTimeout(r, 1_000));
      await putClip(m);
      await waitFor("alarm complete after the restart", allDelivered(receiver, [m]), 30_000);
      expect(await expectDelivered(receiver, [m])).toBe(0);
      expect(receipts(receiver, m.id, "alarm.raised").length).toBe(1);
      expect(await repeatsOf(second)).toBe(0);
      await expectQueueDrained(second);
    });

    it("after alarm.clip was accepted, before the record: resent once with the same webhook-id, counted", async () => {
      const { receiver, args } = await receiverFor("crash-clip");
      const m = alarmFixture("crash-clip", 1);
      await putClip(m);
      const first = await service(baseEnv({ VIGIL_ALARMS_TEST_CRASH_AT: "clip-sent" }), args);
      await q.publish(m);
      expect((await first.exited).signal).toBe("SIGKILL");
      expect(receipts(receiver, m.id, "alarm.clip").length).toBe(1);
      const [row] = await rows([m.id]);
      expect(row?.clip_delivered_ms).toBeNull();
      expect(row?.completed_ms).toBeNull();

      const second = await service(baseEnv(), args);
      await waitFor("alarm complete after the restart", allDelivered(receiver, [m]), 30_000);
      expect(await expectDelivered(receiver, [m])).toBe(1);
      expect(receipts(receiver, m.id, "alarm.raised").length).toBe(1);
      expect(await second.metric("vigil_alarm_webhook_repeats_total", 'type="alarm.clip"')).toBe(1);
      expect(await repeatsOf(second)).toBe(1);
      await expectQueueDrained(second);
    });
  });

  it("SIGTERM while waiting for the clip: exits at once without acking, the next replica finishes it", async () => {
    const { receiver, args } = await receiverFor("term");
    const m = alarmFixture("term", 1);
    const first = await service(baseEnv(), args);
    await q.publish(m);
    // Recorded, not only accepted: a stop between the receiver's 2xx and the record makes an honest repeat.
    await waitFor("alarm.raised recorded", async () => (await rows([m.id]))[0]?.raised_delivered_ms != null);
    expect(await first.stop("SIGTERM")).toEqual({ code: 0, signal: null });
    // Unacked, so back in the queue once the broker has handled the closed channel (its own step, after the exit).
    await waitFor("the alarm back in the queue", async () => (await q.ready()) === 1, 5000);
    await putClip(m);
    const second = await service(baseEnv(), args);
    await waitFor("alarm complete", allDelivered(receiver, [m]), 30_000);
    expect(await expectDelivered(receiver, [m])).toBe(0);
    await expectQueueDrained(second);
  });

  it("embedded queue and records (node:sqlite, as under vigil up): kill -9 after alarm.raised, resumed", async () => {
    const { receiver, args } = await receiverFor("embedded");
    const queueFile = join(dir, "queue.db");
    const recordsFile = join(dir, "records.db");
    const env = {
      VIGIL_ALARM_QUEUE: queueFile,
      VIGIL_ALARMS_DB: recordsFile,
      VIGIL_ALARMS_LEASE_MS: "1500",
      ...Object.fromEntries(Object.entries(baseEnv()).filter(([k]) => k !== "RABBITMQ_URL" && k !== "MYSQL_URL")),
    };
    const ms = [1, 2].map((t) => alarmFixture("embedded", t));
    for (const m of ms) await putClip(m);
    const pub = createSqliteAlarmPublisher(queueFile, new Registry());
    const first = await service({ ...env, VIGIL_ALARMS_TEST_CRASH_AT: "raised-sent" }, args);
    for (const m of ms) pub.publish(m);
    await pub.close();
    expect((await first.exited).signal).toBe("SIGKILL");
    const second = await service(env, args);
    const sqlite = new DatabaseSync(recordsFile);
    try {
      await waitFor("both complete", async () => {
        const done = sqlite.prepare("SELECT count(*) AS n FROM alarms WHERE completed_ms IS NOT NULL").get() as {
          n: number;
        };
        return done.n === 2 && ms.every((m) => accepted(receiver, m.id, "alarm.clip"));
      });
      const all = sqlite.prepare("SELECT id, status FROM alarms ORDER BY id").all();
      expect(all).toEqual(ms.map((m) => ({ id: m.id, status: "delivered" })).sort((a, b) => (a.id < b.id ? -1 : 1)));
    } finally {
      sqlite.close();
    }
    for (const m of ms)
      for (const type of DELIVERY_TYPES)
        expect(new Set(receipts(receiver, m.id, type).map((r) => r.webhookId))).toEqual(
          new Set([webhookId(m.id, type)]),
        );
    // The crash came after one alarm.raised was accepted (the other may have been in flight): each resent one counted.
    const dup = ms.reduce((n, m) => n + receipts(receiver, m.id, "alarm.raised").length - 1, 0);
    expect(dup).toBeGreaterThanOrEqual(1);
    expect(await repeatsOf(second)).toBeGreaterThanOrEqual(dup);
    expect((await second.stop("SIGTERM")).code).toBe(0);
    const left = new DatabaseSync(queueFile);
    expect(left.prepare("SELECT count(*) AS n FROM alarm_queue").get()).toEqual({ n: 0 });
    left.close();
  });

  it("MariaDB down for 30 s: nothing is acked meanwhile, then every alarm is recorded", async () => {
    const { receiver, args } = await receiverFor("dbdown");
    const s = await service(baseEnv(), args);
    await waitFor("service ready", async () => (await fetch(`http://127.0.0.1:${s.port}/readyz`)).ok);
    const ms = [1, 2, 3, 4].map((t) => alarmFixture("dbdown", t));
    for (const m of ms) await putClip(m);
    await maria.stop();
    const downAt = Date.now();
    await q.publish(...ms);
    const unacked = () => {
      const queues = JSON.parse(rmq.ctl("list_queues", "name", "messages_unacknowledged", "--formatter", "json")) as {
        name: string;
        messages_unacknowledged: number;
      }[];
      return queues.find((x) => x.name === "vigil.alarms")?.messages_unacknowledged;
    };
    // The broker's queue statistics lag by a few seconds; once they show the four unacked, they must stay so.
    await waitFor("four deliveries unacked", async () => unacked() === 4, 20_000, 500);
    while (Date.now() - downAt < 30_000) {
      expect(unacked()).toBe(4);
      expect(await q.ready()).toBe(0);
      expect(await s.metric("vigil_alarms_in_flight")).toBe(4);
      await new Promise((r) => setTimeout(r, 2_000));
    }
    // Nothing was sent either: admit comes first, and it needs the database.
    expect(receiver.received).toEqual([]);
    expect(await s.metric("vigil_alarms_record_retries_total")).toBeGreaterThan(0);
    await maria.start();
    await waitFor("every alarm recorded", allDelivered(receiver, ms), 60_000);
    expect(await expectDelivered(receiver, ms)).toBe(0);
    await expectQueueDrained(s);
  }, 150_000);

  it("webhook answering 500 for a while, then 200: retried with the same webhook-id, delivered once accepted", async () => {
    const { receiver, args } = await receiverFor("flaky");
    receiver.setStatus(500);
    const s = await service(baseEnv(), args);
    const ms = [1, 2].map((t) => alarmFixture("flaky", t));
    for (const m of ms) await putClip(m);
    await q.publish(...ms);
    await waitFor("three 500s per alarm", async () =>
      ms.every((m) => receipts(receiver, m.id, "alarm.raised").length >= 3),
    );
    receiver.setStatus(200);
    await waitFor("every alarm complete", allDelivered(receiver, ms));
    expect(await expectDelivered(receiver, ms)).toBe(0);
    const attempts = await attemptRows(ms[0]!.id);
    expect(attempts.filter((a) => a.type === "alarm.raised" && a.status_code === 500).length).toBeGreaterThanOrEqual(3);
    expect(await s.metric("vigil_alarm_webhook_retries_total")).toBeGreaterThanOrEqual(6);
    expect(await repeatsOf(s)).toBe(0);
    await expectQueueDrained(s);
  });

  it("webhook down for good, short budget: the alarm reaches the DLQ with the reason", async () => {
    const { receiver, args } = await receiverFor("down");
    await receiver.down();
    const s = await service(baseEnv({ VIGIL_ALARMS_WEBHOOK_ATTEMPTS: "3" }), args);
    const m = alarmFixture("down", 1);
    await q.publish(m);
    // In the DLQ (the gauge reads its depth from the broker), before this test drains it.
    await waitFor("DLQ depth", async () => (await s.metric("vigil_alarms_dlq_depth")) >= 1);
    const dead = await waitFor("dead-lettered", async () => (await q.deadLettered()).find((d) => d.id === m.id));
    expect(dead.reason).toMatch(/^alarm\.raised not delivered \(.*3 attempts.*\): network error: /);
    expect(JSON.parse(dead.body)).toEqual(m);
    const [row] = await rows([m.id]);
    expect(row?.status).toBe("dead");
    expect(row?.dead_reason).toBe(dead.reason);
    expect((await attemptRows(m.id)).length).toBe(3);
    expect(await s.metric("vigil_alarms_dead_lettered_total", 'reason="delivery_failed"')).toBe(1);
    expect(await s.metric("vigil_alarm_deliveries_total", 'result="exhausted"')).toBe(1);
    await expectQueueDrained(s);
  });

  it("a clip that never appears: dead-lettered past its window and grace, with the reason", async () => {
    const { receiver, args } = await receiverFor("noclip");
    const s = await service(baseEnv({ VIGIL_ALARMS_CLIP_GRACE_MS: "1500" }), args);
    const m = alarmFixture("noclip", 1, { post: 1 });
    await q.publish(m);
    const dead = await waitFor("dead-lettered", async () => (await q.deadLettered()).find((d) => d.id === m.id));
    expect(dead.reason).toMatch(
      /^clip never ready: not in the store \d+ s after the event \(post-roll 1 s \+ 2 s grace\)$/,
    );
    // alarm.raised went out; alarm.clip never did.
    expect(accepted(receiver, m.id, "alarm.raised")).toBe(true);
    expect(receipts(receiver, m.id, "alarm.clip")).toEqual([]);
    const [row] = await rows([m.id]);
    expect(row?.status).toBe("dead");
    expect(row?.raised_delivered_ms).not.toBeNull();
    expect(await s.metric("vigil_alarms_dead_lettered_total", 'reason="clip_never_ready"')).toBe(1);
    await expectQueueDrained(s);
  });

  it("a clip its worker could not cut: dead-lettered at once with the worker's reason, not after the deadline", async () => {
    const { receiver, args } = await receiverFor("cutfail");
    // A deadline far away: only the worker's note can end the wait within this test.
    const s = await service(baseEnv({ VIGIL_ALARMS_CLIP_GRACE_MS: "600000" }), args);
    const m = alarmFixture("cutfail", 1, { post: 1 });
    await q.publish(m);
    await waitFor("alarm.raised", async () => accepted(receiver, m.id, "alarm.raised"));
    const reason = "the recorder's buffer no longer covers the window";
    await store().put(
      clipFailureKey(m.clip.key),
      { bytes: Buffer.from(JSON.stringify({ reason })) },
      "application/json",
    );
    const dead = await waitFor("dead-lettered", async () => (await q.deadLettered()).find((d) => d.id === m.id));
    expect(dead.reason).toBe(`clip unavailable: ${reason}`);
    expect(receipts(receiver, m.id, "alarm.clip")).toEqual([]);
    expect((await rows([m.id]))[0]?.status).toBe("dead");
    await expectQueueDrained(s);
  });

  it("sweeps the clip store by age, then by total size, and counts what it removed", async () => {
    const clips = join(dir, "retention");
    const st = createFsClipStore(clips);
    const mb = Buffer.alloc(1 << 20, 1);
    await st.put("ns/cam/old_1_1.mp4", { bytes: mb }, "video/mp4");
    // Two hours old, as a clip kept from the day before would be.
    const then = new Date(Date.now() - 2 * 3_600_000);
    utimesSync(join(clips, "ns", "cam", "old_1_1.mp4"), then, then);
    for (const k of ["ns/cam/a_1_2.mp4", "ns/cam/b_1_3.mp4", "ns/cam/c_1_4.mp4"]) {
      await st.put(k, { bytes: mb }, "video/mp4");
      await new Promise((r) => setTimeout(r, 50));
    }
    // Age limit 1 h (the first goes), size limit 2 MiB (of the 3 young ones, the oldest goes too).
    const s = await service(
      baseEnv({ VIGIL_CLIP_DIR: clips, VIGIL_CLIP_MAX_AGE_HOURS: "1", VIGIL_CLIP_MAX_GIB: String(2 / 1024) }),
    );
    await waitFor("the sweep", async () => (await s.metric("vigil_clip_store_swept_total")) === 2);
    expect(await st.stat("ns/cam/old_1_1.mp4")).toBeUndefined();
    expect(await st.stat("ns/cam/a_1_2.mp4")).toBeUndefined();
    expect(await st.stat("ns/cam/b_1_3.mp4")).toBeDefined();
    expect(await st.stat("ns/cam/c_1_4.mp4")).toBeDefined();
  });

  it("two replicas: competing consumers, no alarm delivered by both, the same event published twice is one alarm", async () => {
    const { receiver, args } = await receiverFor("pair");
    const env = baseEnv({ VIGIL_ALARMS_PREFETCH: "2" });
    const [a, b] = await Promise.all([service(env, args), service(env, args)]);
    const ms = Array.from({ length: 12 }, (_, i) => alarmFixture("pair", i + 1));
    // Two events of one (camera, rule, track) within the dedup window: one alarm.
    const t0 = Date.now();
    const dedup = [alarmFixture("pair", 100, { eventMs: t0, dedupSeconds: 60 })];
    dedup.push(alarmFixture("pair", 100, { eventMs: t0 + 500, dedupSeconds: 60 }));
    for (const m of [...ms, ...dedup]) await putClip(m);
    // The first three published twice each, so both replicas may hold a copy of the same alarm at once.
    await q.publish(...ms, ...ms.slice(0, 3), ...dedup);
    const all = [...ms, ...dedup];
    /** The alarms the records hold: the twelve, and whichever of the dedup pair was admitted first. */
    const admitted = async () => {
      const ids = new Set((await rows(all.map((m) => m.id))).map((r) => r.id));
      return all.filter((m) => ids.has(m.id));
    };
    await waitFor("13 alarms complete", async () => {
      const w = await admitted();
      return w.length === 13 && (await allDelivered(receiver, w)());
    });
    expect(await expectDelivered(receiver, await admitted())).toBe(0);
    // Not one webhook-id twice: no alarm went out from both replicas.
    expect([...receiver.counts().values()].every((n) => n === 1)).toBe(true);
    expect(receiver.counts().size).toBe(26);
    const [da, dbb] = [
      await a.metric("vigil_alarm_deliveries_total", 'type="alarm.raised",result="delivered"'),
      await b.metric("vigil_alarm_deliveries_total", 'type="alarm.raised",result="delivered"'),
    ];
    expect(da + dbb).toBe(13);
    expect(da).toBeGreaterThan(0);
    expect(dbb).toBeGreaterThan(0);
    // The duplicate may still be queued behind claim waits when the 13 are done.
    const deduplicated = async () =>
      (await a.metric("vigil_alarms_deduplicated_total")) + (await b.metric("vigil_alarms_deduplicated_total"));
    await waitFor("the duplicate deduplicated", async () => (await deduplicated()) >= 1, 10_000);
    expect(await deduplicated()).toBe(1);
    expect((await repeatsOf(a)) + (await repeatsOf(b))).toBe(0);
    await expectQueueDrained(a, b);
  });

  it("the same message published twice is one alarm, delivered once per type", async () => {
    const { receiver, args } = await receiverFor("twice");
    const s = await service(baseEnv(), args);
    const m = alarmFixture("twice", 1);
    await putClip(m);
    await q.publish(m, m);
    await waitFor("alarm complete", allDelivered(receiver, [m]));
    // The second copy is acked once the record says complete; give it the time to (wrongly) send again.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(await expectDelivered(receiver, [m])).toBe(0);
    expect(receiver.count(webhookId(m.id, "alarm.raised"))).toBe(1);
    expect(receiver.count(webhookId(m.id, "alarm.clip"))).toBe(1);
    await expectQueueDrained(s);
  });

  it("an assessment alarm beside its rule's: both delivered (dedup keeps them apart), the answer in the body and the record", async () => {
    const { receiver, args } = await receiverFor("assess");
    const s = await service(baseEnv(), args);
    const rule = alarmFixture("assess", 1, { dedupSeconds: 60 });
    await putClip(rule);
    const task: AssessmentTask = {
      v: 1,
      type: "assessment.task",
      id: rule.id,
      camera_id: rule.camera_id,
      pool: { namespace: "assess", name: "qwen" },
      trigger: {
        kind: "event",
        event_id: rule.id,
        rule: rule.rule,
        rule_kind: "presence",
        severity: rule.severity,
        track_id: rule.track_id,
        zone: rule.zone,
        detail: rule.detail,
      },
      priority: "normal",
      prompt: "Assess the risk; answer in json.",
      threshold: 2,
      created_at: rule.timestamp,
      deadline: new Date(Date.parse(rule.timestamp) + 10_000).toISOString(),
      context: { camera: rule.camera_id, zone: rule.zone, rule: rule.rule, counts: { person: 1 } },
      images: [{ role: "crop", jpeg_base64: "AAAA", width: 100, height: 200, box: [10, 20, 110, 220] }],
      alarm: { snapshot_key: rule.snapshot_key, clip: rule.clip, dedup_window_seconds: 60, webhook_secret: "hook" },
    };
    const m = alarmOfResult(task, {
      ...task,
      type: "assessment.result",
      risk: 3,
      labels: ["tailgating"],
      reason: "a second person follows through the door",
      model: "qwen-vl-max",
      key_fingerprint: "1a2b3c4d",
      scope: "A",
      usage: { prompt_tokens: 900, completion_tokens: 40, total_tokens: 940 },
      attempts: 1,
      completed_at: new Date().toISOString(),
      latency_ms: 700,
      alarm_id: null,
    });
    if (!m) throw new Error("risk 3 over threshold 2 raised no alarm");
    await q.publish(rule, m);
    await waitFor("both alarms complete", allDelivered(receiver, [rule, m]));
    expect(await expectDelivered(receiver, [rule, m])).toBe(0);
    for (const type of DELIVERY_TYPES) {
      const body = receipts(receiver, m.id, type)[0]!.body as any;
      expect(body.data).toMatchObject({ id: `${rule.id}:assessment`, kind: "assessment", rule: "assessment:entry" });
      expect(body.data.assessment).toEqual({
        result_id: rule.id,
        risk: 3,
        threshold: 2,
        labels: ["tailgating"],
        reason: "a second person follows through the door",
        model: "qwen-vl-max",
      });
      expect(receipts(receiver, rule.id, type)[0]!.body).not.toHaveProperty("data.assessment");
    }
    const [row] = await rows([m.id]);
    expect(row).toMatchObject({ kind: "assessment", severity: "critical", rule: "assessment:entry", track_id: 1 });
    expect(row!.detail).toBe(
      "risk 3/3 (threshold 2, qwen-vl-max) [tailgating]: a second person follows through the door",
    );
    expect(await s.metric("vigil_alarms_deduplicated_total")).toBe(0);
    await expectQueueDrained(s);
  });

  it("a malformed message goes to the DLQ with the reason and a metric; the service goes on", async () => {
    const { receiver, args } = await receiverFor("bad");
    const s = await service(baseEnv(), args);
    const good = alarmFixture("bad", 1);
    await putClip(good);
    const { camera_id: _c, ...noCamera } = alarmFixture("bad", 2);
    await q.publishRaw("bad/cam", ["not json", JSON.stringify(noCamera)]);
    await q.publish(good);
    await waitFor("the good alarm complete", allDelivered(receiver, [good]));
    const dead = await waitFor("two dead-lettered", async () => {
      const d = (await q.deadLettered()).filter((x) => x.body === "not json" || x.id === noCamera.id);
      return d.length === 2 && d;
    });
    expect(dead.map((d) => d.reason).sort()).toEqual([
      "malformed alarm message: camera_id: Invalid input: expected string, received undefined",
      "malformed alarm message: not JSON",
    ]);
    expect(await s.metric("vigil_alarms_dead_lettered_total", 'reason="malformed"')).toBe(2);
    expect(await rows([noCamera.id])).toEqual([]);
    expect(await expectDelivered(receiver, [good])).toBe(0);
    await expectQueueDrained(s);
  });

  describe("with Kubernetes Secrets and Events", () => {
    const events = async (ns: string, reason: string) =>
      (
        await admin().core.listNamespacedEvent({
          namespace: ns,
          fieldSelector: `involvedObject.name=cam,involvedObject.kind=CameraDetection,reason=${reason}`,
        })
      ).items;
    const kubeEnv = () => baseEnv({ KUBECONFIG: inject("kubeconfig") });
    const webhookSecret = (ns: string, rx: WebhookReceiver) =>
      admin().core.createNamespacedSecret({
        namespace: ns,
        body: { metadata: { name: "hook" }, stringData: { url: rx.url, secret: rx.secret } },
      });

    it("a missing webhook Secret: an Event on the camera, its alarms wait, then are delivered once it exists", async () => {
      const c = admin();
      const ns = await freshNamespace(c, "alarms");
      await createCr(c, "cameradetections", ns, cameraManifest("cam", "pool"));
      const receiver = await startWebhookReceiver();
      receivers.push(receiver);
      // A short hold: the waiting alarms go back to the queue every 3 s and wait again, none lost.
      const s = await service({ ...kubeEnv(), VIGIL_ALARMS_HOLD_MS: "3000" });
      const ms = [1, 2].map((t) => alarmFixture(ns, t));
      for (const m of ms) await putClip(m);
      await q.publish(...ms);
      const [ev] = await waitFor("WebhookSecretMissing Event", async () => {
        const e = await events(ns, "WebhookSecretMissing");
        return e.length > 0 && e;
      });
      expect(ev?.type).toBe("Warning");
      expect(ev?.message).toContain(`Secret ${ns}/hook`);
      expect(ev?.involvedObject.uid).toBeTruthy();
      // Held, not lost: both in flight, waiting; nothing sent, nothing dead-lettered.
      await waitFor("both waiting", async () => (await s.metric("vigil_alarms_waiting_for_secret")) === 2);
      expect(receiver.received).toEqual([]);
      expect((await q.deadLettered()).filter((d) => d.id?.startsWith(ns))).toEqual([]);
      // One Event for both alarms (repeats fold into its count), never one per alarm per re-check.
      expect((await events(ns, "WebhookSecretMissing")).length).toBe(1);

      await waitFor("requeued after the hold", async () => (await s.metric("vigil_alarms_requeued_total")) >= 2);
      expect((await q.deadLettered()).filter((d) => d.id?.startsWith(ns))).toEqual([]);

      await webhookSecret(ns, receiver);
      await waitFor("every alarm complete", allDelivered(receiver, ms), 40_000);
      expect(await expectDelivered(receiver, ms)).toBe(0);
      await expectQueueDrained(s);
    });

    it("webhook answering 410: the endpoint is disabled, an Event on the camera, the alarms dead-lettered", async () => {
      const c = admin();
      const ns = await freshNamespace(c, "alarms");
      await createCr(c, "cameradetections", ns, cameraManifest("cam", "pool"));
      const receiver = await startWebhookReceiver();
      receivers.push(receiver);
      receiver.setStatus(410);
      await webhookSecret(ns, receiver);
      const s = await service(kubeEnv());
      const [m1, m2] = [1, 2].map((t) => alarmFixture(ns, t));
      await q.publish(m1!);
      const d1 = await waitFor("first dead-lettered", async () =>
        (await q.deadLettered()).find((d) => d.id === m1!.id),
      );
      expect(d1.reason).toBe("endpoint disabled (410)");
      await q.publish(m2!);
      const d2 = await waitFor("second dead-lettered", async () =>
        (await q.deadLettered()).find((d) => d.id === m2!.id),
      );
      expect(d2.reason).toMatch(/^endpoint disabled \(410\)/);
      // The second never reached the endpoint: it was disabled already.
      expect(receiver.received.length).toBe(1);
      const [disabled] = (await db.query("SELECT * FROM endpoints_disabled WHERE endpoint_key LIKE ?", [
        `${ns}/hook#%`,
      ])) as unknown as [unknown[]];
      expect(disabled.length).toBe(1);
      expect((await rows([m1!.id, m2!.id])).map((r) => r.status)).toEqual(["dead", "dead"]);
      const [ev] = await waitFor("WebhookEndpointDisabled Event", async () => {
        const e = await events(ns, "WebhookEndpointDisabled");
        return e.length > 0 && e;
      });
      expect(ev?.message).toContain(`Secret ${ns}/hook`);
      expect(ev?.message).not.toContain(receiver.url);
      expect(await s.metric("vigil_alarms_dead_lettered_total", 'reason="endpoint_disabled"')).toBe(2);
      await expectQueueDrained(s);
    });
  });
});
