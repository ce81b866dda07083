// Single-host mode on real processes and no Redis: workers forked by the local executor run the real model on the
// fixture video and publish over their IPC channel; the parent reads them through the IPC feed.
import { type ChildProcess, fork, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { createIpcFeed } from "../../gateway/ipc-feed.ts";
import {
  createLocalExecutor,
  type LocalExecutor,
  planWorkers,
  resolveFileUrl,
  tagLine,
} from "../../single/local-executor.ts";
import { loadManifests } from "../../worker/manifests.ts";
import type { EventMessage, StatsMessage } from "../../worker/publish/messages.ts";
import { launchChromium } from "../setup/browser.ts";
import { exitOf, metricValue, ROOT } from "../setup/operator-env.ts";
import { FIXTURES, waitFor } from "../setup/services.ts";

const VIDEO = join(FIXTURES, "vtest.avi");
const dir = mkdtempSync(join(tmpdir(), "vigil-single-"));

const pool = (name: string, spec: Record<string, unknown> = {}) => ({
  apiVersion: "vigil.dev/v1alpha1",
  kind: "DetectorPool",
  metadata: { name },
  spec: { model: { uri: "file:///nowhere/yolov8n.onnx" }, executionProviders: ["cpu"], ...spec },
});
const camera = (name: string, poolName: string, url = `file://${VIDEO}`) => ({
  apiVersion: "vigil.dev/v1alpha1",
  kind: "CameraDetection",
  metadata: { name },
  spec: {
    source: { url },
    poolRef: { name: poolName },
    detection: { targetFps: 5 },
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
    rules: [{ name: "entered", severity: "info", cooldownSeconds: 600, presence: { zone: "floor" } }],
  },
});
function manifestFile(name: string, docs: unknown[]): string {
  const file = join(dir, name);
  writeFileSync(file, docs.map((d) => stringify(d)).join("---\n"));
  return file;
}

describe("placement of a file's cameras on local workers", () => {
  it("packs per pool like the operator, and says why a camera does not run", () => {
    const file = manifestFile("plan.yaml", [
      pool("small", { camerasPerWorker: 2, maxWorkers: 2 }),
      pool("big", { camerasPerWorker: 8 }),
      ...["a", "b", "c", "d", "e"].map((n) => camera(n, "small")),
      camera("f", "big"),
      // The same name in another namespace is another camera.
      { ...camera("a", "big"), metadata: { name: "a", namespace: "shop" } },
      camera("g", "missing"),
      { ...camera("h", "big"), spec: { ...camera("h", "big").spec, paused: true } },
    ]);
    const { workers, placements } = planWorkers(loadManifests(file));
    expect(workers).toEqual([
      { name: "small-0", pool: "small", cameras: ["default/a", "default/c"] },
      { name: "small-1", pool: "small", cameras: ["default/b", "default/d"] },
      { name: "big-0", pool: "big", cameras: ["default/f", "shop/a"] },
    ]);
    expect(placements.get("default/e")).toMatchObject({ pool: "small", reason: "PoolFull" });
    expect(placements.get("default/g")).toMatchObject({ reason: "PoolNotFound" });
    expect(placements.get("default/h")).toMatchObject({ reason: "Paused" });
    expect(resolveFileUrl("file://./.cache/fixtures/vtest.avi", ROOT)).toBe(`file://${VIDEO}`);
    expect(resolveFileUrl("file:///abs/x.avi", ROOT)).toBe("file:///abs/x.avi");
    expect(JSON.parse(tagLine("w-0", '{"level":30,"msg":"hi"}'))).toEqual({ worker: "w-0", level: 30, msg: "hi" });
    expect(tagLine("w-0", "plain")).toBe("[w-0] plain");
  });
});

describe("IPC feed", () => {
  it("passes valid stats and frames, drops malformed messages with a metric, and forwards watches", async () => {
    // A stand-in worker: sends a mix of good and bad messages, and answers each watch with a tiny "frame".
    const script = join(dir, "child.mjs");
    writeFileSync(
      script,
      `const stats = { v: 2, type: "stats", camera_id: "default/a", timestamp: new Date().toISOString(), data: { fps: 5,
        persons: 1, inference_ms: 9, skipped_frames: 0, reconnects: 0, provider: "cpu", frames: 10,
        last_frame_age_ms: 3, stream: "streaming" } };
      process.on("message", (m) => {
        if (m.t === "watch") process.send({ t: "frame", camera: m.camera, jpeg: Buffer.from([0xff, 0xd8, m.watching ? 1 : 0]) });
        if (m.t === "bye") process.disconnect();
      });
      process.send(null);
      process.send({ t: "stats", m: { ...stats, data: { ...stats.data, persons: -1 } } });
      process.send({ t: "event", m: { v: 2, type: "event" } });
      process.send({ t: "frame", camera: "", jpeg: Buffer.from([1]) });
      process.send({ t: "frame", camera: "a", jpeg: Buffer.from([0xff, 0xd8]) });
      process.send({ t: "frame", camera: "default/a", jpeg: "not bytes" });
      process.send({ t: "what" });
      process.send({ t: "stats", m: stats });
      `,
    );
    const registry = new Registry();
    const feed = createIpcFeed({ registry });
    const stats: StatsMessage[] = [];
    const frames: [string, Buffer][] = [];
    feed.on({ stats: (m) => stats.push(m), frame: (c, jpeg) => frames.push([c, jpeg]) });
    expect(feed.ready()).toBe(false);
    feed.watch("default/a", true); // before the child exists: sent to it when attached
    const child = fork(script, [], { serialization: "advanced", stdio: ["ignore", "inherit", "inherit", "ipc"] });
    feed.attach(child);
    expect(feed.ready()).toBe(true);
    await waitFor("stats", async () => stats.length > 0, 10_000);
    await waitFor("the frame answering the watch", async () => frames.length > 0, 10_000);
    expect(frames[0]![0]).toBe("default/a");
    expect(Buffer.isBuffer(frames[0]![1])).toBe(true);
    expect([...frames[0]![1]]).toEqual([0xff, 0xd8, 1]);
    feed.watch("default/a", true); // already watched: nothing new is sent
    feed.watch("default/a", false);
    await waitFor("the unwatch answer", async () => frames.length === 2, 10_000);
    expect([...frames[1]![1]]).toEqual([0xff, 0xd8, 0]);
    expect(stats).toHaveLength(1);
    expect(stats[0]!.data.persons).toBe(1);
    const metrics = await registry.metrics();
    expect(metricValue(metrics, "vigil_gateway_malformed_total", 'channel="ipc"')).toBe(7);
    const exited = new Promise((r) => child.once("exit", r));
    child.send({ t: "bye" });
    await exited;
    expect(feed.attached()).toBe(0);
    await feed.close();
  });
});

describe("local executor with the IPC bus", () => {
  let executor: LocalExecutor;
  const feed = createIpcFeed();
  const stats: (StatsMessage & { receivedAt: number })[] = [];
  const events: EventMessage[] = [];
  const frames: { camera: string; jpeg: Buffer; at: number }[] = [];
  const output: string[] = [];
  let startedAt = 0;

  beforeAll(async () => {
    feed.on({
      stats: (m) => stats.push({ ...m, receivedAt: Date.now() }),
      event: (m) => events.push(m),
      frame: (camera, jpeg) => frames.push({ camera, jpeg, at: Date.now() }),
    });
    // The video by a relative file:// URL, and a pool whose model is not on this host (the fixture runs).
    const file = manifestFile("executor.yaml", [
      pool("local", { camerasPerWorker: 4 }),
      camera("cam1", "local", "file://./.cache/fixtures/vtest.avi"),
    ]);
    executor = createLocalExecutor({
      manifests: loadManifests(file),
      base: ROOT,
      bus: { ipc: feed },
      output: (w, line) => output.push(`${w}: ${line}`),
      env: { ...process.env, LOG_LEVEL: "info" },
    });
    // Someone watches before the worker runs: the worker must learn it and send frames across.
    feed.watch("default/cam1", true);
    startedAt = Date.now();
    await executor.start();
  });

  afterAll(async () => {
    await executor?.stop();
    await feed.close();
  });

  it("a forked worker's stats and annotated JPEG frames reach the parent process", { timeout: 60_000 }, async () => {
    expect(executor.workers()).toMatchObject([
      { name: "local-0", pool: "local", cameras: ["default/cam1"], restarts: 0 },
    ]);
    const pid = executor.workers()[0]!.pid;
    expect(pid).toBeGreaterThan(0);
    expect(pid).not.toBe(process.pid);
    await waitFor("first stats", async () => stats.length > 0, 30_000).catch((err) => {
      throw new Error(`${err}\n${output.slice(-20).join("\n")}`);
    });
    const firstStatsMs = stats[0]!.receivedAt - startedAt;
    await waitFor("stats with persons", async () => (stats.at(-1)?.data.persons ?? 0) > 0, 30_000);
    await waitFor("a JPEG frame", async () => frames.length > 0, 15_000);
    const frame = frames[0]!;
    expect(frame.camera).toBe("default/cam1");
    expect(Buffer.isBuffer(frame.jpeg)).toBe(true);
    expect(frame.jpeg.subarray(0, 2).toString("hex")).toBe("ffd8");
    expect(frame.jpeg.length).toBeGreaterThan(5000);
    expect(stats.at(-1)!.data).toMatchObject({ provider: "cpu", stream: "streaming" });
    await waitFor("a presence event", async () => events.some((e) => e.rule === "entered"), 15_000);
    await waitFor("worker running", async () => executor.workers()[0]!.state === "running", 5000);
    expect(output.join("\n")).toContain('local-0: {"level":30');
    process.stdout.write(
      `[single-host] worker start → first stats ${firstStatsMs} ms, → first frame ${frame.at - startedAt} ms\n`,
    );
  });

  it("restarts a SIGKILLed worker with backoff; stats and frames resume from the new process", {
    timeout: 60_000,
  }, async () => {
    const before = executor.workers()[0]!;
    const child = executor.child("local-0") as ChildProcess;
    expect(child.pid).toBe(before.pid);
    process.kill(before.pid!, "SIGKILL");
    const killedAt = Date.now();
    await waitFor("worker in backoff", async () => executor.workers()[0]!.state === "backoff", 5000);
    expect(executor.workers()[0]!.lastExit).toMatchObject({ signal: "SIGKILL" });
    expect(feed.attached()).toBe(0);
    await waitFor("worker restarted", async () => executor.workers()[0]!.restarts === 1, 5000);
    const after = executor.workers()[0]!;
    expect(after.pid).toBeGreaterThan(0);
    expect(after.pid).not.toBe(before.pid);
    expect(Date.now() - killedAt).toBeGreaterThanOrEqual(900); // the first backoff is 1 s
    const n = stats.length;
    await waitFor(
      "stats from the restarted worker",
      async () => stats.slice(n).some((s) => s.receivedAt > killedAt + 1000 && s.data.frames > 0),
      30_000,
    );
    await waitFor("frames again", async () => frames.some((f) => f.at > killedAt + 1000), 15_000);
    await waitFor("running again", async () => executor.workers()[0]!.state === "running", 5000);
    expect(executor.workers()[0]!.restarts).toBe(1);
  });

  it("stop() ends the workers for good", { timeout: 30_000 }, async () => {
    const pid = executor.workers()[0]!.pid!;
    await executor.stop();
    expect(executor.workers()[0]!.state).toBe("stopped");
    expect(() => process.kill(pid, 0)).toThrow();
    expect(feed.attached()).toBe(0);
  });
});

describe("vigil up", () => {
  it("exits 1 with a message naming the document and the field of a bad manifest", async () => {
    const bad = manifestFile("bad.yaml", [
      pool("local"),
      { ...camera("cam1", "local"), spec: { ...camera("cam1", "local").spec, detection: { targetFps: 0 } } },
    ]);
    const { code, stderr } = await run(["up", "-f", bad]);
    expect(code).toBe(1);
    expect(stderr).toContain("document 2 (CameraDetection)");
    expect(stderr).toContain("spec.detection.targetFps");
    const badRule = manifestFile("bad-rule.yaml", [
      pool("local"),
      {
        ...camera("cam1", "local"),
        spec: {
          ...camera("cam1", "local").spec,
          rules: [{ name: "x", dwell: { zone: "nowhere", seconds: 1 } }],
        },
      },
    ]);
    const r2 = await run(["up", "-f", badRule]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toContain('CameraDetection default/cam1: spec.rules[0] (x): zone "nowhere" is not defined');
    // A camera id is its namespace and name: twice the same pair is an error, and a name must be a Kubernetes one.
    const twice = manifestFile("twice.yaml", [pool("local"), camera("cam1", "local"), camera("cam1", "local")]);
    const r3 = await run(["up", "-f", twice]);
    expect(r3.code).toBe(1);
    expect(r3.stderr).toContain(
      "document 3 (CameraDetection): metadata: CameraDetection default/cam1 is already defined in document 2",
    );
    const badName = manifestFile("bad-name.yaml", [pool("local"), camera("Front Door", "local")]);
    const r4 = await run(["up", "-f", badName]);
    expect(r4.code).toBe(1);
    expect(r4.stderr).toContain(
      'document 2 (CameraDetection): metadata.name "Front Door": must be a DNS-1123 subdomain',
    );
    // A rectangular input needs both sides, as the CRD's CEL rule says.
    const halfPool = pool("local", { model: { uri: "file:///nowhere/yolov8n.onnx", inputWidth: 640 } });
    const r7 = await run(["up", "-f", manifestFile("half-shape.yaml", [halfPool, camera("cam1", "local")])]);
    expect(r7.code).toBe(1);
    expect(r7.stderr).toContain(
      "DetectorPool local: spec.model.inputWidth: model.inputWidth and model.inputHeight are given together",
    );
    // An alarm's webhook Secret is checked at start: absent, or a key unusable (and never quoted).
    const withAlarm = (name: string) => ({
      ...camera(name, "local"),
      spec: { ...camera(name, "local").spec, alarm: { webhookSecretRef: { name: "hook" } } },
    });
    const noSecret = manifestFile("no-secret.yaml", [pool("local"), withAlarm("cam1")]);
    const r5 = await run(["up", "-f", noSecret]);
    expect(r5.code).toBe(1);
    expect(r5.stderr).toContain(
      "CameraDetection default/cam1: spec.alarm.webhookSecretRef: Secret default/hook is not in the file",
    );
    const badKey = manifestFile("bad-key.yaml", [
      pool("local"),
      withAlarm("cam1"),
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "hook" },
        stringData: { url: "http://127.0.0.1:9/hook", secret: "not-a-whsec-key" },
      },
    ]);
    const r6 = await run(["up", "-f", badKey]);
    expect(r6.code).toBe(1);
    expect(r6.stderr).toContain("spec.alarm.webhookSecretRef: Secret default/hook: key secret: must start with whsec_");
    expect(r6.stderr).not.toContain("not-a-whsec-key");
  });
});

