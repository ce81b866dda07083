// `vigil alarms`: the alarm service. Consumes the alarm queue (RabbitMQ, or the embedded node:sqlite queue under
// `vigil up`), drives each alarm through its steps (service.ts) against the records (MySQL/MariaDB, or node:sqlite)
// and the clip store, and pushes the signed webhooks. Two or more replicas share the queue as competing consumers.
// Webhook Secrets and Events from the Kubernetes API (KUBECONFIG or in-cluster), or Secrets from a manifests file
// (--manifests FILE) on a single host. /healthz, /readyz and /metrics on VIGIL_ALARMS_PORT. SIGTERM: stop
// consuming, end every wait, leave what is unfinished unacked (the queue gives it to another consumer), close.
import { parseArgs } from "node:util";
import pino from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { z } from "zod";
import { startHealthServer } from "../operator/health.ts";
import { loadKubeConfig, makeClients } from "../operator/kube/client.ts";
import { loadManifests } from "../worker/manifests.ts";
import { createAmqpAlarmConsumer } from "./amqp-consumer.ts";
import { type CameraEvents, kubeCameraEvents, logCameraEvents } from "./camera-events.ts";
import { createFsClipStore } from "./clips/fs-store.ts";
import { createAlarmMetrics } from "./metrics.ts";
import type { AlarmConsumer } from "./queue.ts";
import { describeRecordsUrl, openRecords } from "./records-open.ts";
import { CRASH_POINTS, createAlarmService, DEFAULT_SERVICE_CONFIG } from "./service.ts";
import { createSqliteAlarmConsumer } from "./sqlite-queue.ts";
import { kubeWebhookSecrets, staticWebhookSecrets, type WebhookSecretSource } from "./webhook-secrets.ts";

const ms = (def: number) => z.coerce.number().int().min(0).default(def);

export const alarmsEnv = z
  .object({
    RABBITMQ_URL: z.string().min(1).optional().describe("amqp://…; else VIGIL_ALARM_QUEUE"),
    VIGIL_ALARM_QUEUE: z.string().min(1).optional().describe("The embedded queue's file (vigil up)"),
    MYSQL_URL: z.string().min(1).optional().describe("mysql://user:pass@host:port/db; else VIGIL_ALARMS_DB"),
    VIGIL_ALARMS_DB: z.string().min(1).optional().describe("The embedded records' file (node:sqlite)"),
    VIGIL_CLIP_DIR: z.string({ error: "is required: the clip store directory (shared with the workers)" }).min(1),
    /** Not used: dedup is a unique key in the records. Accepted so one environment serves every process. */
    REDIS_URL: z.string().optional(),
    VIGIL_ALARMS_PORT: z.coerce.number().int().min(0).max(65535).default(8083),
    VIGIL_ALARMS_HOST: z.string().min(1).default("0.0.0.0"),
    VIGIL_ALARMS_PREFETCH: z.coerce.number().int().min(1).max(10_000).default(64),
    /** The embedded queue's lease: a crashed service's alarms come back after this (renewed every third of it). */
    VIGIL_ALARMS_LEASE_MS: z.coerce.number().int().min(100).default(30_000),
    VIGIL_ALARMS_CLIP_GRACE_MS: ms(DEFAULT_SERVICE_CONFIG.clipGraceMs),
    VIGIL_ALARMS_CLIP_POLL_MS: z.coerce.number().int().min(10).default(DEFAULT_SERVICE_CONFIG.clipPollMs),
    VIGIL_ALARMS_SECRET_RECHECK_MS: z.coerce.number().int().min(10).default(DEFAULT_SERVICE_CONFIG.secretRecheckMs),
    VIGIL_ALARMS_HOLD_MS: ms(DEFAULT_SERVICE_CONFIG.holdMs),
    VIGIL_ALARMS_CLAIM_MS: z.coerce.number().int().min(100).default(DEFAULT_SERVICE_CONFIG.claimMs),
    VIGIL_ALARMS_WEBHOOK_ATTEMPTS: z.coerce.number().int().min(1).optional(),
    VIGIL_ALARMS_WEBHOOK_BUDGET_MS: z.coerce.number().int().min(0).optional(),
    VIGIL_ALARMS_WEBHOOK_BACKOFF_MS: z.coerce.number().int().min(0).optional(),
    VIGIL_ALARMS_WEBHOOK_MAX_BACKOFF_MS: z.coerce.number().int().min(0).optional(),
    VIGIL_ALARMS_WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(1).optional(),
    VIGIL_ALARMS_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().positive().default(15_000),
    /** Fault injection for tests only (service.ts CRASH_POINTS): the process kills itself with SIGKILL there. */
    VIGIL_ALARMS_TEST_CRASH_AT: z.enum(CRASH_POINTS).optional(),
    KUBECONFIG: z.string().optional(),
    LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  })
  .superRefine((e, ctx) => {
    if (!e.RABBITMQ_URL && !e.VIGIL_ALARM_QUEUE)
      ctx.addIssue({ code: "custom", path: ["RABBITMQ_URL"], message: "or VIGIL_ALARM_QUEUE is required" });
    if (!e.MYSQL_URL && !e.VIGIL_ALARMS_DB)
      ctx.addIssue({ code: "custom", path: ["MYSQL_URL"], message: "or VIGIL_ALARMS_DB is required" });
  });
