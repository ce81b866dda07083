// The assessor under the load, on real parts: Debian's RabbitMQ and Redis, `vigil assessor` as a child
// process, the fake provider (the paid API) in this process with the 6 keys in 3 quota scopes (A: 3 keys
// sharing 10 rps; B: 2 keys sharing 5 rps; C: 1 key at 5 rps; 20 rps summed) and its latency of 300–800 ms. This
// process plays the workers: tasks from BENCH_ASSESSOR_CAMERAS cameras, published on a confirm channel at a steady
// rate; results are read from the Redis pub/sub channel the gateway listens on. Phases, one after the other, over
// BENCH_MINUTES (default 5):
// 1. 80 % load (16 tasks/s) for 40 % of the time: p50 and p95 of task latency (created_at → completed_at).
// 2. 2× overload (40 tasks/s) for 60 % of the time: throughput ÷ 20 rps over the phase's steady part (after a 5 s
//    ramp), the 429 rate of all calls, Jain's index of per-camera completions, and every task accounted for
//    (ok + dead + dropped-stale + dropped-overflow = published).
// RSS of the assessor every 5 s: the first sample (5 s in), the end, the peak, and the least-squares slope over the
// run's second half (the slope must be flat).
// Knobs (env): BENCH_MINUTES (5), BENCH_ASSESSOR_CAMERAS (20), BENCH_ASSESSOR_DEADLINE_S (30),
// BENCH_ASSESSOR_LOG_LEVEL (warn); any VIGIL_ASSESSOR_* variable reaches the assessor.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { ASSESSMENT_REDIS, type AssessmentResult } from "../assessor/messages.ts";
import { jainIndex } from "../assessor/schedule/fairness.ts";
import { startFakeProvider } from "../test/fakes/llm-provider.ts";
import {
  type AssessorProc,
  makeTask,
  metricsOf,
  startAssessor,
  stopAssessor,
  taskPublisher,
  writePoolFile,
} from "../test/setup/assessor.ts";
import { startRabbitMQ } from "../test/setup/brokers.ts";
import { metricValue, waitFor } from "../test/setup/operator-env.ts";
import { startRedis } from "../test/setup/services.ts";

const MINUTES = Number(process.env.BENCH_MINUTES ?? 5);
const CAMERAS = Number(process.env.BENCH_ASSESSOR_CAMERAS ?? 20);
const DEADLINE_S = Number(process.env.BENCH_ASSESSOR_DEADLINE_S ?? 30);
const CAPACITY = 20;

const SCOPES = [
  { name: "A", rps: 10, keys: 3 },
  { name: "B", rps: 5, keys: 2 },
  { name: "C", rps: 5, keys: 1 },
];

