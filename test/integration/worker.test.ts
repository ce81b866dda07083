// The worker on real components: vtest.avi served by a real RTSP server, the real YOLOv8n model, real Redis.
import { type ChildProcess, execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import {
  CHANNELS,
  type EventMessage,
  eventMessage,
  parseMessage,
  type StatsMessage,
  statsMessage,
} from "../../worker/publish/messages.ts";
import { metricValue, ROOT } from "../setup/operator-env.ts";
import { FIXTURES, type Service, startRedis, startRtsp, startWorker, waitFor } from "../setup/services.ts";

const VIDEO = join(FIXTURES, "vtest.avi");
const PASSWORD = "s3cret-Pa55";
let redis: Service;
let rtsp: Service;
let worker: ChildProcess;
let workerPort: number;
const logs: string[] = [];
const stats: StatsMessage[] = [];
const events: EventMessage[] = [];
const malformed: string[] = [];
let sub: Redis;

const lastStats = (cam: string) => stats.filter((s) => s.camera_id === cam).at(-1);

beforeAll(async () => {
  redis = await startRedis();
  rtsp = await startRtsp(VIDEO, { auth: `viewer:${PASSWORD}` });
  sub = new Redis(redis.port, "127.0.0.1");
  sub.on("error", () => undefined); // Redis is stopped on purpose below
  await sub.subscribe(CHANNELS.stats, CHANNELS.events);
  sub.on("message", (channel, raw) => {
    const r = channel === CHANNELS.stats ? parseMessage(statsMessage, raw) : parseMessage(eventMessage, raw);
    if (!r.ok) return void malformed.push(`${channel}: ${r.error}`);
    if (channel === CHANNELS.stats) stats.push(r.value as StatsMessage);
    else events.push(r.value as EventMessage);
  });
  const camera = (name: string, password: string) => [
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: `${name}-creds` },
      stringData: { username: "viewer", password },
    },
    {
      apiVersion: "vigil.dev/v1alpha1",
      kind: "CameraDetection",
      metadata: { name },
      spec: {
        source: { url: `rtsp://127.0.0.1:${rtsp.port}/cam1`, credentialsSecretRef: { name: `${name}-creds` } },
        poolRef: { name: "local" },
        detection: { targetFps: 5, motionGate: { enabled: true, threshold: 0.002, maxSkipSeconds: 1 } },
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
          { name: "entered", severity: "info", cooldownSeconds: 600, presence: { zone: "floor" } },
          { name: "loitering", severity: "warning", cooldownSeconds: 600, dwell: { zone: "floor", seconds: 2 } },
        ],
      },
    },
  ];
  const file = join(tmpdir(), `vigil-cameras-${process.pid}.yaml`);
  writeFileSync(
    file,
    [...camera("cam1", PASSWORD), ...camera("wrong-password", "nope")].map((d) => stringify(d)).join("---\n"),
  );
  ({ proc: worker, port: workerPort } = await startWorker(["--cameras", file], redis.port, {}, logs));
}, 60_000);

afterAll(async () => {
  worker?.kill("SIGTERM");
  sub?.disconnect();
  await rtsp?.stop("SIGKILL");
  await redis?.stop();
});

describe("vigil detect over RTSP", () => {
  it("finds persons on at least 95 % of frames and keeps their track ids", { timeout: 60_000 }, async () => {
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        join(ROOT, "bin", "vigil.ts"),
        "detect",
        "--source",
        `rtsp://viewer:${PASSWORD}@127.0.0.1:${rtsp.port}/cam1`,
        "--fps",
        "5",
        "--max-frames",
        "40",
        "--json",
      ],
      { maxBuffer: 1 << 24 },
    );
    const frames = stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(frames).toHaveLength(40);
    const withPerson = frames.filter((f) =>
      f.detections.some((d: { class: string; score: number }) => d.class === "person" && d.score >= 0.5),
    );
    expect(withPerson.length / frames.length).toBeGreaterThanOrEqual(0.95);
    for (const f of frames) expect(f.detections.length).toBeLessThanOrEqual(10);
    // Tracks persist: the longest-lived ids span most of the 8 seconds.
    const seen = new Map<number, number>();
    for (const f of frames) for (const d of f.detections) seen.set(d.track_id, (seen.get(d.track_id) ?? 0) + 1);
    const longLived = [...seen.values()].filter((n) => n >= 30);
    expect(longLived.length).toBeGreaterThanOrEqual(2);
    const box = frames[5].detections[0].box;
    expect(box[2]).toBeLessThanOrEqual(768); // source pixels, not model pixels
    expect(box[3]).toBeLessThanOrEqual(576);
  });
});

