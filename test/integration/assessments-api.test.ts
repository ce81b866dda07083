// The assessment routes on a real gateway (buildGateway, listening on loopback) over a real Redis, written the way
// `vigil assessor` writes it (test/setup/assessment-results.ts: HSET latest, LPUSH/LTRIM recent lists, PUBLISH).
// REST lists and filters, the served-camera check, tokens, malformed entries dropped with a metric, live pushes on
// SSE (with Last-Event-ID) and WebSocket, empty lists without an assessor, 503 with Redis down, OpenAPI.
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import type { AssessmentResult } from "../../assessor/messages.ts";
import { buildGateway } from "../../gateway/app.ts";
import type { AssessmentSource } from "../../gateway/assessments.ts";
import { createRedisAssessments } from "../../gateway/assessments-redis.ts";
import { memoryCatalog } from "../../gateway/catalog-static.ts";
import { createIpcFeed } from "../../gateway/ipc-feed.ts";
import { bareSummary } from "../setup/alarm-media.ts";
import { resultFixture, storeResult } from "../setup/assessment-results.ts";
import { metricValue } from "../setup/operator-env.ts";
import { type Service, startRedis, waitFor } from "../setup/services.ts";

type Obj = Record<string, any>;
const TOKEN = "assessments-api-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const enc = encodeURIComponent;
const T0 = Date.now() - 60_000;

let redis: Service;
let client: Redis;
let registry: Registry;
let source: AssessmentSource;
let app: FastifyInstance;
let base: string;

const catalog = () => memoryCatalog(["shop/entrance", "shop/yard", "shop/quiet"].map(bareSummary));
const get = (path: string, headers: Record<string, string> = AUTH) => fetch(`${base}${path}`, { headers });
const json = async (path: string, headers?: Record<string, string>) => {
  const r = await get(path, headers);
  return { status: r.status, body: (await r.json()) as Obj };
};
const ids = (list: Obj[]) => list.map((r) => r.id);
const malformed = async (channel: string) =>
  metricValue(
    (await app.inject({ url: "/metrics", headers: AUTH })).body,
    "vigil_gateway_malformed_total",
    `channel="${channel}"`,
  );

// Stored oldest first: the lists are newest first.
const E0 = resultFixture({
  camera: "shop/entrance",
  risk: 0,
  eventId: `shop/entrance:entered:1:${T0}`,
  completedMs: T0 + 1000,
});
const Y2 = resultFixture({
  camera: "shop/yard",
  risk: 2,
  completedMs: T0 + 2000,
  reason: "a ladder against the fence",
});
const H3 = resultFixture({ camera: "other/hidden", risk: 3, completedMs: T0 + 3000 });
const E3 = resultFixture({
  camera: "shop/entrance",
  risk: 3,
  eventId: `shop/entrance:loiter:4:${T0 + 3500}`,
  rule: "loiter",
  labels: ["loitering", "night"],
  reason: "two people wait at the closed door",
  completedMs: T0 + 4000,
});
const E1 = resultFixture({ camera: "shop/entrance", risk: 1, completedMs: T0 + 5000 });

