// `vigil gateway` as a real process: configuration errors, the static catalog from manifests (single-host mode),
// tokens kept out of the logs, and a clean stop on SIGTERM with a live stream open.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { CHANNELS, statsMessage } from "../../worker/publish/messages.ts";
import { ROOT } from "../setup/operator-env.ts";
import { freePort, type Service, startRedis, waitFor } from "../setup/services.ts";

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
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  gateway = spawn(process.execPath, [VIGIL, "gateway", "--manifests", file], {
    env: {
      ...process.env,
      VIGIL_API_TOKEN: `${TOKEN}, other-token`,
      VIGIL_PORT: String(port),
      VIGIL_HOST: "127.0.0.1",
      REDIS_URL: `redis://127.0.0.1:${redis.port}`,
      LOG_LEVEL: "info",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  for (const s of [gateway.stdout, gateway.stderr]) s?.on("data", (b: Buffer) => logs.push(b.toString()));
  await waitFor("gateway ready", async () => (await get("/readyz")).status === 200, 30_000);
});

afterAll(async () => {
  if (gateway && gateway.exitCode === null) gateway.kill("SIGKILL");
  await redis?.stop();
});

describe("vigil gateway", () => {
  it("refuses to start without VIGIL_API_TOKEN, saying so", () => {
    const env = { ...process.env };
    delete env.VIGIL_API_TOKEN;
    const r = spawnSync(process.execPath, [VIGIL, "gateway"], { env, encoding: "utf8", timeout: 30_000 });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("VIGIL_API_TOKEN");
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
    const exited = new Promise<number | null>((r) => gateway.once("exit", (code) => r(code)));
    const t0 = Date.now();
    gateway.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    // The stream ended with the server.
    for (;;) if ((await reader.read()).done) break;
    expect(logs.join("")).toContain("gateway stopped");
  });
});