const rssMb = (pid: number) => {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Math.round(Number(m[1]) / 1024) : 0;
};
const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
/** Least-squares slope of y over x. */
function fitSlope(points: [number, number][]): number {
  if (points.length < 2) return 0;
  const n = points.length;
  const mx = points.reduce((t, [x]) => t + x, 0) / n;
  const my = points.reduce((t, [, y]) => t + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
const log = (...a: unknown[]) => process.stderr.write(`[bench assessor] ${a.map(String).join(" ")}\n`);

export async function benchAssessor(): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-bench-assessor-"));
  const [rabbit, redisSvc] = await Promise.all([startRabbitMQ(), startRedis()]);
  const keys = SCOPES.flatMap((s) =>
    [...Array(s.keys).keys()].map((i) => ({ name: `${s.name}${i}`, key: `sk-bench-${s.name}-${i}`, scope: s.name })),
  );
  const provider = await startFakeProvider({
    scopes: SCOPES.map((s) => ({ name: s.name, rps: s.rps, rpm: s.rps * 60 })),
    keys: keys.map((k) => ({ key: k.key, scope: k.scope })),
    latencyMs: [300, 800],
  });
  const poolFile = writePoolFile(
    join(dir, "pool.yaml"),
    provider.baseURL,
    keys.map((k) => {
      const s = SCOPES.find((x) => x.name === k.scope) as (typeof SCOPES)[number];
      return { ...k, rps: s.rps, rpm: s.rps * 60 };
    }),
    { timeoutSeconds: 10 },
  );
  const passthrough = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => k.startsWith("VIGIL_ASSESSOR_")) as [string, string][],
  );
  let assessor: AssessorProc | undefined;
  const sub = new Redis(redisSvc.port, "127.0.0.1");
  const pub = await taskPublisher(rabbit.url);
  try {
    assessor = await startAssessor(poolFile, {
      RABBITMQ_URL: rabbit.url,
      REDIS_URL: `redis://127.0.0.1:${redisSvc.port}`,
      LOG_LEVEL: process.env.BENCH_ASSESSOR_LOG_LEVEL ?? "info",
      ...passthrough,
    });
    const a = assessor;
    await waitFor("assessor ready", async () => (await fetch(`http://127.0.0.1:${a.port}/readyz`)).ok, 30_000);

    const results: { camera: string; latency: number; done: number }[] = [];
    await sub.subscribe(ASSESSMENT_REDIS.channel);
    sub.on("message", (_ch, msg) => {
      const r = JSON.parse(msg) as AssessmentResult;
      results.push({ camera: r.camera_id, latency: r.latency_ms, done: Date.now() });
    });

    let published = 0;
    let seq = 0;
    /** Publishes `rate` tasks per second, round robin over the cameras, for `seconds`. */
    const drive = async (rate: number, seconds: number) => {
      const t0 = Date.now();
      const total = Math.round(rate * seconds);
      for (let i = 0; i < total; i++) {
        const at = t0 + (i * 1000) / rate;
        const wait = at - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const n = seq++;
        await pub.publish(await makeTask(`b-${n}`, `default/bcam${n % CAMERAS}`, { deadlineMs: DEADLINE_S * 1000 }));
        published++;
      }
    };

    const totalS = MINUTES * 60;
    const steadyS = Math.max(10, Math.round(totalS * 0.4));
    const overS = Math.max(15, totalS - steadyS);

    // Phase 1: 80 % load.
    log(`80% load: ${0.8 * CAPACITY}/s for ${steadyS} s`);
    // RSS every 5 s; the slope is fitted over the second half of the run (after the heap has grown to its load).
    const runStart = Date.now();
    const rss: [number, number][] = [];
    const rssTimer = setInterval(
      () => rss.push([(Date.now() - runStart) / 60_000, rssMb(a.proc.pid as number)]),
      5_000,
    );
    const p1Start = Date.now();
    await drive(0.8 * CAPACITY, steadyS);
    await waitFor("80% phase drained", async () => results.length >= published, 30_000, 100).catch(() => undefined);
    const lat = results
      .filter((r) => r.done >= p1Start)
      .map((r) => r.latency)
      .sort((x, y) => x - y);
    const p50 = pct(lat, 0.5);
    const p95 = pct(lat, 0.95);
    log(`p50 ${p50} ms, p95 ${p95} ms over ${lat.length} tasks`);

    // Phase 2: 2× overload.
    const before = provider.stats();
    const callsBefore = before.calls;
    const r429Before = before.byStatus["429"] ?? 0;
    const doneBefore = results.length;
    log(`2x overload: ${2 * CAPACITY}/s for ${overS} s`);
    const p2Start = Date.now();
    await drive(2 * CAPACITY, overS);
    const p2End = Date.now();
    const rampEnd = p2Start + 5_000;
    const inSteady = results.slice(doneBefore).filter((r) => r.done >= rampEnd && r.done <= p2End);
    const throughput = inSteady.length / ((p2End - rampEnd) / 1000);
    const perCamera = new Map<string, number>();
    for (const r of inSteady) perCamera.set(r.camera, (perCamera.get(r.camera) ?? 0) + 1);
    const fairness = jainIndex([...Array(CAMERAS).keys()].map((c) => perCamera.get(`default/bcam${c}`) ?? 0));
    const after = provider.stats();
    const calls = after.calls - callsBefore;
    const r429 = (after.byStatus["429"] ?? 0) - r429Before;

    // Everything accounted for once the backlog is worked off (or dropped).
    const accounted = await waitFor(
      "every task accounted",
      async () => {
        const m = await metricsOf(a);
        const c = {
          ok: metricValue(m, "vigil_assessor_tasks_total", 'outcome="ok"'),
          dead: metricValue(m, "vigil_assessor_tasks_total", 'outcome="dead"'),
          stale: metricValue(m, "vigil_assessor_tasks_total", 'outcome="dropped-stale"'),
          overflow: metricValue(m, "vigil_assessor_tasks_total", 'outcome="dropped-overflow"'),
        };
        return c.ok + c.dead + c.stale + c.overflow >= published ? c : undefined;
      },
      DEADLINE_S * 1000 + 30_000,
      250,
    ).catch(() => undefined);
    clearInterval(rssTimer);
    const rssStart = rss[0]?.[1] ?? 0;
    const rssEnd = rssMb(a.proc.pid as number);
    const half = rss.slice(Math.floor(rss.length / 2));
    const slope = fitSlope(half);
    const scopes = Object.fromEntries(
      Object.entries(after.perScope).map(([name, s]) => [name, { ok: s.ok, r429: s.r429 }]),
    );
    return {
      bench: "assessor",
      minutes: MINUTES,
      cameras: CAMERAS,
      capacity_rps: CAPACITY,
      throughput_rps: Number(throughput.toFixed(2)),
      throughput_ratio: Number((throughput / CAPACITY).toFixed(4)),
      rate_429: calls > 0 ? Number((r429 / calls).toFixed(5)) : 0,
      calls_overload: calls,
      r429_overload: r429,
      p50_ms: p50,
      p95_ms: p95,
      fairness: Number(fairness.toFixed(4)),
      published,
      accounted: accounted ?? null,
      all_accounted: accounted
        ? accounted.ok + accounted.dead + accounted.stale + accounted.overflow === published
        : false,
      scopes,
      rss_start_mb: rssStart,
      rss_end_mb: rssEnd,
      rss_max_mb: Math.max(0, ...rss.map(([, m]) => m)),
      rss_slope_mb_per_min_second_half: Number(slope.toFixed(2)),
      loadavg_1m: Number(loadavg()[0]?.toFixed(2)),
    };
  } finally {
    if (assessor) await stopAssessor(assessor);
    sub.disconnect();
    await pub.close().catch(() => undefined);
    await provider.close();
    await redisSvc.stop();
    await rabbit.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
