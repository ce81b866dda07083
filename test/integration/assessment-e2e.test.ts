// The assessment path end to end on real components: vtest.avi over a real RTSP server → a real worker (YOLOv8n,
// tracker, a count rule) → an assessment task on real RabbitMQ (crops of the people the rule counted) → `vigil
// assessor` → the fake DashScope-like provider through the real `openai` package → the result in Redis → the gateway
// (REST) and the dashboard in headless Chromium, next to the event that caused it → a high-risk answer raises an
// alarm through the alarm pipeline (`vigil alarms`, MariaDB, a verifying webhook receiver), with the reason attached
// and the replay clip the worker kept for the task.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { stringify } from "yaml";
import type { AssessmentResult } from "../../assessor/messages.ts";
import { type FakeProvider, startFakeProvider } from "../fakes/llm-provider.ts";
import { type AlarmServiceProc, startAlarmService } from "../setup/alarm-service.ts";
import { type AssessorProc, startAssessor, stopAssessor, writePoolFile } from "../setup/assessor.ts";
import { type Broker, startMariaDB, startRabbitMQ } from "../setup/brokers.ts";
import { launchChromium } from "../setup/browser.ts";
import { ROOT } from "../setup/operator-env.ts";
import {
  FIXTURES,
  type GatewayProc,
  type Service,
  startGateway,
  startRedis,
  startRtsp,
  startWorker,
  type WorkerProc,
  waitFor,
} from "../setup/services.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../setup/webhook-receiver.ts";

type Obj = Record<string, any>;
const CAMERA = "default/entrance";
const TOKEN = "assessment-e2e-token-0123456789";
const KEY = "sk-e2e-assessment-0123456789abcdef";
const dir = mkdtempSync(join(tmpdir(), "vigil-assessment-e2e-"));
const clipDir = join(dir, "clips");
const logs: string[] = [];
let redis: Service;
let rtsp: Service;
let rabbit: Broker;
let maria: Broker;
let receiver: WebhookReceiver;
let provider: FakeProvider;
let alarms: AlarmServiceProc;
let worker: WorkerProc;
let assessor: AssessorProc;
let gateway: GatewayProc;
let browser: Browser;

const api = async (path: string) => {
  const r = await fetch(`${gateway.base}/api/v1${path}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  if (r.status !== 200) throw new Error(`GET ${path}: HTTP ${r.status}: ${await r.text()}`);
  return (await r.json()) as Obj;
};

function manifests(rtspPort: number, hook: WebhookReceiver): string {
  const file = join(dir, "cameras.yaml");
  const docs = [
    {
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "entrance-hook" },
      stringData: { url: hook.url, secret: hook.secret },
    },
    {
      apiVersion: "vigil.dev/v1alpha1",
      kind: "CameraDetection",
      metadata: { name: "entrance" },
      spec: {
        source: { url: `rtsp://127.0.0.1:${rtspPort}/cam1` },
        poolRef: { name: "local" },
        detection: { targetFps: 5 },
        // More than one person for 4 s (outside count.max; by then the clip buffer covers the pre-roll): an info
        // event, no alarm of its own, that is sent for assessment.
        rules: [{ name: "group", severity: "info", cooldownSeconds: 600, count: { max: 1, forSeconds: 4 } }],
        // Only critical rule events are alarms by themselves; the assessment's answer raises this one.
        alarm: {
          minSeverity: "critical",
          clip: { preSeconds: 2, postSeconds: 2 },
          dedupWindowSeconds: 30,
          webhookSecretRef: { name: "entrance-hook" },
        },
        // The fake answers risk = people − 1 from the crops: a group of two or more is at least 1.
        assessment: { poolRef: { name: "llm" }, threshold: 1, onEvents: ["group"], prompt: "Is anyone at risk?" },
      },
    },
  ];
  writeFileSync(file, docs.map((d) => stringify(d)).join("---\n"));
  return file;
}

beforeAll(async () => {
  [redis, rtsp, rabbit, maria, receiver, provider] = await Promise.all([
    startRedis(),
    startRtsp(join(FIXTURES, "vtest.avi"), { loop: true }),
    startRabbitMQ(),
    startMariaDB(),
    startWebhookReceiver(),
    startFakeProvider({
      scopes: [{ name: "acct", rpm: 600, rps: 5 }],
      keys: [{ key: KEY, scope: "acct" }],
      latencyMs: [100, 300],
    }),
  ]);
  const file = manifests(rtsp.port, receiver);
  const poolFile = writePoolFile(join(dir, "pool.yaml"), provider.baseURL, [
    { name: "main", key: KEY, scope: "acct", rps: 5, rpm: 300 },
  ]);
  const redisUrl = `redis://127.0.0.1:${redis.port}`;
  alarms = await startAlarmService(
    { RABBITMQ_URL: rabbit.url, MYSQL_URL: maria.url, VIGIL_CLIP_DIR: clipDir },
    ["--manifests", file],
    logs,
  );
  assessor = await startAssessor(poolFile, { RABBITMQ_URL: rabbit.url, REDIS_URL: redisUrl }, logs);
  gateway = await startGateway(["--manifests", file], redis.port, { VIGIL_API_TOKEN: TOKEN }, logs);
  worker = await startWorker(
    ["--cameras", file],
    redis.port,
    { RABBITMQ_URL: rabbit.url, VIGIL_CLIP_DIR: clipDir, VIGIL_CLIP_SCRATCH_DIR: join(dir, "scratch") },
    logs,
  );
  browser = await launchChromium();
}, 150_000);

