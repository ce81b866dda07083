// The alarm routes on a real gateway (buildGateway, listening on loopback): records in node:sqlite written through
// the records API as the alarm service writes them, and a filesystem clip store holding a real H.264 MP4 cut from
// vtest.avi with ffmpeg and a JPEG of one of its frames. Token, filters and cursor pages, the served-camera
// check, byte-exact range requests and 416, 503 without sources, live alarms on SSE and WebSocket, OpenAPI.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { stringify } from "yaml";
import { createFsClipStore } from "../../alarms/clips/fs-store.ts";
import { alarmObjectKeys, type ClipStore } from "../../alarms/clips/store.ts";
import { ALARM_MESSAGE_VERSION, type AlarmMessage, type DeliveryType } from "../../alarms/messages.ts";
import type { AlarmRecords } from "../../alarms/records.ts";
import { openRecords } from "../../alarms/records-open.ts";
import { buildGateway } from "../../gateway/app.ts";
import { memoryCatalog } from "../../gateway/catalog-static.ts";
import type { CameraSummary } from "../../gateway/feed.ts";
import { createIpcFeed } from "../../gateway/ipc-feed.ts";
import { cutClip, snapshotJpeg } from "../setup/alarm-media.ts";
import { metricValue } from "../setup/operator-env.ts";
import { startGateway, waitFor } from "../setup/services.ts";

type Obj = Record<string, any>;
const TOKEN = "alarms-api-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const enc = encodeURIComponent;
const tmp = mkdtempSync(join(tmpdir(), "vigil-alarms-api-"));
// Event times of a few minutes ago: the live feed looks at what changed recently.
const T0 = Date.now() - 300_000;

let records: AlarmRecords;
let clips: ClipStore;
let app: FastifyInstance;
let base: string;
let mp4: Buffer;
let jpeg: Buffer;

const summary = (id: string): CameraSummary => {
  const [namespace, name] = id.split("/") as [string, string];
  return {
    id,
    name,
    namespace,
    pool: "local",
    source: "rtsp://127.0.0.1/cam",
    targetFps: 5,
    zones: [],
    rules: [],
    paused: false,
    status: {},
  };
};

function msg(o: { camera: string; rule: string; severity: AlarmMessage["severity"]; t: number; track?: number }) {
  const id = `${o.camera}:${o.rule}:${o.track ?? 1}:${o.t}`;
  const keys = alarmObjectKeys(id);
  const m: AlarmMessage = {
    v: ALARM_MESSAGE_VERSION,
    type: "alarm",
    id,
    camera_id: o.camera,
    rule: o.rule,
    kind: "presence",
    severity: o.severity,
    track_id: o.track ?? 1,
    zone: "floor",
    box: [100, 80, 220, 400],
    timestamp: new Date(o.t).toISOString(),
    detail: "person in floor",
    snapshot_key: keys.snapshot,
    clip: { key: keys.clip, pre_seconds: 3, post_seconds: 3 },
    dedup_window_seconds: 0,
    webhook_secret: "hook",
  };
  return m;
}

const A1 = msg({ camera: "shop/entrance", rule: "door", severity: "critical", t: T0 });
const A2 = {
  ...msg({ camera: "shop/entrance", rule: "loiter", severity: "warning", t: T0 + 1000 }),
  snapshot_key: null,
};
const A3 = msg({ camera: "shop/yard", rule: "door", severity: "info", t: T0 + 2000 });
const HIDDEN = msg({ camera: "other/hidden", rule: "door", severity: "critical", t: T0 + 3000 });
const A5 = msg({ camera: "shop/entrance", rule: "door", severity: "warning", t: T0 + 4000, track: 2 });

const get = (path: string, headers: Record<string, string> = AUTH) => fetch(`${base}${path}`, { headers });
const json = async (path: string) => {
  const r = await get(path);
  return { status: r.status, body: (await r.json()) as Obj };
};

