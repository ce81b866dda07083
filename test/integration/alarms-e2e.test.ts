// The whole alarm path on real components, from a camera to the customer's endpoint: vtest.avi over a real RTSP
// server → a real worker (YOLOv8n, tracker, rules) → real RabbitMQ (publisher confirms) → `vigil alarms` → a real
// HTTP receiver that verifies every signature with the `standardwebhooks` package, with the records in a real
// MariaDB and the snapshot and replay clip in a clip-store directory shared by the worker and the service.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { DEFAULT_MARGINS } from "../../alarms/clips/window.ts";
import { webhookId } from "../../alarms/webhook/sign.ts";
import { probeDuration } from "../setup/alarm-media.ts";
import { type AlarmServiceProc, startAlarmService } from "../setup/alarm-service.ts";
import { type Broker, startMariaDB, startRabbitMQ } from "../setup/brokers.ts";
import {
  FIXTURES,
  type Service,
  startRedis,
  startRtsp,
  startWorker,
  type WorkerProc,
  waitFor,
} from "../setup/services.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../setup/webhook-receiver.ts";

const PRE = 3;
const POST = 3;
const dir = mkdtempSync(join(tmpdir(), "vigil-alarms-e2e-"));
const clipDir = join(dir, "clips");
const logs: string[] = [];
let redis: Service;
let rtsp: Service;
let rabbit: Broker;
let maria: Broker;
let receiver: WebhookReceiver;
let worker: WorkerProc;
let service: AlarmServiceProc;

type Obj = Record<string, any>;

function manifests(rtspPort: number, hook: WebhookReceiver): string {
  const file = join(dir, "cameras.yaml");
  const docs = [
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "entrance-hook" },
      stringData: { url: hook.url, secret: hook.secret },
    },
    {
      apiVersion: "vigil.dev/v1alpha1",
      kind: "CameraDetection",
      metadata: { name: "entrance" },
      spec: {
        source: { url: `rtsp://127.0.0.1:${rtspPort}/cam1` },
        poolRef: { name: "local" },
        detection: { targetFps: 5 },
        zones: [
          {
            name: "hall",
            polygon: [
              [0, 0],
              [1, 0],
              [1, 1],
              [0, 1],
            ],
          },
        ],
        rules: [{ name: "entered", severity: "warning", cooldownSeconds: 600, presence: { zone: "hall" } }],
        alarm: {
          minSeverity: "warning",
          clip: { preSeconds: PRE, postSeconds: POST },
          dedupWindowSeconds: 30,
          webhookSecretRef: { name: "entrance-hook" },
        },
      },
    },
  ];
  writeFileSync(file, docs.map((d) => stringify(d)).join("---\n"));
  return file;
}

beforeAll(async () => {
  [redis, rtsp, rabbit, maria, receiver] = await Promise.all([
    startRedis(),
    startRtsp(join(FIXTURES, "vtest.avi")),
    startRabbitMQ(),
    startMariaDB(),
    startWebhookReceiver(),
  ]);
  const file = manifests(rtsp.port, receiver);
  service = await startAlarmService(
    { RABBITMQ_URL: rabbit.url, MYSQL_URL: maria.url, VIGIL_CLIP_DIR: clipDir },
    ["--manifests", file],
    logs,
  );
  worker = await startWorker(
    ["--cameras", file],
    redis.port,
    { RABBITMQ_URL: rabbit.url, VIGIL_CLIP_DIR: clipDir, VIGIL_CLIP_SCRATCH_DIR: join(dir, "scratch") },
    logs,
  );
}, 120_000);

afterAll(async () => {
  worker?.proc.kill("SIGTERM");
  await service?.stop();
  await rtsp?.stop("SIGKILL");
  await Promise.all([rabbit?.destroy(), maria?.destroy(), redis?.stop(), receiver?.close()]);
  writeFileSync(join(tmpdir(), "vigil-alarms-e2e.log"), logs.join(""));
  rmSync(dir, { recursive: true, force: true });
});