afterAll(async () => {
  await browser?.close();
  // The worker stops before the brokers it drains into go away (its outboxes wait for them, bounded).
  const gone = (p: WorkerProc["proc"] | undefined) =>
    p && p.exitCode === null && p.signalCode === null
      ? new Promise<void>((r) => {
          const t = setTimeout(() => p.kill("SIGKILL"), 30_000);
          p.once("exit", () => {
            clearTimeout(t);
            r();
          });
          p.kill("SIGTERM");
        })
      : Promise.resolve();
  await Promise.all([gone(worker?.proc), gone(gateway?.proc)]);
  if (assessor) await stopAssessor(assessor);
  await alarms?.stop();
  await rtsp?.stop("SIGKILL");
  await Promise.all([rabbit?.destroy(), maria?.destroy(), redis?.stop(), receiver?.close(), provider?.close()]);
  writeFileSync(join(tmpdir(), "vigil-assessment-e2e.log"), logs.join(""));
  rmSync(dir, { recursive: true, force: true });
});

describe("an assessment from a camera to the gateway, the dashboard and an alarm", () => {
  it("a rule event on the RTSP stream is assessed; the result is at the gateway and beside its event in the dashboard; its high risk raises an alarm with the reason", {
    timeout: 150_000,
  }, async () => {
    // On a failure, what the services said (the gateway's request lines left out): a clip's reason is there.
    onTestFailed(() =>
      console.log(
        logs
          .join("")
          .split("\n")
          .filter((l) => l && !/"component":"gateway".*"(incoming request|request completed)"/.test(l))
          .slice(-60)
          .join("\n"),
      ),
    );
    const t0 = Date.now();
    const { assessments, latest } = await waitFor(
      "an assessment of the camera at the gateway",
      async () => {
        const body = await api(`/cameras/${encodeURIComponent(CAMERA)}/assessments`);
        return body.assessments?.length ? body : undefined;
      },
      120_000,
      500,
    );
    const result = assessments[0] as AssessmentResult;
    const resultMs = Date.now() - t0;
    expect(latest?.id).toBe(result.id);
    expect(result).toMatchObject({
      camera_id: CAMERA,
      pool: { namespace: "default", name: "llm" },
      model: "qwen-vl-max",
    });
    expect(result.trigger).toMatchObject({ kind: "event", rule: "group", rule_kind: "count" });
    if (result.trigger.kind !== "event") throw new Error("not an event's assessment");
    // The fake read the worker's real crops: one per person the rule counted (two or more), risk = people − 1.
    const people = Number(/^(\d+) people in (\d+) images/.exec(result.reason)?.[1]);
    expect(people).toBeGreaterThanOrEqual(2);
    expect(result.risk).toBe(Math.min(3, people - 1));
    expect(result.key_fingerprint).toMatch(/^[a-f0-9]{8}$/);
    expect(result.usage.total_tokens).toBeGreaterThan(0);
    // The event that caused it is the bus event with that id.
    expect(result.id).toBe(result.trigger.event_id);
    expect(result.trigger.event_id).toMatch(/^default\/entrance:group:0:\d+$/);

    // The dashboard shows it inside its event's row.
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    try {
      await page.goto(`${gateway.base}/?access_token=${TOKEN}`);
      const block = page
        .getByTestId("event-feed")
        .locator(`li[data-id="${result.trigger.event_id}"]`)
        .getByTestId("event-assessment");
      await block.waitFor({ state: "visible", timeout: 20_000 });
      expect(await block.getByTestId("assessment-reason").textContent()).toContain(result.reason);
      expect(await block.getByTestId("assessment-risk").textContent()).toBe(`risk ${result.risk}`);
      mkdirSync(join(ROOT, ".cache", "artifacts"), { recursive: true });
      await page.screenshot({ path: join(ROOT, ".cache", "artifacts", "assessment-e2e.png") });
    } finally {
      await page.close();
    }

    // The answer's alarm: delivered, signed, with the reason, and its replay clip (kept by the worker for the task).
    expect(result.alarm_id).not.toBeNull();
    const raised = await waitFor(
      "the assessment alarm at the receiver",
      async () => receiver.verified("alarm.raised").find((r) => (r.body as Obj).data.id === result.alarm_id),
      60_000,
    );
    const data = (raised.body as Obj).data;
    expect(data).toMatchObject({ camera: { id: CAMERA }, kind: "assessment", rule: "assessment:group" });
    expect(data.snapshot?.key).toMatch(/^default\/entrance\/group_0_\d+\.jpg$/);
    expect(data.assessment).toMatchObject({
      result_id: result.id,
      risk: result.risk,
      threshold: 1,
      reason: result.reason,
    });
    const clip = await waitFor(
      "its replay clip",
      async () => receiver.verified("alarm.clip").find((r) => (r.body as Obj).data.id === result.alarm_id),
      60_000,
    );
    expect((clip.body as Obj).data.clip.duration_seconds).toBeGreaterThanOrEqual(4);
    expect(receiver.received.filter((r) => !r.verified || r.schemaError)).toEqual([]);
    console.log(
      `[assessment-e2e] first result at the gateway ${resultMs} ms after start (risk ${result.risk}, ${result.latency_ms} ms task latency); alarm.raised ${raised.at - t0} ms, alarm.clip ${clip.at - t0} ms`,
    );
    // The key is in no metric and no log line of any process.
    const metrics = await (await fetch(`http://127.0.0.1:${assessor.port}/metrics`)).text();
    expect(metrics).not.toContain(KEY);
    expect(logs.join("")).not.toContain(KEY);
  });
});
