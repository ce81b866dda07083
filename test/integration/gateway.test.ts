// The gateway on real components: CameraDetections and a DetectorPool on the real apiserver (kube catalog limited
// to a fresh namespace), real Redis carrying messages built to the workers' zod schemas, the gateway listening on
// loopback. REST contract, auth, probes, OpenAPI, metrics, then live: SSE, WebSocket events and video (latency,
// a stalled client next to a healthy one), MJPEG.
import { performance } from "node:perf_hooks";
import type { KubernetesObject } from "@kubernetes/client-node";
import { PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { buildGateway } from "../../gateway/app.ts";
import { createKubeCatalog, type KubeCatalog } from "../../gateway/catalog-kube.ts";
import { memoryCatalog } from "../../gateway/catalog-static.ts";
import type { BusFeed } from "../../gateway/feed.ts";
import { createRedisFeed } from "../../gateway/redis-feed.ts";
import type { Clients } from "../../operator/kube/client.ts";
import {
  CHANNELS,
  type EventMessage,
  eventMessage,
  type StatsMessage,
  statsMessage,
} from "../../worker/publish/messages.ts";
import { admin, createCr, freshNamespace, metricValue } from "../setup/kube.ts";
import { type Service, startRedis, waitFor } from "../setup/services.ts";

type Obj = Record<string, any>;
const TOKEN = "gw-test-token-0123456789";
const OTHER_TOKEN = "second-token";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const CAM_A = "gw-cam-a";
const CAM_B = "gw-cam-b";
const CAM_C = "gw-cam-c";
const enc = encodeURIComponent;

let c: Clients;
let ns: string;
/** The cameras' ids, `<namespace>/<name>`. */
let ID_A: string;
let ID_B: string;
let ID_C: string;
let redis: Service;
let pub: Redis;
let feed: BusFeed;
let catalog: KubeCatalog;
let app: FastifyInstance;
let base: string;
let wsBase: string;

const get = (path: string, headers: Record<string, string> = AUTH) => fetch(`${base}${path}`, { headers });
const json = async (path: string) => {
  const r = await get(path);
  return { status: r.status, body: (await r.json()) as Obj };
};
const metrics = async () => (await get("/metrics")).text();

const stats = (cam: string, persons: number, at = new Date()): StatsMessage =>
  statsMessage.parse({
    v: 2,
    type: "stats",
    camera_id: cam,
    timestamp: at.toISOString(),
    data: {
      fps: 4.8,
      persons,
      person: persons,
      inference_ms: 11.5,
      skipped_frames: 3,
      reconnects: 0,
      provider: "cpu",
      frames: 120,
      last_frame_age_ms: 35,
      stream: "streaming",
    },
  });

const event = (cam: string, n: number, at: Date): EventMessage =>
  eventMessage.parse({
    v: 2,
    type: "event",
    id: `${cam}:loitering:${n}:${at.getTime()}`,
    camera_id: cam,
    timestamp: at.toISOString(),
    rule: "loitering",
    kind: "dwell",
    severity: "warning",
    track_id: n,
    zone: "floor",
    box: [10, 20, 110, 220],
    snapshot_key: null,
    detail: `track ${n} in floor for 30 s`,
  });

/** A JPEG-shaped payload (SOI … EOI) carrying a sequence number, `size` bytes long. */
const jpeg = (seq: number, size = 2048) => {
  const b = Buffer.alloc(size, 0x55);
  b[0] = 0xff;
  b[1] = 0xd8;
  b.writeUInt32BE(seq, 2);
  b[size - 2] = 0xff;
  b[size - 1] = 0xd9;
  return b;
};
const seqOf = (b: Buffer) => b.readUInt32BE(2);

const subscribers = async (channel: string) =>
  Number(((await pub.pubsub("NUMSUB", channel)) as [string, number])[1] ?? 0);

function openWs(path: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  const ws = new WebSocket(`${wsBase}${path}`, { headers });
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve(ws));
    ws.once("unexpected-response", (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once("error", reject);
  });
}

