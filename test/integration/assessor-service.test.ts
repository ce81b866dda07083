// `vigil assessor` as real processes against real RabbitMQ and Redis, calling the fake provider (the one fake: the
// paid API) through the real key pool and `openai` client. Durability (kill -9 mid-run, restart: every task done
// exactly once or in the DLQ, duplicate calls bounded by what was in flight), fairness (50 cameras at 2× overload),
// two replicas competing on the queue, and malformed messages dead-lettered with a reason.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { ALARM_TOPOLOGY, alarmMessage } from "../../alarms/messages.ts";
import { ASSESSMENT_REDIS, ASSESSMENT_TOPOLOGY, assessmentResult } from "../../assessor/messages.ts";
import { jainIndex } from "../../assessor/schedule/fairness.ts";
import { type FakeProvider, startFakeProvider } from "../fakes/llm-provider.ts";
import {
  type AssessorProc,
  drainQueue,
  makeTask,
  metricsOf,
  purgeQueues,
  startAssessor,
  stopAssessor,
  type TaskPublisher,
  taskPublisher,
  writePoolFile,
} from "../setup/assessor.ts";
import { startRabbitMQ } from "../setup/brokers.ts";
import { metricValue, waitFor } from "../setup/operator-env.ts";
import { type Service, startRedis } from "../setup/services.ts";

let rabbit: Awaited<ReturnType<typeof startRabbitMQ>>;
let redisSvc: Service;
let redis: Redis;
let pub: TaskPublisher;
const dir = mkdtempSync(join(tmpdir(), "vigil-assessor-"));
const running: AssessorProc[] = [];
let provider: FakeProvider | undefined;

beforeAll(async () => {
  [rabbit, redisSvc] = await Promise.all([startRabbitMQ(), startRedis()]);
  redis = new Redis(redisSvc.port, "127.0.0.1");
  pub = await taskPublisher(rabbit.url);
}, 90_000);

afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => stopAssessor(a, "SIGKILL")));
  await provider?.close();
  provider = undefined;
  await purgeQueues(rabbit.url);
  await redis.flushall();
});

afterAll(async () => {
  await pub?.close();
  redis?.disconnect();
  await redisSvc?.stop();
  await rabbit?.destroy();
});

const env = () => ({ RABBITMQ_URL: rabbit.url, REDIS_URL: `redis://127.0.0.1:${redisSvc.port}`, LOG_LEVEL: "info" });

async function launch(poolFile: string, extra: Record<string, string> = {}): Promise<AssessorProc> {
  const a = await startAssessor(poolFile, { ...env(), ...extra });
  running.push(a);
  onTestFailed(() => console.log(`assessor ${a.port} logs:\n${a.logs.join("").slice(-4000)}`));
  await waitFor("assessor ready", async () => (await fetch(`http://127.0.0.1:${a.port}/readyz`)).ok, 20_000);
  return a;
}

/** The result ids stored in Redis (all cameras' recent list: one entry per stored result). */
async function storedIds(): Promise<string[]> {
  const list = await redis.lrange(ASSESSMENT_REDIS.recent, 0, -1);
  return list.map((j) => assessmentResult.parse(JSON.parse(j)).id);
}