beforeAll(async () => {
  redis = await startRedis();
  const url = `redis://127.0.0.1:${redis.port}`;
  client = new Redis(url);
  client.on("error", () => {}); // the outage case stops Redis under it; it reconnects
  registry = new Registry();
  source = createRedisAssessments(url, { registry });
  app = buildGateway({
    feed: createIpcFeed(),
    catalog: catalog(),
    tokens: [TOKEN],
    registry,
    heartbeatMs: 200,
    closeGraceMs: 200,
    assessments: source,
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  // The gateway's subscription is in place before anything is published (pub/sub keeps nothing for later).
  await waitFor(
    "subscribed",
    async () => ((await client.pubsub("NUMSUB", "vigil:assessments")) as [string, number])[1] === 1,
    10_000,
  );
  await storeResult(client, E0);
  await storeResult(client, Y2);
  // Two entries the gateway must not serve: not JSON, and a risk out of range (the schema says 0..3).
  await storeResult(client, { camera_id: "shop/entrance", raw: "not json" });
  await storeResult(client, { camera_id: "shop/entrance", raw: JSON.stringify({ ...E0, id: "bad", risk: 7 }) });
  await storeResult(client, H3);
  await storeResult(client, E3);
  await storeResult(client, E1);
}, 60_000);

afterAll(async () => {
  await app?.close();
  await source?.close();
  client?.disconnect();
  await redis?.stop();
});

describe("GET /api/v1/assessments", () => {
  it("lists served cameras' results newest first, malformed entries dropped and counted", async () => {
    const before = await malformed("vigil:assessments:recent");
    const { status, body } = await json("/api/v1/assessments");
    expect(status).toBe(200);
    expect(ids(body.assessments)).toEqual([E1.id, E3.id, Y2.id, E0.id]);
    expect(body.assessments[1]).toEqual(E3);
    expect(await malformed("vigil:assessments:recent")).toBe(before + 2);
    // The two malformed ones were published too: the live side dropped and counted them as well.
    await waitFor("both counted on the channel", async () => (await malformed("vigil:assessments")) === 2, 5_000);
  });

  it("filters by camera, minRisk and limit; refuses a camera it does not serve and bad parameters", async () => {
    expect(ids((await json(`/api/v1/assessments?camera=${enc("shop/entrance")}`)).body.assessments)).toEqual([
      E1.id,
      E3.id,
      E0.id,
    ]);
    expect(ids((await json("/api/v1/assessments?minRisk=2")).body.assessments)).toEqual([E3.id, Y2.id]);
    expect(ids((await json("/api/v1/assessments?limit=2")).body.assessments)).toEqual([E1.id, E3.id]);
    expect(
      ids((await json(`/api/v1/assessments?camera=${enc("shop/entrance")}&minRisk=1&limit=1`)).body.assessments),
    ).toEqual([E1.id]);
    const hidden = await json(`/api/v1/assessments?camera=${enc("other/hidden")}`);
    expect(hidden).toEqual({ status: 404, body: { error: "not_found", message: "no camera other/hidden" } });
    const bad = await json("/api/v1/assessments?minRisk=4");
    expect(bad.status).toBe(400);
    expect(bad.body.message).toContain("minRisk");
    expect((await json("/api/v1/assessments?camera=nope")).status).toBe(400);
  });

  it("needs a token (header or access_token)", async () => {
    expect((await json("/api/v1/assessments", {})).status).toBe(401);
    expect((await json("/api/v1/assessments", { authorization: "Bearer wrong" })).status).toBe(401);
    expect((await json(`/api/v1/cameras/${enc("shop/yard")}/assessments`, {})).status).toBe(401);
    expect((await json(`/api/v1/assessments?access_token=${TOKEN}`, {})).status).toBe(200);
  });
});

describe("GET /api/v1/cameras/{id}/assessments", () => {
  it("answers the camera's latest and its recent results", async () => {
    const { status, body } = await json(`/api/v1/cameras/${enc("shop/entrance")}/assessments`);
    expect(status).toBe(200);
    expect(body.camera).toBe("shop/entrance");
    expect(body.latest).toEqual(E1);
    expect(ids(body.assessments)).toEqual([E1.id, E3.id, E0.id]);
    const risky = await json(`/api/v1/cameras/${enc("shop/entrance")}/assessments?minRisk=3`);
    expect(risky.body.latest.id).toBe(E1.id); // the latest whatever its risk
    expect(ids(risky.body.assessments)).toEqual([E3.id]);
    // A sample-triggered one is in its camera's list.
    const yard = await json(`/api/v1/cameras/${enc("shop/yard")}/assessments`);
    expect(yard.body.latest).toMatchObject({
      id: Y2.id,
      trigger: { kind: "sample" },
      reason: "a ladder against the fence",
    });
  });

  it("null and empty for a camera without results; 404 for one not served; a malformed latest dropped", async () => {
    expect(await json(`/api/v1/cameras/${enc("shop/quiet")}/assessments`)).toEqual({
      status: 200,
      body: { camera: "shop/quiet", latest: null, assessments: [] },
    });
    expect((await json(`/api/v1/cameras/${enc("other/hidden")}/assessments`)).status).toBe(404);
    const before = await malformed("vigil:assessments:latest");
    await client.hset("vigil:assessments:latest", "shop/quiet", '{"v":1}');
    expect((await json(`/api/v1/cameras/${enc("shop/quiet")}/assessments`)).body.latest).toBeNull();
    expect(await malformed("vigil:assessments:latest")).toBe(before + 1);
    await client.hdel("vigil:assessments:latest", "shop/quiet");
  });
});

describe("live assessments", () => {
  it("push each new result on SSE and WebSocket, filtered, once, for served cameras only; SSE resumes with Last-Event-ID", async () => {
    const abort = new AbortController();
    const res = await fetch(`${base}/api/v1/assessments/stream?access_token=${TOKEN}`, { signal: abort.signal });
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
    const ws = new WebSocket(
      `${base.replace("http", "ws")}/api/v1/assessments/ws?camera=${enc("shop/yard")}&minRisk=2`,
      {
        headers: AUTH,
      },
    );
    const wsGot: Obj[] = [];
    ws.on("message", (d) => wsGot.push(JSON.parse(String(d))));
    await new Promise((r, j) => {
      ws.once("open", r);
      ws.once("error", j);
    });
    try {
      await until("connected", () => text.includes(": connected"));
      const now = Date.now();
      const hidden = resultFixture({ camera: "other/hidden", risk: 3, completedMs: now });
      const yardLow = resultFixture({ camera: "shop/yard", risk: 1, completedMs: now + 1 });
      const entrance = resultFixture({
        camera: "shop/entrance",
        risk: 3,
        eventId: `shop/entrance:entered:9:${now}`,
        completedMs: now + 2,
      });
      const yardHigh = resultFixture({
        camera: "shop/yard",
        risk: 3,
        completedMs: now + 3,
        reason: "someone on the roof",
      });
      for (const r of [hidden, yardLow, entrance, yardHigh]) await storeResult(client, r);
      // The same result published again (a redelivered task): pushed once.
      await client.publish("vigil:assessments", JSON.stringify(entrance));
      await storeResult(client, { camera_id: "shop/yard", raw: "{broken" });
      const last = resultFixture({ camera: "shop/entrance", risk: 0, completedMs: now + 4 });
      await storeResult(client, last);
      await until("the last one", () => text.includes(`"id":${JSON.stringify(last.id)}`));
      const frames = text
        .split("\n\n")
        .filter((f) => f.includes("data: "))
        .map((f) => ({
          id: /^id: (.+)$/m.exec(f)?.[1],
          data: JSON.parse(f.slice(f.indexOf("data: ") + 6)) as AssessmentResult,
        }));
      expect(frames.map((f) => f.data.id)).toEqual([yardLow.id, entrance.id, yardHigh.id, last.id]);
      expect(frames.map((f) => f.id)).toEqual(frames.map((f) => f.data.id));
      expect(frames[1]!.data).toEqual(entrance);
      await waitFor("the yard's risky one on the WebSocket", async () => wsGot.length >= 1, 10_000);
      await new Promise((r) => setTimeout(r, 200));
      expect(ids(wsGot)).toEqual([yardHigh.id]);
      const metrics = (await app.inject({ url: "/metrics", headers: AUTH })).body;
      expect(metricValue(metrics, "vigil_gateway_http_stream_clients", 'stream="assessments"')).toBe(1);
      expect(metricValue(metrics, "vigil_gateway_ws_clients", 'stream="assessments"')).toBe(1);

      // Reconnecting with the id of the second: what came after it, oldest first, then live ones.
      abort.abort();
      const later = resultFixture({ camera: "shop/yard", risk: 2, completedMs: now + 5 });
      await storeResult(client, later);
      const again = await fetch(`${base}/api/v1/assessments/stream`, {
        headers: { ...AUTH, "last-event-id": entrance.id },
      });
      const r2 = again.body!.getReader();
      let t2 = "";
      while (!t2.includes(`"id":${JSON.stringify(later.id)}`)) t2 += Buffer.from((await r2.read()).value!).toString();
      const resumed = [...t2.matchAll(/^id: (.+)$/gm)].map((m) => m[1]);
      expect(resumed).toEqual([yardHigh.id, last.id, later.id]);
      const live = resultFixture({ camera: "shop/entrance", risk: 2, completedMs: now + 6 });
      await storeResult(client, live);
      while (!t2.includes(`"id":${JSON.stringify(live.id)}`)) t2 += Buffer.from((await r2.read()).value!).toString();
      await r2.cancel();
    } finally {
      ws.close();
      abort.abort();
    }
  });

  it("refuse a camera this gateway does not serve, and a plain GET of the WebSocket", async () => {
    const r = await get(`/api/v1/assessments/stream?camera=${enc("other/hidden")}`);
    expect(r.status).toBe(404);
    await r.text();
    expect((await get("/api/v1/assessments/ws")).status).toBe(426);
    expect((await get("/api/v1/assessments/stream", {})).status).toBe(401);
  });
});

describe("without an assessor, and with Redis down", () => {
  it("answers empty lists when the gateway has no assessment source (vigil up without Redis)", async () => {
    const bare = buildGateway({ feed: createIpcFeed(), catalog: catalog(), tokens: [TOKEN], registry: new Registry() });
    try {
      const list = await bare.inject({ url: "/api/v1/assessments", headers: AUTH });
      expect([list.statusCode, list.json()]).toEqual([200, { assessments: [] }]);
      const one = await bare.inject({ url: `/api/v1/cameras/${enc("shop/yard")}/assessments`, headers: AUTH });
      expect([one.statusCode, one.json()]).toEqual([200, { camera: "shop/yard", latest: null, assessments: [] }]);
    } finally {
      await bare.close();
    }
  });

  it("describes the routes in the OpenAPI document", async () => {
    const doc = (await json("/docs/json", {})).body;
    for (const p of [
      "/api/v1/assessments",
      "/api/v1/cameras/{id}/assessments",
      "/api/v1/assessments/stream",
      "/api/v1/assessments/ws",
    ])
      expect(doc.paths[p]?.get, p).toBeDefined();
    const params = doc.paths["/api/v1/assessments"].get.parameters.map((p: Obj) => p.name).sort();
    expect(params).toEqual(["camera", "limit", "minRisk"]);
  });

  it("answers 503 while Redis is down (configured, unreachable), and lists again once it is back", async () => {
    const port = redis.port;
    await redis.stop();
    const down = await get("/api/v1/assessments");
    expect(down.status).toBe(503);
    expect(down.headers.get("retry-after")).toBe("5");
    expect(((await down.json()) as Obj).error).toBe("unavailable");
    redis = await startRedis(port);
    await waitFor(
      "listing again (an empty Redis)",
      async () => (await get("/api/v1/assessments")).status === 200,
      15_000,
    );
  });
});