const camera = (name: string, extra: Obj = {}) =>
  ({
    apiVersion: "vigil.dev/v1alpha1",
    kind: "CameraDetection",
    metadata: { name },
    spec: {
      source: { url: `rtsp://cams.example.internal:554/${name}?user=viewer&token=SECRET-${name}` },
      poolRef: { name: "p" },
      detection: { targetFps: 5 },
      zones: [
        {
          name: "floor",
          polygon: [
            [0, 0],
            [1, 0],
            [1, 1],
          ],
        },
      ],
      rules: [{ name: "loitering", severity: "warning", dwell: { zone: "floor", seconds: 30 } }],
      ...extra,
    },
  }) as KubernetesObject;

beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "gw");
  [ID_A, ID_B, ID_C] = [CAM_A, CAM_B, CAM_C].map((name) => `${ns}/${name}`) as [string, string, string];
  redis = await startRedis();
  pub = new Redis(redis.port, "127.0.0.1");
  await createCr(c, "detectorpools", ns, {
    apiVersion: "vigil.dev/v1alpha1",
    kind: "DetectorPool",
    metadata: { name: "p" },
    spec: { model: { uri: "file:///models/yolov8n.onnx" }, camerasPerWorker: 4, maxWorkers: 2 },
  } as KubernetesObject);
  await createCr(c, "cameradetections", ns, camera(CAM_A));
  await createCr(c, "cameradetections", ns, camera(CAM_B));

  const registry = new Registry();
  feed = createRedisFeed(`redis://127.0.0.1:${redis.port}`, { registry });
  catalog = createKubeCatalog(c.kc, { namespace: ns });
  app = buildGateway({ feed, catalog, tokens: [TOKEN, OTHER_TOKEN], registry, heartbeatMs: 200, closeGraceMs: 200 });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = app.server.address() as { port: number };
  base = `http://127.0.0.1:${port}`;
  wsBase = `ws://127.0.0.1:${port}`;
  await waitFor("gateway ready", async () => (await get("/readyz")).status === 200);
});

afterAll(async () => {
  await app?.close();
  await feed?.close();
  await catalog?.close();
  pub?.disconnect();
  await redis?.stop();
});

describe("authentication", () => {
  it("answers 401 with WWW-Authenticate without a token or with a wrong one", async () => {
    const none = await get("/api/v1/cameras", {});
    expect(none.status).toBe(401);
    expect(none.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(await none.json()).toMatchObject({ error: "unauthorized", message: expect.stringContaining("token") });
    const wrong = await get("/api/v1/cameras", { authorization: "Bearer not-the-token" });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("www-authenticate")).toContain('error="invalid_token"');
    expect((await get("/metrics", {})).status).toBe(401);
    expect((await get("/readyz", {})).status).toBe(401);
  });

  it("accepts any configured token, in the header or as ?access_token=", async () => {
    expect((await get("/api/v1/cameras")).status).toBe(200);
    expect((await get("/api/v1/cameras", { authorization: `bearer ${OTHER_TOKEN}` })).status).toBe(200);
    expect((await get(`/api/v1/cameras?access_token=${TOKEN}`, {})).status).toBe(200);
    expect((await get("/api/v1/cameras?access_token=nope", {})).status).toBe(401);
  });

  it("keeps /healthz and the API docs open", async () => {
    const h = await get("/healthz", {});
    expect(h.status).toBe(200);
    expect(await h.json()).toEqual({ status: "ok" });
    expect((await get("/docs/json", {})).status).toBe(200);
  });

  it("refuses a WebSocket upgrade without a token", async () => {
    await expect(openWs(`/api/v1/cameras/${enc(ID_A)}/video`)).rejects.toThrow("HTTP 401");
    await expect(openWs("/api/v1/events/ws?access_token=wrong")).rejects.toThrow("HTTP 401");
  });
});

