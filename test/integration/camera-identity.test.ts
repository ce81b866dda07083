// One camera name in two namespaces: `entrance` in a shop and in a depot must stay two cameras end to end. A real
// worker runs both from one manifest file (manifests mode) on the real model, each from its own video (the depot's
// is cropped to 2:1, so its frames have another shape), at its own rate and with its own rule, publishing on real
// Redis. Two real gateway processes read them: one with its catalog from that file, one from the Kubernetes API over
// all namespaces (the same CameraDetections applied there). REST, stats, events, video and the dashboard must each
// show the right camera.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { KubernetesObject } from "@kubernetes/client-node";
import { Redis } from "ioredis";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { WebSocket } from "ws";
import { stringify } from "yaml";
import { CHANNELS, type EventMessage, eventMessage, parseMessage } from "../../worker/publish/messages.ts";
import { launchChromium } from "../setup/browser.ts";
import { admin, createCr, freshNamespace } from "../setup/kube.ts";
import {
  FIXTURES,
  type GatewayProc,
  type Service,
  startGateway,
  startRedis,
  startWorker,
  type WorkerProc,
  waitFor,
} from "../setup/services.ts";

type Obj = Record<string, any>;
const TOKEN = "identity-test-token-0123456789";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const dir = mkdtempSync(join(tmpdir(), "vigil-identity-"));

let shopNs: string;
let depotNs: string;
let SHOP: string;
let DEPOT: string;
let redis: Service;
let sub: Redis;
let worker: WorkerProc;
let staticGw: GatewayProc;
let kubeGw: GatewayProc;
const busEvents: EventMessage[] = [];

/** What tells the two cameras apart, besides their namespace. */
const setup = () => ({
  [SHOP]: { ns: shopNs, fps: 10, rule: "shop-entered", size: { width: 640, height: 480 } },
  [DEPOT]: { ns: depotNs, fps: 4, rule: "depot-entered", size: { width: 640, height: 320 } },
});
const enc = encodeURIComponent;
const get = (g: GatewayProc, path: string) => fetch(`${g.base}${path}`, { headers: AUTH });
const json = async (g: GatewayProc, path: string) => {
  const r = await get(g, path);
  return { status: r.status, body: (await r.json()) as Obj };
};
const jpegSize = async (jpeg: Buffer) => {
  const m = await sharp(jpeg).metadata();
  return { width: m.width, height: m.height };
};
const subscribers = async (channel: string) =>
  Number(((await sub.pubsub("NUMSUB", channel)) as [string, number])[1] ?? 0);

const camera = (namespace: string, video: string, targetFps: number, rule: string) => ({
  apiVersion: "vigil.dev/v1alpha1",
  kind: "CameraDetection",
  metadata: { name: "entrance", namespace },
  spec: {
    source: { url: `file://${video}` },
    poolRef: { name: "local" },
    detection: { targetFps },
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
    rules: [{ name: rule, severity: "info", cooldownSeconds: 600, presence: { zone: "floor" } }],
  },
});
const pool = (namespace: string) => ({
  apiVersion: "vigil.dev/v1alpha1",
  kind: "DetectorPool",
  metadata: { name: "local", namespace },
  spec: { model: { uri: `file://${join(FIXTURES, "yolov8n.onnx")}` } },
});

