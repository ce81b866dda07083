// `vigil gateway` as a real process: configuration errors, the static catalog from manifests (single-host mode),
// the served-camera check on live streams, probes and metrics on their own port without the API token, tokens kept
// out of the logs, and a clean stop on SIGTERM with a live stream open.
import { type ChildProcess, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { stringify } from "yaml";
import { CHANNELS, statsMessage } from "../../worker/publish/messages.ts";
import { exitOf, ROOT } from "../setup/operator-env.ts";
import { type Service, startGateway, startRedis, waitFor } from "../setup/services.ts";

const TOKEN = "cli-token-abcdef0123456789";
const PASSWORD = "cam-Pa55word";
const VIGIL = join(ROOT, "bin", "vigil.ts");
let redis: Service;
let gateway: ChildProcess;
let base: string;
const logs: string[] = [];

const get = (path: string, headers: Record<string, string> = { authorization: `Bearer ${TOKEN}` }) =>
  fetch(`${base}${path}`, { headers });

beforeAll(async () => {
  redis = await startRedis();
  const file = join(tmpdir(), `vigil-gateway-${process.pid}.yaml`);
  writeFileSync(
    file,
    [
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "lobby-creds", namespace: "site-a" },
        stringData: { username: "u", password: PASSWORD },
      },
      {
        apiVersion: "vigil.dev/v1alpha1",
        kind: "DetectorPool",
        metadata: { name: "local" },
        spec: { model: { uri: "file:///models/yolov8n.onnx" } },
      },
      {
        apiVersion: "vigil.dev/v1alpha1",
        kind: "CameraDetection",
        metadata: { name: "lobby", namespace: "site-a" },
        spec: {
          source: { url: "rtsp://10.0.0.7:554/lobby", credentialsSecretRef: { name: "lobby-creds" } },
          poolRef: { name: "local" },
        },
      },
    ]
      .map((d) => stringify(d))
      .join("---\n"),
  );
  // Health and metrics on a port of the OS's choosing (VIGIL_GATEWAY_HEALTH_PORT=0), read back from the log.
  ({ proc: gateway, base } = await startGateway(
    ["--manifests", file],
    redis.port,
    { VIGIL_API_TOKEN: `${TOKEN}, other-token`, VIGIL_GATEWAY_HEALTH_PORT: "0" },
    logs,
  ));
  await waitFor("gateway ready", async () => (await get("/readyz")).status === 200, 30_000);
});

/** The health port's base URL, from the "gateway listening" log line. */
async function healthBase(): Promise<string> {
  const listening = await waitFor(
    "the health port in the log",
    async () =>
      logs
        .join("")
        .split("\n")
        .map((l) => (l.startsWith("{") ? (JSON.parse(l) as { msg?: string; healthPort?: number }) : {}))
        .find((l) => l.msg === "gateway listening" && typeof l.healthPort === "number"),
    5000,
  ).catch((err) => {
    throw new Error(`${err}\n${logs.join("").slice(-2000)}`);
  });
  return `http://127.0.0.1:${listening.healthPort}`;
}

afterAll(async () => {
  if (gateway && gateway.exitCode === null) gateway.kill("SIGKILL");
  await redis?.stop();
});

