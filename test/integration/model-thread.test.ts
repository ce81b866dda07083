// A worker whose model thread dies (made to throw an uncaught error from outside, see test/setup/inspector.ts):
// its liveness must fail and its stats say why, and it must not run on as a green worker that detects nothing.
// Under `vigil up` the supervisor then starts a new worker, which streams again.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { MODEL_STALL_MS } from "../../worker/infer/model-health.ts";
import type { StatsMessage } from "../../worker/publish/messages.ts";
import { crashModelThread, hangModelThread, inspectOption } from "../setup/inspector.ts";
import { exitOf, freePort, ROOT } from "../setup/operator-env.ts";
import { FIXTURES, type Service, startRedis, startWorker, subscribeStats, waitFor } from "../setup/services.ts";

// The workers' VIGIL_MODEL_STALL_MS: a third of the default (MODEL_STALL_MS), so a hang is seen in 10 s, not 30.
const STALL_MS = 10_000;
const dir = mkdtempSync(join(tmpdir(), "vigil-model-thread-"));
const manifests = join(dir, "cameras.yaml");
writeFileSync(
  manifests,
  [
    {
      apiVersion: "vigil.dev/v1alpha1",
      kind: "DetectorPool",
      metadata: { name: "local" },
      spec: { model: { uri: "file:///nowhere/yolov8n.onnx" }, executionProviders: ["cpu"] },
    },
    {
      apiVersion: "vigil.dev/v1alpha1",
      kind: "CameraDetection",
      metadata: { name: "hall" },
      spec: {
        source: { url: `file://${join(FIXTURES, "vtest.avi")}` },
        poolRef: { name: "local" },
        detection: { targetFps: 5 },
      },
    },
  ]
    .map((d) => stringify(d))
    .join("---\n"),
);

describe("vigil worker", () => {
  let redis: Service;
  let sub: Redis;
  const workers: ChildProcess[] = [];
  const logs: string[] = [];
  const stats: StatsMessage[] = [];

  /** A worker on the manifests, publishing to Redis, whose inspector can be opened on SIGUSR1. */
  async function faultableWorker() {
    const inspectPort = await freePort();
    const w = await startWorker(
      ["--cameras", manifests],
      redis.port,
      {
        VIGIL_REALTIME_FILES: "true",
        VIGIL_MODEL_STALL_MS: String(STALL_MS),
        NODE_OPTIONS: inspectOption(inspectPort),
      },
      logs,
    );
    workers.push(w.proc);
    const exited = exitOf(w.proc).then((e) => e.code);
    const healthz = async () => {
      const r = await fetch(`http://127.0.0.1:${w.port}/healthz`);
      return { status: r.status, body: await r.text() };
    };
    const since = Date.now();
    await waitFor(
      "inference running",
      async () => stats.some((s) => Date.parse(s.timestamp) >= since && s.data.inference_ms > 0),
      60_000,
    );
    expect(await healthz()).toEqual({ status: 200, body: "ok" });
    return { pid: w.proc.pid ?? -1, inspectPort, healthz, exited };
  }
  const failing = (healthz: () => Promise<{ status: number; body: string }>) => async () => {
    const h = await healthz().catch(() => undefined);
    return h && h.status !== 200 && h;
  };

  beforeAll(async () => {
    redis = await startRedis();
    sub = await subscribeStats(redis.port, stats);
  });

  afterAll(async () => {
    if (process.env.DEBUG_WORKER) console.log(logs.join(""));
    for (const w of workers) w.kill("SIGKILL");
    sub?.disconnect();
    await redis?.stop();
  });

  it("fails /healthz within seconds of its model thread dying, says why in its stats, and exits", {
    timeout: 90_000,
  }, async () => {
    const w = await faultableWorker();
    await crashModelThread(w.pid, w.inspectPort);
    const crashedAt = Date.now();
    const failed = await waitFor("/healthz to fail", failing(w.healthz), 5000, 50);
    const failedMs = Date.now() - crashedAt;
    expect(failed.status).toBe(503);
    expect(failed.body).toBe("model dead: the model thread exited on an uncaught error: crash injected by the test");
    const why = await waitFor(
      "stats saying why",
      async () => stats.find((s) => Date.parse(s.timestamp) >= crashedAt - 1000 && s.data.model_error),
      5000,
    );
    expect(why.data.model_error).toContain("the model thread exited on an uncaught error");
    expect(why.camera_id).toBe("default/hall");
    expect(await Promise.race([w.exited, new Promise((r) => setTimeout(() => r("still running"), 20_000))])).toBe(1);
    expect(logs.join("")).toContain("the model thread is dead; exiting");
    process.stdout.write(
      `[model-thread] crash → /healthz 503 in ${failedMs} ms, → worker exit 1 in ${Date.now() - crashedAt} ms\n`,
    );
  });

  it("fails /healthz while its model thread hangs with frames waiting, and recovers when it answers again", {
    timeout: 150_000,
  }, async () => {
    const w = await faultableWorker();
    // Longer than the stall time (10 s), so liveness fails for the last ten seconds of it.
    await hangModelThread(w.pid, w.inspectPort, STALL_MS + 10_000);
    const hungAt = Date.now();
    const failed = await waitFor("/healthz to fail", failing(w.healthz), STALL_MS + 15_000, 100);
    const failedMs = Date.now() - hungAt;
    expect(failed.status).toBe(503);
    expect(failed.body).toMatch(
      /^model stalled: the model thread answered nothing for \d+ s with \d+ frame\(s\) waiting$/,
    );
    // The quiet clock starts at the model's last answer, or at the first frame it never took: that can be up to
    // a frame interval (200 ms at 5 fps) before the inspector confirmed the hang here. CI once saw 29 982 ms.
    expect(failedMs).toBeGreaterThanOrEqual(STALL_MS - 1000);
    // The worker's setting, not the default, decided it.
    expect(failedMs).toBeLessThan(MODEL_STALL_MS);
    await waitFor("/healthz ok again", async () => (await w.healthz()).status === 200, 30_000, 200);
    expect(await w.healthz()).toEqual({ status: 200, body: "ok" });
    // A hang that ends is not a death: the worker goes on.
    const n = stats.length;
    await waitFor("inferences again", async () => stats.slice(n).some((s) => s.data.inference_ms > 0), 15_000);
    expect(await Promise.race([w.exited, new Promise((r) => setTimeout(() => r("running"), 100))])).toBe("running");
    process.stdout.write(
      `[model-thread] hang → /healthz 503 after ${failedMs} ms (VIGIL_MODEL_STALL_MS ${STALL_MS})\n`,
    );
  });
});