beforeAll(async () => {
  const c = admin();
  shopNs = await freshNamespace(c, "shop");
  depotNs = await freshNamespace(c, "depot");
  SHOP = `${shopNs}/entrance`;
  DEPOT = `${depotNs}/entrance`;
  // The depot's camera sees the middle band of the same scene: people still walk through it, but its annotated
  // frames are 640×320 where the shop's are 640×480.
  const depotVideo = join(dir, "depot.avi");
  await promisify(execFile)("ffmpeg", [
    ...["-y", "-loglevel", "error", "-i", join(FIXTURES, "vtest.avi"), "-t", "40"],
    ...["-vf", "crop=768:384:0:96", "-c:v", "mpeg4", "-q:v", "3", depotVideo],
  ]);
  const docs = [
    pool(shopNs),
    pool(depotNs),
    camera(shopNs, join(FIXTURES, "vtest.avi"), 10, "shop-entered"),
    camera(depotNs, depotVideo, 4, "depot-entered"),
  ];
  const file = join(dir, "cameras.yaml");
  writeFileSync(file, docs.map((d) => stringify(d)).join("---\n"));
  for (const d of docs)
    await createCr(
      c,
      d.kind === "DetectorPool" ? "detectorpools" : "cameradetections",
      d.metadata.namespace,
      d as KubernetesObject,
    );

  redis = await startRedis();
  sub = new Redis(redis.port, "127.0.0.1");
  const events = new Redis(redis.port, "127.0.0.1");
  await events.subscribe(CHANNELS.events);
  events.on("message", (_channel, raw) => {
    const r = parseMessage(eventMessage, raw);
    if (r.ok) busEvents.push(r.value);
  });
  worker = await startWorker(["--cameras", file], redis.port, { VIGIL_REALTIME_FILES: "true" });
  staticGw = await startGateway(["--manifests", file], redis.port, { VIGIL_API_TOKEN: TOKEN });
  kubeGw = await startGateway([], redis.port, { VIGIL_API_TOKEN: TOKEN, KUBECONFIG: inject("kubeconfig") });
  for (const g of [staticGw, kubeGw])
    await waitFor("gateway ready", async () => (await get(g, "/readyz")).status === 200, 30_000).catch((err) => {
      throw new Error(`${err}\n${g.logs.join("").slice(-2000)}`);
    });
}, 120_000);