describe("probes, docs and metrics", () => {
  it("is ready once the feed is connected and the catalog synced", async () => {
    const r = await json("/readyz");
    expect(r).toEqual({ status: 200, body: { ready: true, feed: true, catalog: true, message: "ready" } });
  });

  it("answers 503 naming what is not ready", async () => {
    const registry = new Registry();
    const dead = createRedisFeed("redis://127.0.0.1:1", { registry }); // nothing listens on port 1
    const unsynced = { ...memoryCatalog([]), ready: () => false };
    const g = buildGateway({ feed: dead, catalog: unsynced, tokens: [TOKEN], registry });
    try {
      const r = await g.inject({ url: "/readyz", headers: AUTH });
      expect(r.statusCode).toBe(503);
      expect(r.json()).toMatchObject({ ready: false, feed: false, catalog: false });
      expect(r.json().message).toMatch(/bus feed not connected.*camera catalog not synced/);
    } finally {
      await g.close();
      await dead.close();
    }
  });

  it("describes every route in OpenAPI 3 at /docs/json, and serves the UI at /docs", async () => {
    const doc = (await (await get("/docs/json", {})).json()) as Obj;
    expect(doc.openapi).toMatch(/^3\./);
    for (const p of [
      "/api/v1/cameras",
      "/api/v1/cameras/{id}",
      "/api/v1/cameras/{id}/stats",
      "/api/v1/cameras/{id}/events",
      "/api/v1/events",
      "/api/v1/pools",
      "/api/v1/events/stream",
      "/api/v1/events/ws",
      "/api/v1/cameras/{id}/video",
      "/api/v1/cameras/{id}/video.mjpeg",
      "/healthz",
      "/readyz",
      "/metrics",
    ])
      expect(doc.paths, p).toHaveProperty([p, "get"]);
    const events = doc.paths["/api/v1/cameras/{id}/events"].get;
    expect(events.parameters.map((x: Obj) => x.name).sort()).toEqual(["id", "limit", "since"]);
    expect(doc.components.securitySchemes.bearer).toEqual({ type: "http", scheme: "bearer" });
    expect(doc.paths["/healthz"].get.security).toEqual([]);
    const ui = await get("/docs/", {});
    expect(ui.status).toBe(200);
    expect(await ui.text()).toContain("swagger");
  });

  it("exposes Prometheus metrics", async () => {
    await get("/api/v1/pools");
    const text = await metrics();
    for (const name of [
      "http_request_duration_seconds_bucket",
      "vigil_gateway_ws_clients",
      "vigil_gateway_frames_dropped_total",
      "vigil_gateway_cache_entries",
      "vigil_gateway_malformed_total",
    ])
      expect(text).toContain(name);
    expect(text).toMatch(
      /http_request_duration_seconds_count\{method="GET",route="\/api\/v1\/pools",status="200"\} [1-9]/,
    );
  });
});

describe("rate limit and CORS", () => {
  const quiet = (extra: Partial<Parameters<typeof buildGateway>[0]>) =>
    buildGateway({
      feed: { ...feed, on: () => undefined },
      catalog,
      tokens: [TOKEN],
      registry: new Registry(),
      ...extra,
    });

  it("limits REST requests per client with 429, but not health or live endpoints", async () => {
    const g = quiet({ rateLimitPerMinute: 3 });
    try {
      const codes = [];
      for (let i = 0; i < 4; i++) codes.push((await g.inject({ url: "/api/v1/pools", headers: AUTH })).statusCode);
      expect(codes).toEqual([200, 200, 200, 429]);
      const r = await g.inject({ url: "/api/v1/cameras", headers: AUTH });
      expect(r.statusCode).toBe(429);
      expect(r.json()).toMatchObject({ error: "rate_limited", message: expect.stringContaining("per minute") });
      for (let i = 0; i < 5; i++) {
        expect((await g.inject({ url: "/healthz" })).statusCode).toBe(200);
        expect((await g.inject({ url: "/readyz", headers: AUTH })).statusCode).toBe(200);
        expect((await g.inject({ url: `/api/v1/cameras/${enc(ID_A)}/video`, headers: AUTH })).statusCode).toBe(426);
      }
    } finally {
      await g.close();
    }
  });

  it("sends no CORS headers by default, and allows the configured origins", async () => {
    const origin = "https://dash.example";
    const plain = await get("/api/v1/pools", { ...AUTH, origin });
    expect(plain.headers.get("access-control-allow-origin")).toBeNull();
    const g = quiet({ corsOrigins: [origin] });
    try {
      const pre = await g.inject({
        method: "OPTIONS",
        url: "/api/v1/cameras",
        headers: { origin, "access-control-request-method": "GET", "access-control-request-headers": "authorization" },
      });
      expect(pre.statusCode).toBe(204);
      expect(pre.headers["access-control-allow-origin"]).toBe(origin);
      expect(String(pre.headers["access-control-allow-headers"])).toContain("authorization");
      // POST too: a write token may start and stop cameras from another origin's dashboard.
      expect(String(pre.headers["access-control-allow-methods"]).split(/, */)).toEqual([
        "GET",
        "HEAD",
        "POST",
        "OPTIONS",
      ]);
      const r = await g.inject({ url: "/api/v1/pools", headers: { ...AUTH, origin } });
      expect(r.headers["access-control-allow-origin"]).toBe(origin);
      const other = await g.inject({ url: "/api/v1/pools", headers: { ...AUTH, origin: "https://evil.example" } });
      expect(other.headers["access-control-allow-origin"]).toBeUndefined();
    } finally {
      await g.close();
    }
  });
});