export type AlarmsEnv = z.infer<typeof alarmsEnv>;

export function loadAlarmsEnv(env: NodeJS.ProcessEnv = process.env): AlarmsEnv {
  const parsed = alarmsEnv.safeParse(env);
  if (!parsed.success)
    throw new Error(
      `invalid alarm service configuration: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`,
    );
  return parsed.data;
}

/** Where the queue is, for the log line: the broker's host, never its credentials. */
const brokerWhere = (url: string) => {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || 5672}${u.pathname === "/" ? "" : u.pathname}`;
  } catch {
    return "<invalid url>";
  }
};

export async function runAlarms(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { manifests: { type: "string" } } });
  const env = loadAlarmsEnv();
  const log = pino({ level: env.LOG_LEVEL, base: { component: "alarms" } });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const consumer: AlarmConsumer & { connected?: () => boolean } = env.RABBITMQ_URL
    ? createAmqpAlarmConsumer(env.RABBITMQ_URL, { prefetch: env.VIGIL_ALARMS_PREFETCH, log })
    : createSqliteAlarmConsumer(env.VIGIL_ALARM_QUEUE as string, {
        prefetch: env.VIGIL_ALARMS_PREFETCH,
        leaseMs: env.VIGIL_ALARMS_LEASE_MS,
        log,
      });
  const recordsUrl = env.MYSQL_URL ?? (env.VIGIL_ALARMS_DB as string);
  const records = openRecords(recordsUrl);
  const store = createFsClipStore(env.VIGIL_CLIP_DIR);

  let secrets: WebhookSecretSource;
  let events: CameraEvents;
  if (values.manifests) {
    secrets = staticWebhookSecrets(loadManifests(values.manifests).secrets ?? new Map());
    events = logCameraEvents(log);
  } else {
    const clients = makeClients(loadKubeConfig(env.KUBECONFIG));
    secrets = kubeWebhookSecrets(clients.core);
    events = kubeCameraEvents(clients, log);
  }

  const metrics = createAlarmMetrics(registry, () => consumer.depth());
  const budget = {
    ...(env.VIGIL_ALARMS_WEBHOOK_ATTEMPTS !== undefined ? { maxAttempts: env.VIGIL_ALARMS_WEBHOOK_ATTEMPTS } : {}),
    ...(env.VIGIL_ALARMS_WEBHOOK_BUDGET_MS !== undefined ? { maxElapsedMs: env.VIGIL_ALARMS_WEBHOOK_BUDGET_MS } : {}),
    ...(env.VIGIL_ALARMS_WEBHOOK_BACKOFF_MS !== undefined
      ? { initialDelayMs: env.VIGIL_ALARMS_WEBHOOK_BACKOFF_MS }
      : {}),
    ...(env.VIGIL_ALARMS_WEBHOOK_MAX_BACKOFF_MS !== undefined
      ? { maxDelayMs: env.VIGIL_ALARMS_WEBHOOK_MAX_BACKOFF_MS }
      : {}),
    ...(env.VIGIL_ALARMS_WEBHOOK_TIMEOUT_MS !== undefined
      ? { attemptTimeoutMs: env.VIGIL_ALARMS_WEBHOOK_TIMEOUT_MS }
      : {}),
  };
  const service = createAlarmService({
    records,
    store,
    secrets,
    events,
    metrics,
    log,
    config: {
      clipGraceMs: env.VIGIL_ALARMS_CLIP_GRACE_MS,
      clipPollMs: env.VIGIL_ALARMS_CLIP_POLL_MS,
      secretRecheckMs: env.VIGIL_ALARMS_SECRET_RECHECK_MS,
      holdMs: env.VIGIL_ALARMS_HOLD_MS,
      claimMs: env.VIGIL_ALARMS_CLAIM_MS,
      budget,
      ...(env.VIGIL_ALARMS_TEST_CRASH_AT ? { crashAt: env.VIGIL_ALARMS_TEST_CRASH_AT } : {}),
    },
  });

  let migrated = false;
  const health = await startHealthServer({
    host: env.VIGIL_ALARMS_HOST,
    port: env.VIGIL_ALARMS_PORT,
    registry,
    ready: () => migrated && (consumer.connected?.() ?? true),
  });
  log.info(
    {
      port: health.port,
      queue: env.RABBITMQ_URL
        ? `rabbitmq ${brokerWhere(env.RABBITMQ_URL)}`
        : `embedded ${env.VIGIL_ALARM_QUEUE as string}`,
      records: (({ kind, where }) => `${kind} ${where}`)(describeRecordsUrl(recordsUrl)),
      secrets: values.manifests ? `manifests ${values.manifests}` : "kubernetes",
      clips: env.VIGIL_CLIP_DIR,
      owner: service.owner,
      ...(env.VIGIL_ALARMS_TEST_CRASH_AT ? { testCrashAt: env.VIGIL_ALARMS_TEST_CRASH_AT } : {}),
    },
    "alarms listening",
  );
  if (env.REDIS_URL)
    log.info("REDIS_URL is set and not needed: dedup is a unique key in the records, across every replica");

  let stopRequested = false;
  const signalled = new Promise<NodeJS.Signals>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const)
      process.once(sig, () => {
        stopRequested = true;
        resolve(sig);
      });
  });

  // The database may be down at start: the migrations are tried until it answers, or until asked to stop.
  for (let attempt = 1; !stopRequested; attempt++) {
    try {
      await records.migrate();
      migrated = true;
      break;
    } catch (err) {
      if (attempt === 1 || attempt % 10 === 0)
        log.warn({ err: err instanceof Error ? err.message : String(err), attempt }, "records not ready; retrying");
      await Promise.race([new Promise((r) => setTimeout(r, Math.min(5_000, 250 * 2 ** attempt))), signalled]);
    }
  }
  if (migrated) await consumer.start((d) => service.handle(d));

  const signal = await signalled;
  log.info({ signal }, "shutting down");
  const deadline = setTimeout(() => {
    log.warn("shutdown timed out; exiting (unacked alarms return to the queue)");
    process.exit(1);
  }, env.VIGIL_ALARMS_SHUTDOWN_TIMEOUT_MS);
  deadline.unref();
  service.stop(); // every wait ends; unfinished alarms are left unsettled
  await consumer.close();
  await records.close();
  await new Promise((r) => health.server.close(r));
  clearTimeout(deadline);
  log.info("alarms stopped");
}
