// The gateway under load, on real Redis: the gateway runs in this thread as it would in its own process; the
// clients (HTTP load, WebSockets) and the frame publisher run in a worker thread, so their work does not queue
// on the gateway's event loop and publish→receive is timed on one clock.
//   1. stats REST: GET /api/v1/cameras/:id/stats at a fixed rate (open loop, bounded in flight), p50/p99;
//      and GET /api/v1/cameras (all cameras with their stats) at a lower rate.
//   2. frame fan-out: JPEG-sized frames published on video:<cam>, received by 1 WebSocket client, then by 100;
//      p50/p99 publish→receive per client, and what fan-out adds over the single client in the same run.
import { Agent, request } from "node:http";
import { performance } from "node:perf_hooks";
import { isMainThread, parentPort, Worker, workerData } from "node:worker_threads";
import { Redis } from "ioredis";
import { Registry } from "prom-client";
import { WebSocket } from "ws";
import { buildGateway } from "../gateway/app.ts";
import { memoryCatalog } from "../gateway/catalog-static.ts";
import { createRedisFeed } from "../gateway/redis-feed.ts";
import { cameraSummary } from "../gateway/summaries.ts";
import { cameraDetectionSpec } from "../operator/api/camera-detection.ts";
import { metricValue } from "../test/setup/operator-env.ts";
import { startRedis } from "../test/setup/services.ts";
import { CHANNELS, MESSAGE_VERSION, type StatsMessage } from "../worker/publish/messages.ts";

const CAMERAS = Number(process.env.BENCH_CAMERAS ?? 100);
const STATS_RPS = Number(process.env.BENCH_STATS_RPS ?? 200);
const STATS_SECONDS = Number(process.env.BENCH_STATS_SECONDS ?? 5);
const LIST_RPS = Number(process.env.BENCH_LIST_RPS ?? 20);
const CLIENTS = Number(process.env.BENCH_WS_CLIENTS ?? 100);
const FRAMES = Number(process.env.BENCH_FRAMES ?? 50);
const FRAME_FPS = Number(process.env.BENCH_FRAME_FPS ?? 10);
const FRAME_BYTES = Number(process.env.BENCH_FRAME_BYTES ?? 48 * 1024); // an annotated 640×480 JPEG
const MAX_IN_FLIGHT = 64;
const TOKEN = "bench-token";

type ClientJob = { base: string; wsBase: string; redisPort: number; camera: string; cameras: number };
type LoadResult = { latencies: number[]; errors: number; skipped: number; sent: number };
type FanoutResult = { latencies: number[]; expected: number; received: number };
type ClientResult = { stats: LoadResult; list: LoadResult; single: FanoutResult; fanout: FanoutResult };

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
};
const r2 = (v: number) => Math.round(v * 100) / 100;
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------- clients (worker thread)

/** Open-loop GETs at `rps` for `seconds`: each request starts on schedule, or is skipped when too many are open. */
async function load(job: ClientJob, path: (i: number) => string, rps: number, seconds: number): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT });
  const url = new URL(job.base);
  const res: LoadResult = { latencies: [], errors: 0, skipped: 0, sent: 0 };
  const total = Math.round(rps * seconds);
  let open = 0;
  const pending: Promise<void>[] = [];
  const t0 = now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / rps;
    const wait = due - now();
    if (wait > 0) await sleep(wait);
    if (open >= MAX_IN_FLIGHT) {
      res.skipped++;
      continue;
    }
    open++;
    res.sent++;
    const start = now();
    pending.push(
      new Promise<void>((resolve) => {
        const req = request(
          {
            agent,
            host: url.hostname,
            port: url.port,
            path: path(i),
            headers: { authorization: `Bearer ${TOKEN}` },
          },
          (r) => {
            r.resume();
            r.on("end", () => {
              if (r.statusCode === 200) res.latencies.push(now() - start);
              else res.errors++;
              open--;
              resolve();
            });
          },
        );
        req.on("error", () => {
          res.errors++;
          open--;
          resolve();
        });
        req.end();
      }),
    );
  }
  await Promise.all(pending);
  agent.destroy();
  return res;
}