describe("vigil up -f hack/demo/cameras.yaml", () => {
  let up: ChildProcess;
  let stdout = "";
  let stderr = "";
  let exited: Promise<number | null>;

  beforeAll(() => {
    // The alarm layer's files (queue, records, clips) in a temporary directory, not the repository's .vigil.
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      VIGIL_PORT: "0",
      LOG_LEVEL: "info",
      VIGIL_DATA_DIR: join(dir, "demo-data"),
    };
    delete env.REDIS_URL;
    delete env.VIGIL_API_TOKEN;
    up = spawn(process.execPath, [join(ROOT, "bin", "vigil.ts"), "up", "-f", "hack/demo/cameras.yaml"], {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    up.stdout?.on("data", (b: Buffer) => {
      stdout += b.toString();
    });
    up.stderr?.on("data", (b: Buffer) => {
      stderr += b.toString();
    });
    exited = exitOf(up).then((e) => e.code);
  });

  afterAll(async () => {
    if (up.exitCode === null && up.signalCode === null) up.kill("SIGKILL");
  });

  it("serves the demo cameras, their stats and their live video through the gateway, then stops cleanly", {
    timeout: 60_000,
  }, async () => {
    const startedAt = Date.now();
    const url = await waitFor(
      "the dashboard URL",
      async () => /vigil up: dashboard (http:\/\/127\.0\.0\.1:\d+\/\?access_token=(\S+))/.exec(stdout) ?? undefined,
      20_000,
    ).catch((err) => {
      throw new Error(`${err}\n${stdout.slice(-2000)}\n${stderr.slice(-2000)}`);
    });
    const base = new URL(url[1]!);
    const token = url[2]!;
    const api = (path: string) =>
      fetch(new URL(`/api/v1${path}`, base), { headers: { authorization: `Bearer ${token}` } });
    const unauthorized = await fetch(new URL("/api/v1/cameras", base));
    expect(unauthorized.status).toBe(401);
    await unauthorized.text();
    const { cameras } = (await (await api("/cameras")).json()) as { cameras: { id: string; pool: string }[] };
    // No namespace in the demo's manifests: the cameras are in "default".
    expect(cameras.map((c) => c.id).sort()).toEqual(["default/corridor", "default/lobby"]);
    const stats = await waitFor(
      "lobby stats with persons",
      async () => {
        const r = await api("/cameras/default%2Flobby/stats");
        if (r.status !== 200) return void (await r.text());
        const m = (await r.json()) as StatsMessage;
        return m.data.persons > 0 ? m : undefined;
      },
      30_000,
      200,
    );
    const statsMs = Date.now() - startedAt;
    expect(stats.data).toMatchObject({ stream: "streaming", provider: "cpu" });
    const lobby = (await (await api("/cameras/default%2Flobby")).json()) as {
      status: { phase: string; worker: string };
    };
    expect(lobby.status).toMatchObject({ phase: "Running", worker: "yolov8n-0" });
    const { pools } = (await (await api("/pools")).json()) as {
      pools: { name: string; status: { workers: { name: string; pid: number; restarts: number }[] } }[];
    };
    expect(pools[0]!.status.workers).toMatchObject([{ name: "yolov8n-0", restarts: 0 }]);
    const workerPid = pools[0]!.status.workers[0]!.pid;

    // The live video: the gateway watches the camera, the worker learns it over IPC and sends JPEGs back.
    const video = await fetch(new URL(`/api/v1/cameras/default%2Flobby/video.mjpeg?access_token=${token}`, base));
    expect(video.status).toBe(200);
    const reader = video.body!.getReader();
    let bytes = Buffer.alloc(0);
    const deadline = Date.now() + 15_000;
    while (bytes.indexOf(Buffer.from([0xff, 0xd8])) < 0 && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      bytes = Buffer.concat([bytes, value]);
    }
    await reader.cancel();
    expect(bytes.indexOf(Buffer.from([0xff, 0xd8]))).toBeGreaterThanOrEqual(0);
    process.stdout.write(`[single-host] vigil up → lobby stats with persons over HTTP ${statsMs} ms\n`);

    // What a newcomer sees: the printed URL in a real browser shows both cameras' detections and events.
    const browser = await launchChromium();
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
      await page.goto(url[1]!);
      await page.waitForFunction(
        () => {
          const d = (globalThis as any).document;
          const tiles = [...d.querySelectorAll('[data-testid="camera-tile"]')];
          return (
            tiles.length === 2 &&
            tiles.every((t: any) => t.querySelector('[data-testid="camera-video"]').naturalWidth > 0) &&
            d.querySelectorAll('[data-testid="event-row"]').length > 0
          );
        },
        undefined,
        { timeout: 30_000 },
      );
      mkdirSync(join(ROOT, ".cache", "artifacts"), { recursive: true });
      await page.screenshot({ path: join(ROOT, ".cache", "artifacts", "vigil-up.png") });
    } finally {
      await browser.close();
    }

    // A client connection that never sends a request (as a browser's preconnect) must not hold the shutdown.
    const idle = connect(Number(base.port), "127.0.0.1");
    idle.on("error", () => undefined);
    await new Promise((r) => idle.once("connect", r));
    const stopAt = Date.now();
    up.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(Date.now() - stopAt).toBeLessThan(8000);
    idle.destroy();
    expect(() => process.kill(workerPid, 0)).toThrow();
    expect(stderr).not.toContain(token);
  });
});

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [join(ROOT, "bin", "vigil.ts"), ...args], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => {
    stdout += b.toString();
  });
  child.stderr.on("data", (b: Buffer) => {
    stderr += b.toString();
  });
  return exitOf(child).then(({ code }) => ({ code, stdout, stderr }));
}