describe("an alarm from a camera to the customer's endpoint", () => {
  it("a rule fires on the RTSP stream: signed alarm.raised, then alarm.clip with a clip that covers pre + post, and the MySQL rows", {
    timeout: 150_000,
  }, async () => {
    // The first alarm whose both deliveries were accepted, with its whole pre-roll: an alarm in the stream's first
    // seconds has a clip from where the recording began (window.ts shortenedPreRoll), which clips.test.ts checks.
    const fullPreRoll = (b: Obj) => Date.parse(b.data.clip.start) <= Date.parse(b.data.event_time) - PRE * 1000;
    const done = await waitFor(
      "an alarm delivered as alarm.raised then alarm.clip",
      async () => {
        const clips = receiver.verified("alarm.clip").filter((r) => r.status === 200 && fullPreRoll(r.body as Obj));
        return clips[0];
      },
      120_000,
      250,
    );
    const clipBody = done.body as Obj;
    const id: string = clipBody.data.id;
    expect(id).toMatch(/^default\/entrance:entered:\d+:\d+$/);

    // Every request verified by the independent implementation, and matched the payload schema.
    expect(receiver.received.filter((r) => !r.verified || r.schemaError)).toEqual([]);
    const raised = receiver.verified("alarm.raised").filter((r) => (r.body as Obj).data.id === id);
    const clip = receiver.verified("alarm.clip").filter((r) => (r.body as Obj).data.id === id);
    expect(raised.length).toBe(1);
    expect(clip.length).toBe(1);
    expect(raised[0]!.webhookId).toBe(webhookId(id, "alarm.raised"));
    expect(clip[0]!.webhookId).toBe(webhookId(id, "alarm.clip"));
    expect(raised[0]!.at).toBeLessThanOrEqual(clip[0]!.at);
    // alarm.raised went out at once, long before the post-roll ended; alarm.clip after it.
    const eventMs = Date.parse((raised[0]!.body as Obj).data.event_time);
    expect(raised[0]!.at).toBeLessThan(eventMs + POST * 1000);
    expect(clip[0]!.at).toBeGreaterThanOrEqual(eventMs + POST * 1000);

    // The snapshot and the clip are in the store; ffprobe reads the clip, and it is never short of pre + post,
    // and at most a keyframe interval (1 s on the test server) plus the cut's margins longer.
    const data = clip[0]!.body as Obj;
    const snapshotKey: string = (raised[0]!.body as Obj).data.snapshot.key;
    const clipKey: string = data.data.clip.key;
    const duration = probeDuration(join(clipDir, ...clipKey.split("/")));
    const slackS = 1 + (DEFAULT_MARGINS.startMarginMs + DEFAULT_MARGINS.endMarginMs) / 1000 + 0.2;
    console.log(
      `[alarms-e2e] clip ${duration.toFixed(2)} s for pre ${PRE} + post ${POST} (allowed up to +${slackS} s)`,
    );
    expect(duration).toBeGreaterThanOrEqual(PRE + POST);
    expect(duration).toBeLessThanOrEqual(PRE + POST + slackS);
    // The delivery names the clip as it is: its real length (ffprobe's, within a frame) and a start at or before
    // t − pre.
    expect(Math.abs(data.data.clip.duration_seconds - duration)).toBeLessThan(0.25);
    expect(Date.parse(data.data.clip.start)).toBeLessThanOrEqual(eventMs - PRE * 1000);
    const snapshot = readFileSync(join(clipDir, ...snapshotKey.split("/")));
    expect(snapshot.subarray(0, 2).toString("hex")).toBe("ffd8"); // a JPEG

    // The MySQL rows: the alarm, every step done, and one accepted attempt per delivery type.
    const db = await mysql.createConnection(maria.url);
    try {
      const [rows] = (await db.query("SELECT * FROM alarms WHERE id = ?", [id])) as [Obj[], unknown];
      expect(rows.length).toBe(1);
      const row = rows[0]!;
      expect(row).toMatchObject({ camera_id: "default/entrance", rule: "entered", severity: "warning" });
      expect(row.snapshot_key).toBe(snapshotKey);
      expect(row.clip_key).toBe(clipKey);
      // The receiver has the POST before the service has its answer and records the step: the row as committed last.
      const done = await waitFor("the final commit", async () => {
        const [r] = (await db.query("SELECT * FROM alarms WHERE id = ?", [id])) as [Obj[], unknown];
        return r[0]?.completed_ms != null && r[0]?.status === "delivered" && r[0];
      });
      for (const k of ["raised_delivered_ms", "clip_ready_ms", "clip_delivered_ms"]) expect(done[k]).not.toBeNull();
      const [attempts] = (await db.query(
        "SELECT type, status_code FROM alarm_deliveries WHERE alarm_id = ? AND status_code BETWEEN 200 AND 299",
        [id],
      )) as [Obj[], unknown];
      expect(attempts.map((a) => a.type).sort()).toEqual(["alarm.clip", "alarm.raised"]);
    } finally {
      await db.end();
    }
    // Acked last: nothing left unacknowledged for this alarm once its record is complete.
    expect(await service.metric("vigil_alarm_webhook_repeats_total")).toBe(0);
  });
});