describe("vigil worker", () => {
  it("publishes stats and rule events on Redis, in the shared schema", { timeout: 60_000 }, async () => {
    await waitFor("stats with persons", async () => (lastStats("default/cam1")?.data.persons ?? 0) > 0, 30_000);
    const s = lastStats("default/cam1")!;
    expect(s.data).toMatchObject({ provider: "cpu", stream: "streaming" });
    expect(s.data.fps).toBeGreaterThan(2);
    expect(s.data.inference_ms).toBeGreaterThan(0);
    expect(s.data.person).toBe(s.data.persons);
    await waitFor("dwell events", async () => events.some((e) => e.rule === "loitering"), 20_000);
    const entered = events.filter((e) => e.rule === "entered");
    const dwell = events.filter((e) => e.rule === "loitering");
    expect(entered.length).toBeGreaterThanOrEqual(2);
    expect(dwell[0]).toMatchObject({ camera_id: "default/cam1", kind: "dwell", zone: "floor", severity: "warning" });
    expect(dwell[0]!.track_id).toBeGreaterThan(0);
    // Stable, unique ids: one event per track and rule here (cooldown 600 s).
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    for (const e of dwell) expect(entered.some((p) => p.track_id === e.track_id)).toBe(true);
    const reader = new Redis(redis.port, "127.0.0.1");
    const latest = await reader.hget(CHANNELS.latestStats, "default/cam1");
    reader.disconnect();
    expect(parseMessage(statsMessage, latest ?? "").ok).toBe(true);
    expect(malformed).toEqual([]);
  });

  it("reports wrong credentials as the cause, keeps retrying, and never logs the password", async () => {
    await waitFor(
      "auth failure reported",
      async () => lastStats("default/wrong-password")?.data.error === "authentication failed",
      20_000,
    );
    expect(lastStats("default/wrong-password")!.data.stream).not.toBe("streaming");
    expect(lastStats("default/cam1")!.data.stream).toBe("streaming");
    expect(logs.join("")).not.toContain(PASSWORD);
    expect(logs.join("")).not.toContain("nope@");
  });

  it("streams annotated JPEG frames only while someone watches", async () => {
    const viewer = new Redis(redis.port, "127.0.0.1");
    const frames: Buffer[] = [];
    viewer.on("messageBuffer", (_c: Buffer, m: Buffer) => frames.push(m));
    await viewer.subscribe(CHANNELS.video("default/cam1"));
    await waitFor("a JPEG frame", async () => frames.length > 0, 10_000);
    expect(frames[0]!.subarray(0, 2).toString("hex")).toBe("ffd8");
    mkdirSync(join(ROOT, ".cache", "artifacts"), { recursive: true });
    writeFileSync(join(ROOT, ".cache", "artifacts", "cam1-annotated.jpg"), frames[0]!);
    viewer.disconnect();
  });

  it("detects a dead RTSP server within 5 s, reconnects when it returns, without crashing", {
    timeout: 60_000,
  }, async () => {
    const before = lastStats("default/cam1")!.data.reconnects;
    await rtsp.stop("SIGKILL");
    const killedAt = Date.now();
    await waitFor(
      "stream down",
      async () =>
        lastStats("default/cam1")?.data.stream !== "streaming" &&
        Date.parse(lastStats("default/cam1")!.timestamp) > killedAt,
      8000,
      50,
    );
    expect(Date.now() - killedAt).toBeLessThanOrEqual(5000 + 1100); // detection ≤ 5 s, plus one stats interval
    rtsp = await startRtsp(VIDEO, { port: rtsp.port, auth: `viewer:${PASSWORD}` });
    await waitFor(
      "streaming again",
      async () =>
        lastStats("default/cam1")?.data.stream === "streaming" &&
        (lastStats("default/cam1")?.data.reconnects ?? 0) > before,
      40_000,
    );
    expect(worker.exitCode).toBeNull();
    const m = await (await fetch(`http://127.0.0.1:${workerPort}/metrics`)).text();
    expect(metricValue(m, "vigil_stream_reconnects", 'camera="default/cam1"')).toBeGreaterThan(before);
  });

  it("keeps detecting while Redis is down, counts what it drops, and catches up when Redis returns", {
    timeout: 60_000,
  }, async () => {
    const metrics = async () => (await fetch(`http://127.0.0.1:${workerPort}/metrics`)).text();
    await redis.stop();
    const m0 = await metrics();
    await new Promise((r) => setTimeout(r, 3000));
    const m1 = await metrics();
    expect(metricValue(m1, "vigil_inferences_total", 'camera="default/cam1"')).toBeGreaterThan(
      metricValue(m0, "vigil_inferences_total", 'camera="default/cam1"'),
    );
    expect(metricValue(m1, "vigil_bus_dropped_total")).toBeGreaterThan(metricValue(m0, "vigil_bus_dropped_total"));
    const n = stats.length;
    redis = await startRedis(redis.port);
    sub.disconnect();
    sub = new Redis(redis.port, "127.0.0.1");
    sub.on("error", () => undefined);
    const fresh: string[] = [];
    sub.on("message", (_c, raw) => fresh.push(raw));
    await sub.subscribe(CHANNELS.stats);
    await waitFor("stats after Redis returns", async () => fresh.length > 0, 20_000);
    expect(parseMessage(statsMessage, fresh[0]!).ok).toBe(true);
    expect(stats.length).toBe(n); // the old subscriber saw nothing while Redis was down
    expect(worker.exitCode).toBeNull();
  });
});