afterAll(async () => {
  for (const p of [staticGw?.proc, kubeGw?.proc, worker?.proc]) p?.kill("SIGTERM");
  sub?.disconnect();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("two namespaces with a camera of the same name", () => {
  it("are two cameras in REST, on the static and the Kubernetes catalog, each with its own spec", async () => {
    for (const g of [staticGw, kubeGw]) {
      const list = await json(g, "/api/v1/cameras");
      expect(list.status).toBe(200);
      const mine = (list.body.cameras as Obj[])
        .filter((x) => x.namespace === shopNs || x.namespace === depotNs)
        .map((x) => ({
          id: x.id,
          name: x.name,
          namespace: x.namespace,
          targetFps: x.targetFps,
          rules: x.rules.map((r: Obj) => r.name),
        }));
      expect(mine).toEqual([
        { id: DEPOT, name: "entrance", namespace: depotNs, targetFps: 4, rules: ["depot-entered"] },
        { id: SHOP, name: "entrance", namespace: shopNs, targetFps: 10, rules: ["shop-entered"] },
      ]);
      for (const [id, want] of Object.entries(setup())) {
        const one = await json(g, `/api/v1/cameras/${enc(id)}`);
        expect(one.status).toBe(200);
        expect(one.body).toMatchObject({ id, namespace: want.ns, targetFps: want.fps, rules: [{ name: want.rule }] });
      }
      // The id is one path segment: unencoded, it is no route.
      expect((await get(g, `/api/v1/cameras/${SHOP}`)).status).toBe(404);
      const bare = await json(g, "/api/v1/cameras/entrance");
      expect(bare.status).toBe(400);
      expect(bare.body.message).toMatch(/'id'.*<namespace>\/<name>/);
    }
  });

  it("keep their own stats, on both gateways and in hbd:stats:latest", { timeout: 90_000 }, async () => {
    for (const g of [staticGw, kubeGw]) {
      // The worker samples the shop's video at 10 fps and the depot's at 4: each camera's stats say its own rate.
      const shop = await waitFor(
        "shop stats at its rate",
        async () => {
          const r = await json(g, `/api/v1/cameras/${enc(SHOP)}/stats`);
          return r.status === 200 && r.body.data.fps >= 8 ? r.body : undefined;
        },
        60_000,
        200,
      ).catch((err) => {
        throw new Error(`${err}\n${worker.logs.join("").slice(-3000)}`);
      });
      expect(shop).toMatchObject({ v: 2, camera_id: SHOP, data: { stream: "streaming" } });
      const depot = await waitFor(
        "depot stats at its rate",
        async () => {
          const r = await json(g, `/api/v1/cameras/${enc(DEPOT)}/stats`);
          return r.status === 200 && r.body.data.frames > 0 && r.body.data.fps <= 5.5 ? r.body : undefined;
        },
        30_000,
        200,
      );
      expect(depot).toMatchObject({ camera_id: DEPOT, data: { stream: "streaming" } });
      const view = await json(g, `/api/v1/cameras/${enc(DEPOT)}`);
      expect(view.body.stats.camera_id).toBe(DEPOT);
    }
    const latest = await sub.hgetall(CHANNELS.latestStats);
    expect(Object.keys(latest).sort()).toEqual([DEPOT, SHOP]);
    for (const id of [DEPOT, SHOP]) expect(JSON.parse(latest[id]!).camera_id).toBe(id);
  });

  it("keep their own events: ids, REST per camera and global, SSE and WebSocket filtered by camera", {
    timeout: 90_000,
  }, async () => {
    await waitFor(
      "events of both cameras on the bus",
      async () => busEvents.some((e) => e.camera_id === SHOP) && busEvents.some((e) => e.camera_id === DEPOT),
      60_000,
    );
    for (const e of busEvents) {
      const want = setup()[e.camera_id];
      expect(want, e.camera_id).toBeDefined();
      expect(e.rule).toBe(want!.rule);
      expect(e.id.startsWith(`${e.camera_id}:${want!.rule}:${e.track_id}:`)).toBe(true);
    }
    for (const g of [staticGw, kubeGw]) {
      for (const [id, want] of Object.entries(setup())) {
        const events = await waitFor(`${id} events over REST`, async () => {
          const r = await json(g, `/api/v1/cameras/${enc(id)}/events?limit=1000`);
          return r.body.events?.length > 0 ? (r.body.events as EventMessage[]) : undefined;
        });
        for (const e of events) expect(e).toMatchObject({ camera_id: id, rule: want.rule });
      }
      const all = (await json(g, "/api/v1/events?limit=1000")).body.events as EventMessage[];
      expect(new Set(all.map((e) => e.camera_id))).toEqual(new Set([SHOP, DEPOT]));
    }

    // Live, filtered by the camera's id: only the shop's events, while the depot's flow on the same bus.
    const abort = new AbortController();
    const sse = await fetch(`${staticGw.base}/api/v1/events/stream?camera=${enc(SHOP)}&access_token=${TOKEN}`, {
      signal: abort.signal,
    });
    expect(sse.status).toBe(200);
    const ws = new WebSocket(`${staticGw.base.replace("http", "ws")}/api/v1/events/ws?camera=${enc(DEPOT)}`, {
      headers: AUTH,
    });
    const overWs: EventMessage[] = [];
    ws.on("message", (d) => overWs.push(JSON.parse(String(d))));
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    const from = busEvents.length;
    const overSse: EventMessage[] = [];
    const reader = sse.body!.getReader();
    let text = "";
    const reading = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        text += Buffer.from(value).toString();
        let end = text.indexOf("\n\n");
        while (end >= 0) {
          const data = /^data: (.*)$/m.exec(text.slice(0, end))?.[1];
          if (data) overSse.push(JSON.parse(data));
          text = text.slice(end + 2);
          end = text.indexOf("\n\n");
        }
      }
    })().catch(() => undefined);
    await waitFor(
      "live events of both cameras, each on its own stream",
      async () => {
        const later = busEvents.slice(from);
        return (
          overSse.length > 0 &&
          overWs.length > 0 &&
          later.some((e) => e.camera_id === SHOP) &&
          later.some((e) => e.camera_id === DEPOT)
        );
      },
      60_000,
    );
    abort.abort();
    ws.close();
    await reading;
    expect(new Set(overSse.map((e) => e.camera_id))).toEqual(new Set([SHOP]));
    expect(new Set(overWs.map((e) => e.camera_id))).toEqual(new Set([DEPOT]));
  });

  it("play their own video, each on its own channel, over WebSocket and MJPEG", { timeout: 60_000 }, async () => {
    const ws = new WebSocket(`${staticGw.base.replace("http", "ws")}/api/v1/cameras/${enc(SHOP)}/video`, {
      headers: AUTH,
    });
    const frames: Buffer[] = [];
    ws.on("message", (d: Buffer) => frames.push(d));
    await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
    await waitFor("three shop frames", async () => frames.length >= 3, 30_000);
    expect(await subscribers(CHANNELS.video(SHOP))).toBe(1);
    expect(await subscribers(CHANNELS.video(DEPOT))).toBe(0);
    for (const f of frames.slice(0, 3)) expect(await jpegSize(f)).toEqual(setup()[SHOP]!.size);
    ws.close();

    const abort = new AbortController();
    const res = await fetch(`${staticGw.base}/api/v1/cameras/${enc(DEPOT)}/video.mjpeg?access_token=${TOKEN}`, {
      signal: abort.signal,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let buf = Buffer.alloc(0);
    let jpeg: Buffer | undefined;
    while (!jpeg) {
      const { value, done } = await reader.read();
      if (done) throw new Error("MJPEG stream ended");
      buf = Buffer.concat([buf, value]);
      const head = /Content-Length: (\d+)\r\n\r\n/.exec(buf.toString("latin1"));
      if (head) {
        const start = head.index + head[0].length;
        const length = Number(head[1]);
        if (buf.length >= start + length) jpeg = buf.subarray(start, start + length);
      }
    }
    abort.abort();
    expect(await jpegSize(jpeg)).toEqual(setup()[DEPOT]!.size);
    await waitFor("video channels released", async () => (await subscribers(CHANNELS.video(DEPOT))) === 0);
  });

  it("are two tiles on the dashboard, each named and playing its own camera", { timeout: 60_000 }, async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(`${staticGw.base}/?access_token=${TOKEN}`);
      await page.waitForFunction(
        () =>
          [...(globalThis as any).document.querySelectorAll('[data-testid="camera-tile"]')].filter(
            (t: any) => t.querySelector('[data-testid="camera-video"]').naturalWidth > 0,
          ).length === 2,
        undefined,
        { timeout: 45_000 },
      );
      const tiles = await page.getByTestId("camera-tile").evaluateAll((els: any[]) =>
        els.map((t) => ({
          camera: t.dataset.camera,
          name: t.querySelector('[data-testid="camera-name"]').textContent,
          namespace: t.querySelector('[data-testid="camera-namespace"]').textContent,
          src: new URL(t.querySelector('[data-testid="camera-video"]').src).pathname,
          size: {
            width: t.querySelector('[data-testid="camera-video"]').naturalWidth,
            height: t.querySelector('[data-testid="camera-video"]').naturalHeight,
          },
        })),
      );
      expect(tiles).toEqual(
        [DEPOT, SHOP].map((id) => ({
          camera: id,
          name: "entrance",
          namespace: setup()[id]!.ns,
          src: `/api/v1/cameras/${enc(id)}/video.mjpeg`,
          size: setup()[id]!.size,
        })),
      );
      // The detail view of one, by its encoded id in the page's address.
      await page.getByTestId("camera-tile").filter({ hasText: shopNs }).getByRole("link").click();
      await page.getByTestId("camera-detail").waitFor({ state: "visible" });
      expect(new URL(page.url()).hash).toBe(`#/camera/${enc(SHOP)}`);
      await page.waitForFunction(
        () => (globalThis as any).document.querySelector('[data-testid="detail-video"]').naturalWidth > 0,
        undefined,
        { timeout: 20_000 },
      );
      expect(
        await page
          .getByTestId("detail-video")
          .evaluate((e: any) => ({ width: e.naturalWidth, height: e.naturalHeight })),
      ).toEqual(setup()[SHOP]!.size);
    } finally {
      await browser.close();
    }
  });
});