describe("vigil gateway", () => {
  it("refuses to start without VIGIL_API_TOKEN, or with a bad health port, saying so", () => {
    const env = { ...process.env };
    delete env.VIGIL_API_TOKEN;
    const r = spawnSync(process.execPath, [VIGIL, "gateway"], { env, encoding: "utf8", timeout: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("VIGIL_API_TOKEN");
    const port = spawnSync(process.execPath, [VIGIL, "gateway"], {
      env: { ...env, VIGIL_API_TOKEN: TOKEN, VIGIL_GATEWAY_HEALTH_PORT: "health" },
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(port.status).toBe(1);
    expect(port.stderr).toContain("VIGIL_GATEWAY_HEALTH_PORT");
  });

  it("serves /healthz, /readyz and /metrics on the health port without a token; the API port still wants one", {
    timeout: 60_000,
  }, async () => {
    const health = await healthBase();
    const open = async (path: string) => {
      const r = await fetch(`${health}${path}`);
      return { status: r.status, type: r.headers.get("content-type") ?? "", text: await r.text() };
    };
    expect(await open("/healthz")).toMatchObject({ status: 200, text: JSON.stringify({ status: "ok" }) });
    const ready = await open("/readyz");
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toEqual({ ready: true, feed: true, catalog: true, message: "ready" });
    await get("/api/v1/cameras");
    const metrics = await open("/metrics");
    expect(metrics.status).toBe(200);
    expect(metrics.type).toMatch(/^text\/plain/);
    expect(metrics.text).toContain("vigil_gateway_cache_entries");
    expect(metrics.text).toMatch(
      /http_request_duration_seconds_count\{method="GET",route="\/api\/v1\/cameras",status="200"\} [1-9]/,
    );
    // The health port carries no API, and the API port keeps its token for readiness and metrics.
    expect((await open("/api/v1/cameras")).status).toBe(404);
    expect((await get("/metrics", {})).status).toBe(401);
    expect((await get("/readyz", {})).status).toBe(401);
    expect((await get("/healthz", {})).status).toBe(200);
    expect((await get("/metrics")).status).toBe(200);

    // What a kubelet's readiness probe sees while Redis is away, and after it is back.
    const port = redis.port;
    await redis.stop();
    const down = await waitFor("unready on the health port", async () => {
      const r = await open("/readyz");
      return r.status === 503 ? JSON.parse(r.text) : undefined;
    });
    expect(down).toMatchObject({ ready: false, feed: false, catalog: true });
    redis = await startRedis(port);
    await waitFor("ready again", async () => (await open("/readyz")).status === 200, 15_000);
  });

  it("answers ?camera= on the live event streams for a camera it does not serve as REST does", async () => {
    // The same name in a namespace this gateway does not serve: its events may well be on the shared Redis.
    const other = encodeURIComponent("site-b/lobby");
    const rest = await get(`/api/v1/cameras/${other}/events`);
    const restBody = await rest.json();
    expect({ status: rest.status, body: restBody }).toEqual({
      status: 404,
      body: { error: "not_found", message: "no camera site-b/lobby" },
    });
    const res = await get(`/api/v1/events/stream?camera=${other}`);
    const sse = { status: res.status, body: res.status === 200 ? "a live stream" : await res.json() };
    if (res.status === 200) await res.body?.cancel();
    const ws = await new Promise<{ status: number; body: unknown }>((resolve) => {
      const socket = new WebSocket(`${base.replace("http", "ws")}/api/v1/events/ws?camera=${other}`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      socket.once("open", () => {
        socket.close();
        resolve({ status: 101, body: "a WebSocket" });
      });
      socket.once("unexpected-response", (_req, res) => {
        let text = "";
        res.on("data", (b: Buffer) => {
          text += b.toString();
        });
        res.once("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      });
      socket.once("error", () => undefined);
    });
    const same = { status: rest.status, body: restBody };
    expect({ sse, ws }).toEqual({ sse: same, ws: same });
    // A camera it serves streams as before.
    const served = await fetch(`${base}/api/v1/events/stream?camera=site-a%2Flobby&access_token=${TOKEN}`);
    expect(served.status).toBe(200);
    await served.body?.cancel();
  });

  it("serves the cameras of a manifest file without their credentials", async () => {
    const r = await get("/api/v1/cameras");
    expect(r.status).toBe(200);
    const body = (await r.json()) as { cameras: Record<string, unknown>[] };
    expect(body.cameras).toEqual([
      expect.objectContaining({
        id: "site-a/lobby",
        name: "lobby",
        namespace: "site-a",
        pool: "local",
        source: "rtsp://10.0.0.7:554/lobby",
      }),
    ]);
    expect(JSON.stringify(body)).not.toContain(PASSWORD);
    const pools = (await (await get("/api/v1/pools")).json()) as { pools: { name: string }[] };
    expect(pools.pools.map((p) => p.name)).toEqual(["local"]);
    expect((await get("/api/v1/cameras", { authorization: "Bearer other-token" })).status).toBe(200);
  });

  it("serves stats published on Redis", async () => {
    const pub = new Redis(redis.port, "127.0.0.1");
    try {
      const s = statsMessage.parse({
        v: 2,
        type: "stats",
        camera_id: "site-a/lobby",
        timestamp: new Date().toISOString(),
        data: {
          fps: 5,
          persons: 1,
          inference_ms: 9,
          skipped_frames: 0,
          reconnects: 0,
          provider: "cpu",
          frames: 10,
          last_frame_age_ms: 20,
          stream: "streaming",
        },
      });
      await pub.publish(CHANNELS.stats, JSON.stringify(s));
      await waitFor("stats", async () => (await get("/api/v1/cameras/site-a%2Flobby/stats")).status === 200);
    } finally {
      pub.disconnect();
    }
  });

  it("never logs a token, from the header or from ?access_token=", async () => {
    await get(`/api/v1/cameras?access_token=${TOKEN}`, {});
    await get("/api/v1/cameras", { authorization: "Bearer wrong-token-value" });
    await waitFor("request logs", async () => logs.join("").includes("access_token=***"), 5000);
    const all = logs.join("");
    expect(all).not.toContain(TOKEN);
    expect(all).not.toContain("wrong-token-value");
    expect(all).not.toContain("other-token");
  });

  it("stops cleanly on SIGTERM, ending live streams", async () => {
    const res = await fetch(`${base}/api/v1/events/stream?access_token=${TOKEN}`);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read();
    const health = await healthBase();
    const exited = exitOf(gateway).then((e) => e.code);
    const t0 = Date.now();
    gateway.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    // The stream ended with the server, and the health port went with it.
    for (;;) if ((await reader.read()).done) break;
    expect(logs.join("")).toContain("gateway stopped");
    await expect(fetch(`${health}/healthz`)).rejects.toThrow();
  });
});