describe("vigil up", () => {
  let up: ChildProcess;
  let output = "";

  afterAll(() => {
    if (process.env.DEBUG_WORKER) console.log(output);
    if (up && up.exitCode === null && up.signalCode === null) up.kill("SIGTERM");
  });

  it("restarts a worker whose model thread died or hangs, and the new one streams again", {
    timeout: 240_000,
  }, async () => {
    const inspectPort = await freePort();
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      VIGIL_PORT: "0",
      LOG_LEVEL: "info",
      VIGIL_MODEL_STALL_MS: String(STALL_MS),
      // Inherited by the workers `vigil up` forks: each opens its inspector on SIGUSR1 only.
      NODE_OPTIONS: inspectOption(inspectPort),
    };
    delete env.REDIS_URL;
    delete env.VIGIL_API_TOKEN;
    up = spawn(process.execPath, [join(ROOT, "bin", "vigil.ts"), "up", "-f", manifests], {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    for (const s of [up.stdout, up.stderr]) s?.on("data", (b: Buffer) => (output += b.toString()));
    const url = await waitFor(
      "the dashboard URL",
      async () => /vigil up: dashboard (http:\/\/127\.0\.0\.1:\d+)\/\?access_token=(\S+)/.exec(output) ?? undefined,
      30_000,
    );
    const api = async <T>(path: string): Promise<T> => {
      const r = await fetch(`${url[1]}/api/v1${path}`, { headers: { authorization: `Bearer ${url[2]}` } });
      if (r.status !== 200) throw new Error(`${path}: ${r.status} ${await r.text()}`);
      return (await r.json()) as T;
    };
    type Workers = { pools: { status: { workers: { pid: number; restarts: number; phase: string }[] } }[] };
    const worker = async () => (await api<Workers>("/pools")).pools[0]!.status.workers[0]!;
    const hallStats = () => api<StatsMessage>("/cameras/default%2Fhall/stats");
    await waitFor("inference running", async () => (await hallStats()).data.inference_ms > 0, 60_000, 250);
    const before = await worker();
    expect(before).toMatchObject({ restarts: 0, phase: "Ready" });

    await crashModelThread(before.pid, inspectPort);
    const crashedAt = Date.now();
    const after = await waitFor(
      "the worker restarted",
      async () => {
        const w = await worker();
        return w.restarts === 1 && w.pid > 0 && w.pid !== before.pid ? w : undefined;
      },
      30_000,
      200,
    );
    expect(after.pid).not.toBe(before.pid);
    // Stats with inferences after the crash: only a new model thread can have run them.
    const again = await waitFor(
      "the new worker streaming",
      async () => {
        const s = await hallStats();
        return Date.parse(s.timestamp) > crashedAt && s.data.inference_ms > 0 && !s.data.model_error && s;
      },
      60_000,
      250,
    );
    expect(again.data.stream).toBe("streaming");
    expect(() => process.kill(before.pid, 0)).toThrow();
    process.stdout.write(
      `[model-thread] vigil up: crash → worker restarted and inferring again in ${Date.now() - crashedAt} ms\n`,
    );

    // A model thread that hangs (alive, answering nothing) is restarted too: vigil up has no kubelet, so the
    // worker is its own liveness probe and exits once the model stalls (VIGIL_MODEL_STALL_MS, inherited).
    await hangModelThread(after.pid, inspectPort, 120_000);
    const hungAt = Date.now();
    const third = await waitFor(
      "the hung worker replaced",
      async () => {
        const w = await worker();
        return w.restarts === 2 && w.pid > 0 && w.pid !== after.pid ? w : undefined;
      },
      60_000,
      250,
    );
    await waitFor(
      "the third worker streaming",
      async () => {
        const s = await hallStats();
        return Date.parse(s.timestamp) > hungAt + STALL_MS && s.data.inference_ms > 0 && !s.data.model_error && s;
      },
      60_000,
      250,
    );
    expect(third.pid).not.toBe(after.pid);
    process.stdout.write(`[model-thread] vigil up: hang → worker replaced in ${Date.now() - hungAt} ms\n`);
  });
});