describe("REST", () => {
  it("lists cameras from the API with redacted sources, their rules and zones, and merges the latest stats", async () => {
    const before = await json("/api/v1/cameras");
    expect(before.status).toBe(200);
    const ids = before.body.cameras.map((x: Obj) => x.id);
    expect(ids).toEqual([ID_A, ID_B]);
    const a = before.body.cameras[0];
    expect(a).toMatchObject({
      namespace: ns,
      pool: "p",
      targetFps: 5,
      paused: false,
      rules: [{ name: "loitering", kind: "dwell", severity: "warning" }],
      zones: [{ name: "floor" }],
    });
    expect(a.source).toBe(`rtsp://cams.example.internal:554/${CAM_A}?user=***&token=***`);
    expect(JSON.stringify(before.body)).not.toContain("SECRET");

    const s = stats(ID_A, 3);
    await pub.publish(CHANNELS.stats, JSON.stringify(s));
    const after = await waitFor("stats merged", async () => {
      const r = await json("/api/v1/cameras");
      const cam = r.body.cameras.find((x: Obj) => x.id === ID_A);
      return cam?.stats ? r : undefined;
    });
    expect(after.body.cameras.find((x: Obj) => x.id === ID_A).stats).toEqual(s);
    expect(after.body.cameras.find((x: Obj) => x.id === ID_B).stats).toBeNull();
  });

  it("follows the API: status changes and new cameras show up", async () => {
    const cur = (await c.custom.getNamespacedCustomObject({
      group: "vigil.dev",
      version: "v1alpha1",
      namespace: ns,
      plural: "cameradetections",
      name: CAM_A,
    })) as Obj;
    await c.custom.replaceNamespacedCustomObjectStatus({
      group: "vigil.dev",
      version: "v1alpha1",
      namespace: ns,
      plural: "cameradetections",
      name: CAM_A,
      body: { ...cur, status: { phase: "Running", worker: "p-worker-0", fps: 4.9 } },
    });
    const cam = await waitFor("status", async () => {
      const r = await json(`/api/v1/cameras/${enc(ID_A)}`);
      return r.body.status?.phase === "Running" ? r.body : undefined;
    });
    expect(cam.status).toMatchObject({ phase: "Running", worker: "p-worker-0", fps: 4.9 });
    await createCr(c, "cameradetections", ns, camera(CAM_C, { paused: true }));
    const added = await waitFor("new camera", async () => {
      const r = await json(`/api/v1/cameras/${enc(ID_C)}`);
      return r.status === 200 ? r.body : undefined;
    });
    expect(added.paused).toBe(true);
    await c.custom.patchNamespacedCustomObject(
      {
        group: "vigil.dev",
        version: "v1alpha1",
        namespace: ns,
        plural: "cameradetections",
        name: CAM_C,
        body: { spec: { paused: false } },
      },
      setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
    );
    await waitFor("unpaused", async () => (await json(`/api/v1/cameras/${enc(ID_C)}`)).body.paused === false);
    await c.custom.deleteNamespacedCustomObject({
      group: "vigil.dev",
      version: "v1alpha1",
      namespace: ns,
      plural: "cameradetections",
      name: CAM_C,
    });
    await waitFor("deleted camera gone", async () => (await get(`/api/v1/cameras/${enc(ID_C)}`)).status === 404);
  });

  it("answers a camera's stats: 404 before the first, then the latest message", async () => {
    const none = await json(`/api/v1/cameras/${enc(ID_B)}/stats`);
    expect(none).toEqual({
      status: 404,
      body: { error: "not_found", message: `no stats for camera ${ID_B} yet` },
    });
    const unknown = await json(`/api/v1/cameras/${enc(`${ns}/no-such-cam`)}/stats`);
    expect(unknown).toEqual({ status: 404, body: { error: "not_found", message: `no camera ${ns}/no-such-cam` } });
    expect((await json(`/api/v1/cameras/${enc(`${ns}/no-such-cam`)}`)).status).toBe(404);
    // Not a camera id at all (no namespace): a bad request naming the parameter and the form.
    const bare = await json(`/api/v1/cameras/${CAM_B}/stats`);
    expect(bare.status).toBe(400);
    expect(bare.body).toMatchObject({ error: "bad_request", message: expect.stringContaining("'id'") });
    expect(bare.body.message).toContain("must be <namespace>/<name>");

    const older = stats(ID_B, 1, new Date(Date.now() - 5000));
    const newer = stats(ID_B, 2);
    await pub.publish(CHANNELS.stats, JSON.stringify(newer));
    const got = await waitFor("stats", async () => {
      const r = await json(`/api/v1/cameras/${enc(ID_B)}/stats`);
      return r.status === 200 ? r.body : undefined;
    });
    expect(got).toEqual(newer);
    // A late, older message does not replace newer stats.
    await pub.publish(CHANNELS.stats, JSON.stringify(older));
    await pub.publish(CHANNELS.stats, JSON.stringify(stats(ID_A, 7)));
    await waitFor(
      "later stats",
      async () => (await json(`/api/v1/cameras/${enc(ID_A)}/stats`)).body.data?.persons === 7,
    );
    expect((await json(`/api/v1/cameras/${enc(ID_B)}/stats`)).body.data.persons).toBe(2);
  });

  it("drops and counts malformed messages without missing a beat", async () => {
    const count = async (channel: string) =>
      metricValue(await metrics(), "vigil_gateway_malformed_total", `channel="${channel}"`);
    const before = await count(CHANNELS.stats);
    await pub.publish(CHANNELS.stats, "{not json");
    await pub.publish(CHANNELS.stats, JSON.stringify({ ...stats(ID_A, 1), v: 99 }));
    // A v1 message (a worker from before namespaced camera ids) is dropped too, never filed under a wrong camera.
    await pub.publish(CHANNELS.stats, JSON.stringify({ ...stats(ID_A, 1), v: 1, camera_id: CAM_A }));
    await pub.publish(CHANNELS.events, JSON.stringify({ type: "event" }));
    await pub.publish(CHANNELS.stats, JSON.stringify(stats(ID_A, 9)));
    await waitFor(
      "valid message after bad ones",
      async () => (await json(`/api/v1/cameras/${enc(ID_A)}/stats`)).body.data?.persons === 9,
    );
    expect(await count(CHANNELS.stats)).toBe(before + 3);
    expect(await count(CHANNELS.events)).toBeGreaterThanOrEqual(1);
  });

  it("pages events with since and limit, deduplicated by id", async () => {
    const t0 = Date.now() - 60_000;
    const evs = [0, 1, 2, 3, 4].map((i) => event(ID_A, i, new Date(t0 + i * 1000)));
    for (const e of evs) await pub.publish(CHANNELS.events, JSON.stringify(e));
    await pub.publish(CHANNELS.events, JSON.stringify(evs[4])); // a duplicate
    await pub.publish(CHANNELS.events, JSON.stringify(event(ID_B, 9, new Date(t0 + 2500))));
    await waitFor("events", async () => (await json(`/api/v1/cameras/${enc(ID_B)}/events`)).body.events?.length === 1);

    const ids = (r: { body: Obj }) => r.body.events.map((e: EventMessage) => e.id);
    const all = await json(`/api/v1/cameras/${enc(ID_A)}/events`);
    expect(all.body.events).toEqual(evs);
    expect(ids(await json(`/api/v1/cameras/${enc(ID_A)}/events?limit=2`))).toEqual([evs[3]!.id, evs[4]!.id]);
    const since = encodeURIComponent(evs[1]!.timestamp);
    expect(ids(await json(`/api/v1/cameras/${enc(ID_A)}/events?since=${since}&limit=2`))).toEqual([
      evs[2]!.id,
      evs[3]!.id,
    ]);
    expect(ids(await json(`/api/v1/cameras/${enc(ID_A)}/events?since=${t0 + 2000}`))).toEqual([evs[3]!.id, evs[4]!.id]);
    const global = await json(`/api/v1/events?since=${t0 - 1}&limit=1000`);
    expect(global.body.events.map((e: EventMessage) => e.camera_id)).toEqual([ID_A, ID_A, ID_A, ID_A, ID_A, ID_B]);
    expect((await json(`/api/v1/cameras/${enc(`${ns}/no-such-cam`)}/events`)).status).toBe(404);
  });

  it("answers 400 naming the bad parameter", async () => {
    for (const [query, name] of [
      ["limit=0", "limit"],
      ["limit=1001", "limit"],
      ["limit=abc", "limit"],
      ["since=yesterday", "since"],
      ["since=2025-13-45T00:00:00Z", "since"],
    ] as const) {
      for (const path of [`/api/v1/cameras/${enc(ID_A)}/events`, "/api/v1/events"]) {
        const r = await json(`${path}?${query}`);
        expect(r.status, `${path}?${query}`).toBe(400);
        expect(r.body.error).toBe("bad_request");
        expect(r.body.message).toContain(`'${name}'`);
      }
    }
  });

  it("lists pools", async () => {
    const r = await json("/api/v1/pools");
    expect(r.status).toBe(200);
    expect(r.body.pools).toEqual([
      expect.objectContaining({
        name: "p",
        namespace: ns,
        // format and inputSize have no defaults: the worker reads them from the model when the pool omits them.
        model: { uri: "file:///models/yolov8n.onnx" },
        camerasPerWorker: 4,
        minWorkers: 0,
        maxWorkers: 2,
      }),
    ]);
  });
});