beforeAll(async () => {
  mp4 = readFileSync(cutClip(join(tmp, "clip.mp4"), 10, 6));
  jpeg = readFileSync(snapshotJpeg(join(tmp, "snap.jpg"), 12));
  records = openRecords(`sqlite:${join(tmp, "alarms.db")}`);
  await records.migrate();
  clips = createFsClipStore(join(tmp, "clips"));
  for (const m of [A1, A2, A3, HIDDEN, A5]) await records.admit(m, Date.parse(m.timestamp) + 20);
  // A1 went all the way: raised (one retry), clip ready and delivered, completed.
  await clips.put(A1.clip.key, { bytes: mp4 }, "video/mp4");
  await clips.put(A1.snapshot_key as string, { bytes: jpeg }, "image/jpeg");
  await clips.put(HIDDEN.clip.key, { bytes: mp4 }, "video/mp4");
  const attempt = async (type: DeliveryType, at: number, code: number) => {
    const id = await records.startAttempt({ alarm_id: A1.id, type, webhook_id: `${A1.id}.${type}`, started_ms: at });
    await records.finishAttempt(id, {
      finished_ms: at + 15,
      status_code: code,
      latency_ms: 15,
      error: code >= 300 ? `HTTP ${code}` : null,
    });
  };
  await attempt("alarm.raised", T0 + 100, 503);
  await attempt("alarm.raised", T0 + 600, 200);
  await records.markStep(A1.id, "raised_delivered", T0 + 615);
  await records.markStep(A1.id, "clip_ready", T0 + 3500);
  await attempt("alarm.clip", T0 + 3600, 204);
  await records.markStep(A1.id, "clip_delivered", T0 + 3615);
  await records.markStep(A1.id, "completed", T0 + 3620);
  await records.markDead(A3.id, "webhook: HTTP 410 Gone, endpoint disabled", T0 + 2500);

  app = buildGateway({
    feed: createIpcFeed(),
    catalog: memoryCatalog(["shop/entrance", "shop/yard"].map(summary)),
    tokens: [TOKEN],
    registry: new Registry(),
    heartbeatMs: 500,
    closeGraceMs: 200,
    alarms: { records, clips, pollMs: 200 },
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
}, 60_000);

afterAll(async () => {
  await app?.close();
  await records?.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe("alarm routes", () => {
  it("need a token, in the header or as ?access_token= (which <img> and <video> use)", async () => {
    for (const path of ["/api/v1/alarms", `/api/v1/alarms/${enc(A1.id)}`, `/api/v1/alarms/${enc(A1.id)}/clip`]) {
      const r = await get(path, {});
      expect(r.status, path).toBe(401);
      await r.text();
    }
    const clip = await get(`/api/v1/alarms/${enc(A1.id)}/clip?access_token=${TOKEN}`, {});
    expect(clip.status).toBe(200);
    expect(Buffer.from(await clip.arrayBuffer()).equals(mp4)).toBe(true);
  });

  it("list the served cameras' alarms newest first, with their delivery state and links", async () => {
    const { status, body } = await json("/api/v1/alarms");
    expect(status).toBe(200);
    expect(body.alarms.map((a: Obj) => a.id)).toEqual([A5.id, A3.id, A2.id, A1.id]); // never other/hidden
    expect(body.next).toBeNull();
    const a1 = body.alarms[3];
    expect(a1).toMatchObject({
      camera_id: "shop/entrance",
      rule: "door",
      severity: "critical",
      timestamp: A1.timestamp,
      event_ms: T0,
      status: "delivered",
      box: [100, 80, 220, 400],
      raised_delivered_ms: T0 + 615,
      clip_ready_ms: T0 + 3500,
      delivery: { "alarm.raised": "delivered", "alarm.clip": "delivered" },
      links: {
        self: `/api/v1/alarms/${enc(A1.id)}`,
        snapshot: `/api/v1/alarms/${enc(A1.id)}/snapshot`,
        clip: `/api/v1/alarms/${enc(A1.id)}/clip`,
      },
    });
    expect(body.alarms[2]).toMatchObject({
      id: A2.id,
      links: { snapshot: null },
      delivery: { "alarm.raised": "pending" },
    });
    expect(body.alarms[1]).toMatchObject({
      id: A3.id,
      status: "dead",
      dead_reason: expect.stringContaining("410"),
      delivery: { "alarm.raised": "failed", "alarm.clip": "failed" },
    });
  });

  it("filter by camera, rule, severity and time, and page with the cursor", async () => {
    const ids = async (q: string) => (await json(`/api/v1/alarms?${q}`)).body.alarms.map((a: Obj) => a.id);
    expect(await ids(`camera=${enc("shop/yard")}`)).toEqual([A3.id]);
    expect(await ids("rule=door")).toEqual([A5.id, A3.id, A1.id]);
    expect(await ids("severity=critical")).toEqual([A1.id]);
    expect(await ids(`since=${T0 + 1000}&until=${T0 + 4000}`)).toEqual([A3.id, A2.id]);
    expect(await ids(`since=${enc(new Date(T0 + 2000).toISOString())}`)).toEqual([A5.id, A3.id]);
    expect(await ids(`camera=${enc("shop/entrance")}&severity=warning`)).toEqual([A5.id, A2.id]);

    // Pages of one: the unserved camera's alarm in between is skipped, not returned as an empty page.
    const seen: string[] = [];
    let next: string | null = null;
    do {
      const page: Obj = (await json(`/api/v1/alarms?limit=1${next ? `&cursor=${enc(next)}` : ""}`)).body;
      expect(page.alarms.length).toBeLessThanOrEqual(1);
      seen.push(...page.alarms.map((a: Obj) => a.id));
      next = page.next;
    } while (next);
    expect(seen).toEqual([A5.id, A3.id, A2.id, A1.id]);
    const two = (await json("/api/v1/alarms?limit=2")).body;
    const rest = (await json(`/api/v1/alarms?limit=2&cursor=${enc(two.next)}`)).body;
    expect([...two.alarms, ...rest.alarms].map((a: Obj) => a.id)).toEqual([A5.id, A3.id, A2.id, A1.id]);
    expect(rest.next).toBeNull();
  });

  it("answer 400 naming a bad parameter, and 404 for a camera or alarm this gateway does not serve", async () => {
    const bad = await json("/api/v1/alarms?cursor=garbage");
    expect(bad.status).toBe(400);
    expect(bad.body.message).toMatch(/cursor/);
    expect((await json("/api/v1/alarms?severity=loud")).body.message).toMatch(/severity/);
    expect((await json("/api/v1/alarms?since=yesterday")).body.message).toMatch(/since/);
    expect((await json("/api/v1/alarms?limit=0")).status).toBe(400);
    const other = await json(`/api/v1/alarms?camera=${enc("other/hidden")}`);
    expect(other).toEqual({ status: 404, body: { error: "not_found", message: "no camera other/hidden" } });
    for (const path of ["", "/snapshot", "/clip"]) {
      const r = await json(`/api/v1/alarms/${enc(HIDDEN.id)}${path}`);
      expect(r, path).toEqual({ status: 404, body: { error: "not_found", message: `no alarm ${HIDDEN.id}` } });
    }
    expect((await json(`/api/v1/alarms/${enc("shop/entrance:door:9:1")}`)).status).toBe(404);
  });

  it("show one alarm with every delivery attempt", async () => {
    const { status, body } = await json(`/api/v1/alarms/${enc(A1.id)}`);
    expect(status).toBe(200);
    expect(body.id).toBe(A1.id);
    expect(body.attempts.map((a: Obj) => [a.type, a.status_code, a.error, a.webhook_id])).toEqual([
      ["alarm.raised", 503, "HTTP 503", `${A1.id}.alarm.raised`],
      ["alarm.raised", 200, null, `${A1.id}.alarm.raised`],
      ["alarm.clip", 204, null, `${A1.id}.alarm.clip`],
    ]);
    // The id may also come with its ':' as they are (only '/' must be encoded).
    expect((await json(`/api/v1/alarms/${A1.id.replace("/", "%2F")}`)).body.id).toBe(A1.id);
  });

  it("serve the snapshot as image/jpeg, and say why when there is none", async () => {
    const r = await get(`/api/v1/alarms/${enc(A1.id)}/snapshot`);
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe("image/jpeg");
    expect(Buffer.from(await r.arrayBuffer()).equals(jpeg)).toBe(true);
    expect(await json(`/api/v1/alarms/${enc(A2.id)}/snapshot`)).toEqual({
      status: 404,
      body: { error: "not_found", message: `alarm ${A2.id} has no snapshot` },
    });
  });

  it("serve the clip whole or by byte range with the exact bytes, 416 past its end, 404 until it is ready", async () => {
    const path = `/api/v1/alarms/${enc(A1.id)}/clip`;
    const whole = await get(path);
    expect(whole.status).toBe(200);
    expect(whole.headers.get("content-type")).toBe("video/mp4");
    expect(whole.headers.get("accept-ranges")).toBe("bytes");
    expect(Number(whole.headers.get("content-length"))).toBe(mp4.length);
    expect(Buffer.from(await whole.arrayBuffer()).equals(mp4)).toBe(true);
    const etag = whole.headers.get("etag") as string;

    const ranged = async (range: string, extra: Record<string, string> = {}) => {
      const r = await get(path, { ...AUTH, range, ...extra });
      return { r, body: Buffer.from(await r.arrayBuffer()) };
    };
    const mid = Math.floor(mp4.length / 2);
    for (const [range, start, end] of [
      ["bytes=0-1023", 0, 1023],
      [`bytes=${mid}-${mid + 99_999}`, mid, mid + 99_999],
      [`bytes=${mid}-`, mid, mp4.length - 1],
      ["bytes=-4096", mp4.length - 4096, mp4.length - 1],
      [`bytes=${mp4.length - 10}-${mp4.length + 1000}`, mp4.length - 10, mp4.length - 1],
    ] as const) {
      const { r, body } = await ranged(range);
      expect(r.status, range).toBe(206);
      expect(r.headers.get("content-range"), range).toBe(`bytes ${start}-${end}/${mp4.length}`);
      expect(Number(r.headers.get("content-length")), range).toBe(end - start + 1);
      expect(body.equals(mp4.subarray(start, end + 1)), range).toBe(true);
    }
    const past = await ranged(`bytes=${mp4.length}-`);
    expect(past.r.status).toBe(416);
    expect(past.r.headers.get("content-range")).toBe(`bytes */${mp4.length}`);
    expect(JSON.parse(past.body.toString())).toMatchObject({ error: "range_not_satisfiable" });
    // If-Range with the current version gets the range; with an old one, the whole object.
    expect((await ranged("bytes=0-9", { "if-range": etag })).r.status).toBe(206);
    const stale = await ranged("bytes=0-9", { "if-range": '"old-version"' });
    expect(stale.r.status).toBe(200);
    expect(stale.body.length).toBe(mp4.length);

    expect(await json(`/api/v1/alarms/${enc(A5.id)}/clip`)).toEqual({
      status: 404,
      body: { error: "not_found", message: `the clip of alarm ${A5.id} is not ready yet` },
    });
  });

  it("answer 503 saying what to set when the gateway has no records or no clip store", async () => {
    const bare = buildGateway({
      feed: createIpcFeed(),
      catalog: memoryCatalog([summary("shop/entrance")]),
      tokens: [TOKEN],
      registry: new Registry(),
    });
    const noClips = buildGateway({
      feed: createIpcFeed(),
      catalog: memoryCatalog([summary("shop/entrance")]),
      tokens: [TOKEN],
      registry: new Registry(),
      alarms: { records },
    });
    try {
      for (const url of ["/api/v1/alarms", `/api/v1/alarms/${enc(A1.id)}`, "/api/v1/alarms/stream"]) {
        const r = await bare.inject({ url, headers: AUTH });
        expect(r.statusCode, url).toBe(503);
        expect(r.json().message, url).toMatch(/MYSQL_URL.*VIGIL_ALARMS_DB/);
      }
      const clip = await noClips.inject({ url: `/api/v1/alarms/${enc(A1.id)}/clip`, headers: AUTH });
      expect(clip.statusCode).toBe(503);
      expect(clip.json().message).toMatch(/VIGIL_CLIP_DIR/);
      expect((await noClips.inject({ url: "/api/v1/alarms", headers: AUTH })).statusCode).toBe(200);
    } finally {
      await bare.close();
      await noClips.close();
    }
  });
});

describe("live alarms", () => {
  it("push an alarm on SSE and WebSocket when it is admitted and at each step, for served cameras only", async () => {
    const abort = new AbortController();
    const res = await fetch(`${base}/api/v1/alarms/stream?access_token=${TOKEN}`, { signal: abort.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = "";
    const until = (what: string, pred: () => boolean) =>
      waitFor(
        what,
        async () => {
          while (!pred()) {
            const { value, done } = await reader.read();
            if (done) throw new Error("stream ended");
            text += Buffer.from(value).toString();
          }
          return true;
        },
        10_000,
      );
    const ws = new WebSocket(`${base.replace("http", "ws")}/api/v1/alarms/ws?camera=${enc("shop/yard")}`, {
      headers: AUTH,
    });
    const wsGot: Obj[] = [];
    ws.on("message", (d) => wsGot.push(JSON.parse(String(d))));
    await new Promise((r, j) => {
      ws.once("open", r);
      ws.once("error", j);
    });
    try {
      await until("connected", () => text.includes(": connected"));
      const now = Date.now();
      const live = msg({ camera: "shop/entrance", rule: "door", severity: "critical", t: now, track: 40 });
      const yard = msg({ camera: "shop/yard", rule: "door", severity: "warning", t: now, track: 41 });
      const hidden = msg({ camera: "other/hidden", rule: "door", severity: "critical", t: now, track: 42 });
      await records.admit(hidden, now);
      await records.admit(live, now);
      await records.admit(yard, now);
      await until("the new alarm", () => text.includes(`"id":${JSON.stringify(live.id)}`));
      await records.markStep(live.id, "raised_delivered", Date.now());
      await until("its step", () => /"raised_delivered_ms":\d+/.test(text.split(live.id).at(-1) ?? ""));
      const frames = text
        .split("\n\n")
        .filter((f) => f.includes("data: "))
        .map((f) => ({
          id: Number(/^id: (\d+)$/m.exec(f)?.[1]),
          data: JSON.parse(f.slice(f.indexOf("data: ") + 6)) as Obj,
        }));
      const mine = frames.filter((f) => f.data.id === live.id);
      expect(mine.map((f) => f.data.delivery["alarm.raised"])).toEqual(["pending", "delivered"]);
      expect(mine.map((f) => f.id)).toEqual(mine.map((f) => f.data.updated_ms));
      expect(frames.some((f) => f.data.camera_id === "other/hidden")).toBe(false);
      await waitFor("the yard alarm on the WebSocket", async () => wsGot.some((a) => a.id === yard.id), 10_000);
      expect(wsGot.every((a) => a.camera_id === "shop/yard")).toBe(true);
      const metrics = (await app.inject({ url: "/metrics", headers: AUTH })).body;
      expect(metricValue(metrics, "vigil_gateway_http_stream_clients", 'stream="alarms"')).toBe(1);
      expect(metricValue(metrics, "vigil_gateway_ws_clients", 'stream="alarms"')).toBe(1);

      // Resuming with Last-Event-ID gets what changed since.
      abort.abort();
      const lastId = mine[0]!.id;
      await records.markStep(live.id, "clip_ready", Date.now());
      const again = await fetch(`${base}/api/v1/alarms/stream`, {
        headers: { ...AUTH, "last-event-id": String(lastId) },
      });
      const r2 = again.body!.getReader();
      let t2 = "";
      while (!/"clip_ready_ms":\d+/.test(t2)) t2 += Buffer.from((await r2.read()).value!).toString();
      await r2.cancel();
    } finally {
      ws.close();
      abort.abort();
    }
  });

  it("refuse a camera this gateway does not serve", async () => {
    const r = await get(`/api/v1/alarms/stream?camera=${enc("other/hidden")}`);
    expect(r.status).toBe(404);
    await r.text();
  });
});

describe("vigil gateway", () => {
  it("serves the alarms of VIGIL_ALARMS_DB and the clips of VIGIL_CLIP_DIR, and says how to turn them on", async () => {
    const manifests = join(tmp, "cameras.yaml");
    writeFileSync(
      manifests,
      [
        {
          apiVersion: "vigil.dev/v1alpha1",
          kind: "DetectorPool",
          metadata: { name: "local" },
          spec: { model: { uri: "file:///models/yolov8n.onnx" } },
        },
        {
          apiVersion: "vigil.dev/v1alpha1",
          kind: "CameraDetection",
          metadata: { name: "entrance", namespace: "shop" },
          spec: { source: { url: "rtsp://127.0.0.1:8554/entrance" }, poolRef: { name: "local" } },
        },
      ]
        .map((d) => stringify(d))
        .join("---\n"),
    );
    // No Redis: the alarm routes do not need the bus (port 1: nothing listens there).
    const logs: string[] = [];
    const env = { VIGIL_API_TOKEN: TOKEN, LOG_LEVEL: "info" };
    const g = await startGateway(
      ["--manifests", manifests],
      1,
      { ...env, VIGIL_ALARMS_DB: join(tmp, "alarms.db"), VIGIL_CLIP_DIR: join(tmp, "clips") },
      logs,
    );
    const off = await startGateway(["--manifests", manifests], 1, env);
    try {
      // The same sqlite file this test writes: a second process reads it (WAL).
      const r = await fetch(`${g.base}/api/v1/alarms`, { headers: AUTH });
      const body = (await r.json()) as Obj;
      expect(r.status).toBe(200);
      expect(body.alarms.map((a: Obj) => a.camera_id)).toEqual(expect.arrayContaining(["shop/entrance"]));
      expect(body.alarms.every((a: Obj) => a.camera_id === "shop/entrance")).toBe(true);
      const part = await fetch(`${g.base}/api/v1/alarms/${enc(A1.id)}/clip`, {
        headers: { ...AUTH, range: "bytes=10-19" },
      });
      expect(part.status).toBe(206);
      expect(Buffer.from(await part.arrayBuffer()).equals(mp4.subarray(10, 20))).toBe(true);
      const listening =
        logs
          .join("")
          .split("\n")
          .find((l) => l.includes('"gateway listening"')) ?? "";
      expect(JSON.parse(listening)).toMatchObject({
        alarms: `sqlite ${join(tmp, "alarms.db")}`,
        clips: join(tmp, "clips"),
      });

      const none = await fetch(`${off.base}/api/v1/alarms`, { headers: AUTH });
      expect(none.status).toBe(503);
      expect(((await none.json()) as Obj).message).toMatch(/MYSQL_URL/);
    } finally {
      g.proc.kill("SIGTERM");
      off.proc.kill("SIGTERM");
    }
  });
});

describe("OpenAPI", () => {
  it("describes the alarm routes", async () => {
    const doc = (await (await get("/docs/json", {})).json()) as Obj;
    for (const p of [
      "/api/v1/alarms",
      "/api/v1/alarms/{id}",
      "/api/v1/alarms/{id}/snapshot",
      "/api/v1/alarms/{id}/clip",
      "/api/v1/alarms/stream",
      "/api/v1/alarms/ws",
    ])
      expect(doc.paths, p).toHaveProperty([p, "get"]);
    const list = doc.paths["/api/v1/alarms"].get;
    expect(list.parameters.map((x: Obj) => x.name).sort()).toEqual([
      "camera",
      "cursor",
      "limit",
      "rule",
      "severity",
      "since",
      "until",
    ]);
    expect(Object.keys(doc.paths["/api/v1/alarms/{id}/clip"].get.responses)).toEqual(
      expect.arrayContaining(["200", "206", "404", "416"]),
    );
  });
});