describe("vigil assessor", () => {
  it("dead-letters malformed messages with the reason and a metric, keeps going, and raises an alarm at the threshold", async () => {
    provider = await startFakeProvider({
      scopes: [{ name: "A", rpm: 600, rps: 10 }],
      keys: [{ key: "ka", scope: "A" }],
    });
    const file = writePoolFile(join(dir, "malformed.yaml"), provider.baseURL, [
      { name: "a", key: "ka", scope: "A", rps: 10 },
    ]);
    const a = await launch(file);
    await pub.publish(Buffer.from("not json {"));
    const bad = { ...(await makeTask("bad-1", "default/cam1")), images: [] };
    await pub.publish(Buffer.from(JSON.stringify(bad)), "task.default.cam1");
    const unknownPool = { ...(await makeTask("lost-1", "default/cam1")), pool: { namespace: "x", name: "nope" } };
    await pub.publish(Buffer.from(JSON.stringify(unknownPool)), "task.default.cam1");
    await pub.publish(await makeTask("good-1", "default/cam1"));
    // At or above its threshold, with spec.alarm: the result raises an alarm (the fake answers risk 0 here).
    await pub.publish({
      ...(await makeTask("alarm-1", "default/cam2", { threshold: 0 })),
      alarm: {
        snapshot_key: null,
        clip: { key: "default/cam2/clip.mp4", pre_seconds: 5, post_seconds: 5 },
        dedup_window_seconds: 0,
        webhook_secret: null,
      },
    });

    await waitFor("good task stored", async () => (await storedIds()).includes("good-1"), 20_000);
    await waitFor("alarm task stored", async () => (await storedIds()).includes("alarm-1"), 20_000);
    const latest = assessmentResult.parse(
      JSON.parse((await redis.hget(ASSESSMENT_REDIS.latest, "default/cam2")) as string),
    );
    expect(latest.id).toBe("alarm-1");
    const alarms = await drainQueue(rabbit.url, ALARM_TOPOLOGY.queue);
    expect(alarms).toHaveLength(1);
    const alarm = alarmMessage.parse(JSON.parse(alarms[0]?.body.toString() as string));
    expect(alarm.kind).toBe("assessment");
    expect(alarm.id).toBe(latest.alarm_id);
    expect(alarm.assessment?.result_id).toBe("alarm-1");
    const good = assessmentResult.parse(
      JSON.parse((await redis.hget(ASSESSMENT_REDIS.latest, "default/cam1")) as string),
    );
    expect(good.alarm_id).toBeNull();
    const dead = await waitFor("3 dead letters", async () => {
      const q = await pub.ch.checkQueue(ASSESSMENT_TOPOLOGY.deadLetterQueue);
      return q.messageCount >= 3 ? drainQueue(rabbit.url, ASSESSMENT_TOPOLOGY.deadLetterQueue) : undefined;
    });
    const reasons = dead.map((d) => String(d.headers[ASSESSMENT_TOPOLOGY.reasonHeader])).sort();
    console.log("dead-letter reasons:", reasons);
    expect(reasons[0]).toMatch(/^malformed: body is not JSON/);
    expect(reasons[1]).toMatch(/^malformed: images: /);
    expect(reasons[2]).toBe("unknown-pool: x/nope");
    const m = await metricsOf(a);
    expect(metricValue(m, "vigil_assessor_rejected_total", 'reason="malformed"')).toBe(2);
    expect(metricValue(m, "vigil_assessor_rejected_total", 'reason="unknown-pool"')).toBe(1);
    expect(metricValue(m, "vigil_assessor_tasks_total", 'outcome="ok"')).toBe(2);
    // The keys never reach the logs.
    expect(a.logs.join("")).not.toContain('ka"');
  }, 60_000);

  it("kill -9 mid-run, then a restart: every task done exactly once or in the DLQ; duplicate calls ≤ in flight", async () => {
    provider = await startFakeProvider({
      scopes: [{ name: "A", rpm: 2400, rps: 40 }],
      keys: [
        { key: "key-a1", scope: "A" },
        { key: "key-a2", scope: "A" },
      ],
      latencyMs: [100, 300],
    });
    const file = writePoolFile(
      join(dir, "durable.yaml"),
      provider.baseURL,
      [
        { name: "a1", key: "key-a1", scope: "A", rps: 40, rpm: 2400 },
        { name: "a2", key: "key-a2", scope: "A", rps: 40, rpm: 2400 },
      ],
      { maxTasksPerCamera: 1000 },
    ); // nothing dropped: every task must finish
    const CONCURRENCY = 12;
    const N = 300;
    const first = await launch(file, { VIGIL_ASSESSOR_CONCURRENCY: String(CONCURRENCY) });
    for (let i = 0; i < N; i++) await pub.publish(await makeTask(`d-${i}`, `default/cam${i % 10}`));

    await waitFor("a third done", async () => (await redis.llen(ASSESSMENT_REDIS.recent)) >= N / 3, 30_000, 20);
    const inFlightAtKill = metricValue(await metricsOf(first), "vigil_assessor_in_flight");
    const providerInFlightAtKill = provider.stats().inFlight;
    const doneAtKill = await redis.llen(ASSESSMENT_REDIS.recent);
    first.proc.kill("SIGKILL");
    await first.exited;

    const second = await launch(file, { VIGIL_ASSESSOR_CONCURRENCY: String(CONCURRENCY) });
    await waitFor(
      "every task done or dead",
      async () => {
        const [done, dead] = [
          await redis.llen(ASSESSMENT_REDIS.recent),
          (await pub.ch.checkQueue(ASSESSMENT_TOPOLOGY.deadLetterQueue)).messageCount,
        ];
        return done + dead >= N;
      },
      60_000,
      100,
    );
    const ids = await storedIds();
    const distinct = new Set(ids);
    const dead = (await pub.ch.checkQueue(ASSESSMENT_TOPOLOGY.deadLetterQueue)).messageCount;
    const feed = await drainQueue(rabbit.url, ASSESSMENT_TOPOLOGY.results);
    const feedIds = new Set(feed.map((f) => (JSON.parse(f.body.toString()) as { id: string }).id));
    const s = provider.stats();
    const duplicates = s.ok - distinct.size;
    const m2 = await metricsOf(second);
    console.log(
      JSON.stringify({
        tasks: N,
        doneAtKill,
        inFlightAtKill,
        providerInFlightAtKill,
        stored: ids.length,
        distinct: distinct.size,
        dead,
        feedMessages: feed.length,
        feedDistinct: feedIds.size,
        providerOk: s.ok,
        provider429: s.byStatus["429"] ?? 0,
        duplicateCalls: duplicates,
        afterRestart: {
          ok: metricValue(m2, "vigil_assessor_tasks_total", 'outcome="ok"'),
          duplicate: metricValue(m2, "vigil_assessor_tasks_total", 'outcome="duplicate"'),
        },
      }),
    );
    expect(ids.length).toBe(distinct.size); // stored once each
    expect(distinct.size + dead).toBe(N);
    for (let i = 0; i < N; i++) if (!distinct.has(`d-${i}`)) expect(dead).toBeGreaterThan(0);
    expect(feedIds.size).toBe(distinct.size); // every stored result was published too
    expect(duplicates).toBeGreaterThanOrEqual(0);
    expect(duplicates).toBeLessThanOrEqual(CONCURRENCY);
    const tasksQ = await pub.ch.checkQueue(ASSESSMENT_TOPOLOGY.tasks);
    expect(tasksQ.messageCount).toBe(0);
  }, 120_000);

  it("two replicas compete on the queue: each takes a share, none twice, the scope's limit held", async () => {
    provider = await startFakeProvider({
      scopes: [{ name: "A", rpm: 1200, rps: 20 }],
      keys: [{ key: "key-r", scope: "A" }],
      latencyMs: [50, 150],
    });
    const file = writePoolFile(
      join(dir, "replicas.yaml"),
      provider.baseURL,
      [{ name: "r", key: "key-r", scope: "A", rps: 20, rpm: 1200 }],
      { maxTasksPerCamera: 1000 },
    );
    const [r1, r2] = [await launch(file), await launch(file)];
    const N = 160;
    for (let i = 0; i < N; i++) await pub.publish(await makeTask(`r-${i}`, `default/cam${i % 8}`));
    await waitFor("all done", async () => (await redis.llen(ASSESSMENT_REDIS.recent)) >= N, 40_000, 100);
    const [m1, m2] = [await metricsOf(r1), await metricsOf(r2)];
    const ok1 = metricValue(m1, "vigil_assessor_tasks_total", 'outcome="ok"');
    const ok2 = metricValue(m2, "vigil_assessor_tasks_total", 'outcome="ok"');
    const s = provider.stats();
    console.log(
      JSON.stringify({ replica1: ok1, replica2: ok2, providerOk: s.ok, provider429: s.byStatus["429"] ?? 0 }),
    );
    expect(ok1 + ok2).toBe(N);
    expect(ok1).toBeGreaterThan(N / 10);
    expect(ok2).toBeGreaterThan(N / 10);
    expect(new Set(await storedIds()).size).toBe(N);
    expect(s.ok).toBe(N);
    expect(s.byStatus["429"] ?? 0).toBeLessThanOrEqual(Math.ceil(N * 0.005));
  }, 90_000);

  it("SIGTERM: in-flight tasks finish and are acked, waiting ones go to the other replica; none is called twice", async () => {
    provider = await startFakeProvider({
      scopes: [{ name: "A", rpm: 1200, rps: 20 }],
      keys: [{ key: "key-t", scope: "A" }],
      latencyMs: [200, 400],
    });
    const file = writePoolFile(
      join(dir, "sigterm.yaml"),
      provider.baseURL,
      [{ name: "t", key: "key-t", scope: "A", rps: 20, rpm: 1200 }],
      { maxTasksPerCamera: 1000 },
    );
    const [r1, r2] = [await launch(file), await launch(file)];
    const N = 120;
    for (let i = 0; i < N; i++) await pub.publish(await makeTask(`t-${i}`, `default/cam${i % 6}`));
    await waitFor("a quarter done", async () => (await redis.llen(ASSESSMENT_REDIS.recent)) >= N / 4, 20_000, 20);
    const inFlight = metricValue(await metricsOf(r1), "vigil_assessor_in_flight");
    const t0 = Date.now();
    r1.proc.kill("SIGTERM");
    await r1.exited;
    const stopMs = Date.now() - t0;
    await waitFor("all done", async () => (await redis.llen(ASSESSMENT_REDIS.recent)) >= N, 30_000, 100);
    const s = provider.stats();
    const ok2 = metricValue(await metricsOf(r2), "vigil_assessor_tasks_total", 'outcome="ok"');
    console.log(
      JSON.stringify({ inFlightAtSigterm: inFlight, stopMs, exitCode: r1.proc.exitCode, ok2, providerOk: s.ok }),
    );
    expect(r1.proc.exitCode).toBe(0);
    expect(r1.logs.join("")).toContain('"msg":"assessor stopped"');
    expect(new Set(await storedIds()).size).toBe(N);
    expect(s.ok).toBe(N); // graceful: no call repeated
    expect(ok2).toBeGreaterThan(0);
  }, 90_000);

  it("50 cameras at 2× overload: Jain's index ≥ 0.9 and no camera waits more than 10 s", async () => {
    const CAPACITY = 25; // rps
    provider = await startFakeProvider({
      scopes: [{ name: "A", rpm: CAPACITY * 60, rps: CAPACITY }],
      keys: [
        { key: "key-f1", scope: "A" },
        { key: "key-f2", scope: "A" },
      ],
      latencyMs: [100, 300],
    });
    const file = writePoolFile(
      join(dir, "fair.yaml"),
      provider.baseURL,
      [
        { name: "f1", key: "key-f1", scope: "A", rps: CAPACITY, rpm: CAPACITY * 60 },
        { name: "f2", key: "key-f2", scope: "A", rps: CAPACITY, rpm: CAPACITY * 60 },
      ],
      { maxTasksPerCamera: 3 },
    );
    const a = await launch(file, { VIGIL_ASSESSOR_CONCURRENCY: "12" });
    const CAMERAS = 50;
    const SECONDS = 20;
    // 2× overload: 50 cameras, one task each per second = 50/s against 25/s; deadlines 10 s.
    let published = 0;
    const t0 = Date.now();
    for (let s = 0; s < SECONDS; s++) {
      const tick = t0 + s * 1000;
      for (let c = 0; c < CAMERAS; c++) {
        await pub.publish(await makeTask(`f-${s}-${c}`, `default/fcam${c}`, { deadlineMs: 10_000 }));
        published++;
      }
      const wait = tick + 1000 - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    // Everything accounted: ok, stale or overflow.
    const counts = await waitFor(
      "every task accounted",
      async () => {
        const m = await metricsOf(a);
        const c = {
          ok: metricValue(m, "vigil_assessor_tasks_total", 'outcome="ok"'),
          stale: metricValue(m, "vigil_assessor_tasks_total", 'outcome="dropped-stale"'),
          overflow: metricValue(m, "vigil_assessor_tasks_total", 'outcome="dropped-overflow"'),
          dead: metricValue(m, "vigil_assessor_tasks_total", 'outcome="dead"'),
          fairnessGauge: metricValue(m, "vigil_assessor_fairness"),
        };
        return c.ok + c.stale + c.overflow + c.dead >= published ? c : undefined;
      },
      20_000,
      200,
    );
    const results = (await redis.lrange(ASSESSMENT_REDIS.recent, 0, -1)).map((j) =>
      assessmentResult.parse(JSON.parse(j)),
    );
    const perCamera = new Map<string, number>();
    for (const r of results) perCamera.set(r.camera_id, (perCamera.get(r.camera_id) ?? 0) + 1);
    const shares = [...Array(CAMERAS).keys()].map((c) => perCamera.get(`default/fcam${c}`) ?? 0);
    const jain = jainIndex(shares);
    const waits = results.map((r) => r.latency_ms).sort((x, y) => x - y);
    const maxWait = waits[waits.length - 1] ?? 0;
    const elapsed = (Date.now() - t0) / 1000;
    console.log(
      JSON.stringify({
        published,
        ...counts,
        throughput_rps: Number((counts.ok / elapsed).toFixed(1)),
        jain: Number(jain.toFixed(4)),
        minShare: Math.min(...shares),
        maxShare: Math.max(...shares),
        p50_wait_ms: waits[Math.floor(waits.length / 2)],
        max_wait_ms: maxWait,
        provider429: provider.stats().byStatus["429"] ?? 0,
        elapsed_s: elapsed,
      }),
    );
    expect(counts.ok + counts.stale + counts.overflow + counts.dead).toBe(published);
    expect(counts.overflow + counts.stale).toBeGreaterThan(0); // it was overloaded
    expect(jain).toBeGreaterThanOrEqual(0.9);
    expect(maxWait).toBeLessThanOrEqual(10_000);
    expect(Math.min(...shares)).toBeGreaterThan(0);
  }, 90_000);
});