describe("live", () => {
  it("streams events as SSE with heartbeats, and resumes after Last-Event-ID", async () => {
    const abort = new AbortController();
    const res = await fetch(`${base}/api/v1/events/stream?access_token=${TOKEN}`, { signal: abort.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let text = "";
    const until = async (what: string, pred: () => boolean) =>
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
        5000,
      );
    await until("heartbeat", () => text.includes(": ping"));
    const e1 = event(ID_B, 21, new Date());
    await pub.publish(CHANNELS.events, JSON.stringify(e1));
    await until("event", () => text.includes(`data: ${JSON.stringify(e1)}`));
    expect(text).toContain(`id: ${e1.id}\n`);
    abort.abort();

    const e2 = event(ID_B, 22, new Date());
    await pub.publish(CHANNELS.events, JSON.stringify(e2));
    await waitFor(
      "e2 cached",
      async () => (await json(`/api/v1/cameras/${enc(ID_B)}/events?limit=1`)).body.events[0]?.id === e2.id,
    );
    const again = await fetch(`${base}/api/v1/events/stream`, { headers: { ...AUTH, "last-event-id": e1.id } });
    const r2 = again.body!.getReader();
    let t2 = "";
    while (!t2.includes(e2.id)) t2 += Buffer.from((await r2.read()).value!).toString();
    expect(t2).toContain(`id: ${e2.id}\n`);
    await r2.cancel();
  });

  it("sends events over a WebSocket", async () => {
    const ws = await openWs(`/api/v1/events/ws?camera=${enc(ID_A)}`, AUTH);
    try {
      const got = new Promise<EventMessage>((resolve) => ws.once("message", (d) => resolve(JSON.parse(String(d)))));
      await waitFor(
        "events client",
        async () => metricValue(await metrics(), "vigil_gateway_ws_clients", 'stream="events"') === 1,
      );
      await pub.publish(CHANNELS.events, JSON.stringify(event(ID_B, 30, new Date()))); // filtered out
      const e = event(ID_A, 31, new Date());
      await pub.publish(CHANNELS.events, JSON.stringify(e));
      expect(await got).toEqual(e);
    } finally {
      ws.close();
    }
  });

  it("answers 404 for the video of an unknown camera and 426 to a plain GET", async () => {
    await expect(openWs(`/api/v1/cameras/${enc(`${ns}/no-such-cam`)}/video`, AUTH)).rejects.toThrow("HTTP 404");
    expect((await get(`/api/v1/cameras/${enc(ID_A)}/video`)).status).toBe(426);
  });

  it("answers ?camera= for a camera of a namespace it does not serve as REST does, on SSE and WebSocket", async () => {
    // The same camera in another namespace exists in the API; this gateway's catalog serves only `ns`.
    const otherNs = await freshNamespace(c, "gw-other");
    await createCr(c, "cameradetections", otherNs, camera(CAM_A));
    const other = enc(`${otherNs}/${CAM_A}`);
    const rest = await json(`/api/v1/cameras/${other}/events`);
    expect(rest).toEqual({ status: 404, body: { error: "not_found", message: `no camera ${otherNs}/${CAM_A}` } });
    const sse = await get(`/api/v1/events/stream?camera=${other}`);
    if (sse.status === 200) await sse.body?.cancel(); // a live stream: the leak this guards against
    expect({ status: sse.status, body: sse.status === 200 ? "a live stream" : await sse.json() }).toEqual(rest);
    await expect(openWs(`/api/v1/events/ws?camera=${other}`, AUTH)).rejects.toThrow("HTTP 404");
  });

  it("delivers JPEG frames over a WebSocket within 100 ms, subscribing video:<cam> only while watched", async () => {
    const channel = CHANNELS.video(ID_A);
    expect(await subscribers(channel)).toBe(0);
    const ws = await openWs(`/api/v1/cameras/${enc(ID_A)}/video?access_token=${TOKEN}`);
    const sent = new Map<number, number>();
    const latency: number[] = [];
    ws.on("message", (d: Buffer, binary) => {
      expect(binary).toBe(true);
      const t = sent.get(seqOf(d));
      if (t !== undefined) latency.push(performance.now() - t);
    });
    await waitFor("video subscription", async () => (await subscribers(channel)) === 1);
    for (let i = 0; i < 20; i++) {
      sent.set(i, performance.now());
      await pub.publish(channel, jpeg(i, 30_000));
      await new Promise((r) => setTimeout(r, 20));
    }
    await waitFor("all frames", async () => latency.length === 20, 2000);
    expect(Math.max(...latency)).toBeLessThan(100);
    ws.close();
    await waitFor("unsubscribed after the last viewer left", async () => (await subscribers(channel)) === 0);
  });

  it("drops frames for a stalled client without delaying a healthy one", async () => {
    const channel = CHANNELS.video(ID_B);
    const stalled = await openWs(`/api/v1/cameras/${enc(ID_B)}/video`, AUTH);
    (stalled as unknown as { _socket: { pause(): void } })._socket.pause(); // stops reading: its buffers fill
    const healthy = await openWs(`/api/v1/cameras/${enc(ID_B)}/video`, AUTH);
    const sent = new Map<number, number>();
    const latency = new Map<number, number>();
    healthy.on("message", (d: Buffer) => {
      const seq = seqOf(d);
      const t = sent.get(seq);
      if (t !== undefined) latency.set(seq, performance.now() - t);
    });
    await waitFor("one subscription for two viewers", async () => (await subscribers(channel)) === 1);
    const dropped = async () => metricValue(await metrics(), "vigil_gateway_frames_dropped_total", 'transport="ws"');
    const before = await dropped();
    const FRAMES = 80;
    for (let i = 0; i < FRAMES; i++) {
      sent.set(i, performance.now());
      await pub.publish(channel, jpeg(i, 256 * 1024));
      await new Promise((r) => setTimeout(r, 20));
    }
    await waitFor("healthy client got every frame", async () => latency.size === FRAMES, 3000);
    const worst = Math.max(...latency.values());
    expect(worst, `worst publish→receive ${worst.toFixed(1)} ms`).toBeLessThan(100);
    // 20 MiB were published; the stalled client's kernel buffers hold a few MiB, the rest was dropped for it alone.
    expect(await dropped()).toBeGreaterThan(before + 10);
    healthy.close();
    stalled.terminate();
    await waitFor("unsubscribed", async () => (await subscribers(channel)) === 0);
  });

  it("serves MJPEG over HTTP as multipart/x-mixed-replace", async () => {
    const channel = CHANNELS.video(ID_A);
    const abort = new AbortController();
    const res = await fetch(`${base}/api/v1/cameras/${enc(ID_A)}/video.mjpeg?access_token=${TOKEN}`, {
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    const type = res.headers.get("content-type") ?? "";
    expect(type).toMatch(/^multipart\/x-mixed-replace; boundary=/);
    const boundary = type.split("boundary=")[1]!;
    await waitFor("mjpeg subscription", async () => (await subscribers(channel)) === 1);
    const frame = jpeg(77, 5000);
    await pub.publish(channel, frame);
    const reader = res.body!.getReader();
    let buf = Buffer.alloc(0);
    const head = `--${boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: ${frame.length}\r\n\r\n`;
    const tail = `\r\n--${boundary}\r\n`;
    while (buf.length < head.length + frame.length + tail.length) {
      const { value, done } = await reader.read();
      if (done) break;
      buf = Buffer.concat([buf, Buffer.from(value)]);
    }
    expect(buf.subarray(0, head.length).toString()).toBe(head);
    expect(buf.subarray(head.length, head.length + frame.length).equals(frame)).toBe(true);
    expect(buf.subarray(head.length + frame.length).toString()).toBe(tail);
    abort.abort();
    await waitFor("unsubscribed", async () => (await subscribers(channel)) === 0);
  });
});

describe("Redis restarts", () => {
  it("starts with each camera's latest stats from hbd:stats:latest", async () => {
    const s = stats(ID_A, 5);
    await pub.hset(CHANNELS.latestStats, ID_A, JSON.stringify(s));
    const registry = new Registry();
    const fresh = createRedisFeed(`redis://127.0.0.1:${redis.port}`, { registry });
    const g = buildGateway({ feed: fresh, catalog, tokens: [TOKEN], registry });
    try {
      const r = await waitFor("replayed stats", async () => {
        const res = await g.inject({ url: `/api/v1/cameras/${enc(ID_A)}/stats`, headers: AUTH });
        return res.statusCode === 200 ? res.json() : undefined;
      });
      expect(r).toEqual(s);
    } finally {
      await g.close();
      await fresh.close();
    }
  });

  it("is unready while Redis is down, then reconnects, resubscribes and delivers again", async () => {
    const channel = CHANNELS.video(ID_A);
    const viewer = await openWs(`/api/v1/cameras/${enc(ID_A)}/video`, AUTH);
    const frames: number[] = [];
    viewer.on("message", (d: Buffer) => frames.push(seqOf(d)));
    await waitFor("video subscription", async () => (await subscribers(channel)) === 1);
    const port = redis.port;
    await redis.stop();
    const down = await waitFor("unready", async () => {
      const r = await json("/readyz");
      return r.status === 503 ? r.body : undefined;
    });
    expect(down).toMatchObject({
      ready: false,
      feed: false,
      catalog: true,
      message: expect.stringContaining("bus feed"),
    });
    redis = await startRedis(port);
    await waitFor("ready again", async () => (await get("/readyz")).status === 200, 15_000);
    await waitFor("video resubscribed", async () => (await subscribers(channel)) === 1, 10_000);
    const s = stats(ID_B, 11);
    await pub.publish(CHANNELS.stats, JSON.stringify(s));
    await pub.publish(channel, jpeg(4242));
    await waitFor(
      "stats after restart",
      async () => (await json(`/api/v1/cameras/${enc(ID_B)}/stats`)).body.data?.persons === 11,
    );
    await waitFor("frame after restart", async () => frames.includes(4242));
    viewer.close();
  });
});