function frame(seq: number, bytes: number): Buffer {
  const b = Buffer.alloc(bytes);
  for (let i = 6; i < bytes; i += 4) b.writeUInt32LE((i * 2654435761) >>> 0, Math.min(i, bytes - 4));
  b[0] = 0xff;
  b[1] = 0xd8;
  b.writeUInt32BE(seq, 2);
  b[bytes - 2] = 0xff;
  b[bytes - 1] = 0xd9;
  return b;
}

/** `clients` WebSockets on one camera's video; FRAMES frames published on Redis; publish→receive per client. */
async function fanout(job: ClientJob, pub: Redis, clients: number, seqBase: number): Promise<FanoutResult> {
  const sent = new Map<number, number>();
  const latencies: number[] = [];
  const sockets = await Promise.all(
    Array.from(
      { length: clients },
      () =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(`${job.wsBase}/api/v1/cameras/${encodeURIComponent(job.camera)}/video`, {
            headers: { authorization: `Bearer ${TOKEN}` },
          });
          ws.on("message", (d: Buffer) => {
            const t = sent.get(d.readUInt32BE(2));
            if (t !== undefined) latencies.push(now() - t);
          });
          ws.once("open", () => resolve(ws));
          ws.once("error", reject);
        }),
    ),
  );
  const channel = CHANNELS.video(job.camera);
  for (let i = 0; ; i++) {
    if (Number(((await pub.pubsub("NUMSUB", channel)) as [string, number])[1]) >= 1) break;
    if (i > 200) throw new Error(`the gateway never subscribed ${channel}`);
    await sleep(10);
  }
  const frames = Array.from({ length: FRAMES }, (_, i) => frame(seqBase + i, FRAME_BYTES));
  const t0 = now();
  for (let i = 0; i < FRAMES; i++) {
    const wait = t0 + (i * 1000) / FRAME_FPS - now();
    if (wait > 0) await sleep(wait);
    sent.set(seqBase + i, now());
    await pub.publish(channel, frames[i] as Buffer);
  }
  const expected = FRAMES * clients;
  for (let i = 0; i < 200 && latencies.length < expected; i++) await sleep(10);
  for (const ws of sockets) ws.close();
  return { latencies, expected, received: latencies.length };
}

async function clientMain(job: ClientJob): Promise<ClientResult> {
  const pub = new Redis(job.redisPort, "127.0.0.1");
  const statsPath = (i: number) => `/api/v1/cameras/bench%2Fcam-${i % job.cameras}/stats`;
  await load(job, statsPath, 100, 1); // warm-up: connections, JIT
  const stats = await load(job, statsPath, STATS_RPS, STATS_SECONDS);
  const list = await load(job, () => "/api/v1/cameras", LIST_RPS, 2);
  await fanout(job, pub, 1, 1_000_000); // warm-up
  const single = await fanout(job, pub, 1, 0);
  const many = await fanout(job, pub, CLIENTS, 10_000);
  pub.disconnect();
  return { stats, list, single, fanout: many };
}

if (!isMainThread && (workerData as { vigilGatewayBench?: ClientJob } | null)?.vigilGatewayBench) {
  const job = (workerData as { vigilGatewayBench: ClientJob }).vigilGatewayBench;
  clientMain(job).then(
    (r) => parentPort?.postMessage({ ok: true, r }),
    (err: unknown) => parentPort?.postMessage({ ok: false, error: String(err) }),
  );
}

// ---------------------------------------------------------------- gateway (main thread)

export async function benchGateway() {
  const redis = await startRedis();
  const registry = new Registry();
  const feed = createRedisFeed(`redis://127.0.0.1:${redis.port}`, { registry });
  const cameras = Array.from({ length: CAMERAS }, (_, i) =>
    cameraSummary(
      `cam-${i}`,
      "bench",
      cameraDetectionSpec.parse({
        source: { url: `rtsp://10.0.${i >> 8}.${i & 255}:554/stream` },
        poolRef: { name: "bench" },
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
        rules: [{ name: "enter", presence: { zone: "floor" } }],
      }),
    ),
  );
  const app = buildGateway({
    feed,
    catalog: memoryCatalog(cameras),
    tokens: [TOKEN],
    registry,
    rateLimitPerMinute: 0,
    closeGraceMs: 100,
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const { port } = app.server.address() as { port: number };
  const pub = new Redis(redis.port, "127.0.0.1");
  for (let i = 0; i < CAMERAS; i++) {
    const s: StatsMessage = {
      v: MESSAGE_VERSION,
      type: "stats",
      camera_id: `bench/cam-${i}`,
      timestamp: new Date().toISOString(),
      data: {
        fps: 5,
        persons: i % 4,
        person: i % 4,
        inference_ms: 12,
        skipped_frames: 0,
        reconnects: 0,
        provider: "cuda",
        frames: 1000,
        last_frame_age_ms: 30,
        stream: "streaming",
      },
    };
    await pub.publish(CHANNELS.stats, JSON.stringify(s));
  }
  pub.disconnect();
  const lastStats = () =>
    app.inject({
      url: `/api/v1/cameras/bench%2Fcam-${CAMERAS - 1}/stats`,
      headers: { authorization: `Bearer ${TOKEN}` },
    });
  for (let i = 0; i < 100 && (await lastStats()).statusCode !== 200; i++) await sleep(20);

  const job: ClientJob = {
    base: `http://127.0.0.1:${port}`,
    wsBase: `ws://127.0.0.1:${port}`,
    redisPort: redis.port,
    camera: "bench/cam-0",
    cameras: CAMERAS,
  };
  const gatewayRss = process.memoryUsage().rss; // before the client thread starts
  const worker = new Worker(new URL(import.meta.url), { workerData: { vigilGatewayBench: job } });
  const out = await new Promise<{ ok: boolean; r?: ClientResult; error?: string }>((resolve, reject) => {
    worker.once("message", resolve);
    worker.once("error", reject);
  });
  await worker.terminate();
  if (!out.ok || !out.r) throw new Error(`bench clients failed: ${out.error}`);
  const { stats, list, single, fanout: many } = out.r;
  const metrics = await registry.metrics();
  const dropped = metricValue(metrics, "vigil_gateway_frames_dropped_total");
  const rssMb = Math.round(process.memoryUsage().rss / 2 ** 20);
  await app.close();
  await feed.close();
  await redis.stop();

  const singleP99 = pct(single.latencies, 99);
  const fanoutP99 = pct(many.latencies, 99);
  const added = fanoutP99 - singleP99;
  const result = {
    cameras: CAMERAS,
    stats_rps: STATS_RPS,
    stats_requests: stats.sent,
    stats_errors: stats.errors,
    stats_skipped: stats.skipped,
    stats_p50_ms: r2(pct(stats.latencies, 50)),
    stats_p99_ms: r2(pct(stats.latencies, 99)),
    stats_max_ms: r2(Math.max(...stats.latencies)),
    list_rps: LIST_RPS,
    list_p50_ms: r2(pct(list.latencies, 50)),
    list_p99_ms: r2(pct(list.latencies, 99)),
    frame_bytes: FRAME_BYTES,
    frame_fps: FRAME_FPS,
    frames: FRAMES,
    single_p50_ms: r2(pct(single.latencies, 50)),
    single_p99_ms: r2(singleP99),
    fanout_clients: CLIENTS,
    fanout_received: many.received,
    fanout_expected: many.expected,
    fanout_p50_ms: r2(pct(many.latencies, 50)),
    fanout_p99_ms: r2(fanoutP99),
    fanout_max_ms: r2(Math.max(...many.latencies)),
    fanout_added_p99_ms: r2(added),
    frames_dropped: dropped,
    gateway_rss_mb: Math.round(gatewayRss / 2 ** 20),
    process_rss_mb: rssMb, // gateway and client thread together
    goals: {
      stats_p99_under_5ms: pct(stats.latencies, 99) < 5,
      fanout_added_under_50ms: added < 50,
      fanout_all_delivered: many.received === many.expected,
    },
  };
  process.stderr.write(
    `stats ${result.stats_p50_ms}/${result.stats_p99_ms} ms p50/p99 at ${STATS_RPS} req/s; fan-out to ${CLIENTS}: ${result.fanout_p50_ms}/${result.fanout_p99_ms} ms (single ${result.single_p50_ms}/${result.single_p99_ms})\n`,
  );
  return result;
}
