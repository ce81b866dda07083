// `vigil up -f cameras.yaml`: Vigil on one host without Kubernetes. The same CameraDetection / DetectorPool /
// Secret manifests, workers as supervised local processes (packed like the operator packs pods), their messages
// over IPC (or Redis when REDIS_URL is set), and the gateway serving the dashboard and API on one port. Alarms go
// through the same queue, records and clip store interfaces as in a cluster: embedded (node:sqlite files and a
// clips folder under the data directory) unless RABBITMQ_URL / MYSQL_URL name servers; the alarm service is a
// supervised child (alarm-service.ts).
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import type { FastifyInstance } from "fastify";
import pino from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { z } from "zod";
import { createFsClipStore } from "../alarms/clips/fs-store.ts";
import type { AlarmRecords } from "../alarms/records.ts";
import { openRecords } from "../alarms/records-open.ts";
import { resolveTarget } from "../alarms/webhook-secrets.ts";
import type { AssessmentSource } from "../gateway/assessments.ts";
import type { BusFeed } from "../gateway/feed.ts";
import { createIpcFeed } from "../gateway/ipc-feed.ts";
import { SOURCE_SCHEMES } from "../operator/api/camera-detection.ts";
import { COCO_CLASSES } from "../worker/detections.ts";
import { type LocalManifests, loadManifests } from "../worker/manifests.ts";
import { parseCameraId } from "../worker/publish/camera-id.ts";
import { validateRules } from "../worker/rules/engine.ts";
import { describeAlarmLayer, planAlarmLayer, serviceAlarmEnv, workerAlarmEnv } from "./alarm-layer.ts";
import { createLocalAlarmService, type LocalAlarmService } from "./alarm-service.ts";
import { createLocalCatalog } from "./catalog.ts";
import { createLocalExecutor, type LocalExecutorOptions, planWorkers } from "./local-executor.ts";

const USAGE = `usage: vigil up -f FILE

Runs the CameraDetections of FILE (with their DetectorPools and Secrets) on this host and serves the dashboard.
file:// sources play in real time and loop; file://./x and file://../x are relative to the current directory.

environment: VIGIL_PORT (8080), VIGIL_HOST (127.0.0.1), VIGIL_API_TOKEN (comma-separated name:token[:read|write];
             otherwise a random write token, named vigil-up),
             REDIS_URL (workers publish to Redis instead of the built-in IPC bus), LOG_LEVEL
alarms:      VIGIL_DATA_DIR (.vigil): the embedded alarm queue, records and clips, used unless
             RABBITMQ_URL (the queue on RabbitMQ) / MYSQL_URL (the records on MySQL or MariaDB) are set
`;

/** The name of the token `vigil up` generates when VIGIL_API_TOKEN is unset (GET /api/v1/me, the logs). */
export const GENERATED_TOKEN_NAME = "vigil-up";

const upEnv = z.object({
  VIGIL_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  VIGIL_HOST: z.string().min(1).default("127.0.0.1"),
  VIGIL_API_TOKEN: z.string().optional(),
  REDIS_URL: z.string().optional(),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
});

/**
 * What the apiserver's CEL rules would reject, checked here because no apiserver sees these manifests: source URL
 * scheme, credentials inside URLs, one kind per rule, zones and classes rules name, min ≤ max workers, model.inputWidth
 * with inputHeight. And what a cluster would only find at the first alarm: the webhook Secret a camera names must be in
 * the file, with a usable url and secret (the file is all there is here, so a typo is caught at start; the reasons
 * never quote either).
 */
const CREDENTIALS_IN_URL = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/@]*@/;

export function checkManifests(file: string, m: LocalManifests): void {
  const problems: string[] = [];
  for (const p of m.pools) {
    if (p.spec.minWorkers > p.spec.maxWorkers)
      problems.push(`DetectorPool ${p.metadata.name}: spec.minWorkers: must not exceed maxWorkers`);
    if ((p.spec.model.inputWidth === undefined) !== (p.spec.model.inputHeight === undefined))
      problems.push(
        `DetectorPool ${p.metadata.name}: spec.model.inputWidth: model.inputWidth and model.inputHeight are given together`,
      );
    if (CREDENTIALS_IN_URL.test(p.spec.model.uri))
      problems.push(
        `DetectorPool ${p.metadata.name}: spec.model.uri: must not carry credentials; reference a Secret in spec.model.credentialsSecretRef`,
      );
  }
  for (const cam of m.cameras) {
    const url = cam.spec.source.url;
    if (!new RegExp(`^(${SOURCE_SCHEMES.join("|")})://`).test(url))
      problems.push(
        `CameraDetection ${cam.id}: spec.source.url: must use one of the schemes ${SOURCE_SCHEMES.join(", ")}`,
      );
    if (CREDENTIALS_IN_URL.test(url))
      problems.push(
        `CameraDetection ${cam.id}: spec.source.url: must not carry credentials; reference a Secret in spec.source.credentialsSecretRef`,
      );
    const ref = cam.spec.alarm?.webhookSecretRef;
    if (ref) {
      const { namespace } = parseCameraId(cam.id);
      const data = m.secrets?.get(`${namespace}/${ref.name}`);
      const target = data
        ? resolveTarget(namespace, ref.name, data)
        : { missing: `Secret ${namespace}/${ref.name} is not in the file` };
      if ("missing" in target)
        problems.push(`CameraDetection ${cam.id}: spec.alarm.webhookSecretRef: ${target.missing}`);
    }
    const pool = m.pools.find((p) => p.metadata.name === cam.spec.poolRef.name);
    for (const r of validateRules(cam.spec, pool?.spec.model.classNames ?? COCO_CLASSES)) {
      const i = cam.spec.rules.findIndex((x) => x.name === r.rule);
      problems.push(`CameraDetection ${cam.id}: spec.rules[${i}] (${r.rule}): ${r.message}`);
    }
  }
  if (problems.length) throw new Error(`${file}: ${problems.join("; ")}`);
}

export async function runUp(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { file: { type: "string", short: "f" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (!values.file) throw new Error(`give the manifests with -f FILE\n\n${USAGE}`);
  const parsed = upEnv.safeParse(process.env);
  if (!parsed.success)
    throw new Error(
      `invalid configuration: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  const env = parsed.data;
  if (!existsSync(values.file)) throw new Error(`${values.file}: no such file`);
  const manifests = loadManifests(values.file);
  checkManifests(values.file, manifests);
  const cwd = process.cwd();
  const layer = planAlarmLayer(process.env, cwd, manifests);
  const started = Date.now();
  // From here on a signal means a clean stop, also while still starting.
  const stopRequested = new Promise<void>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => resolve());
  });
  const log = pino({ level: env.LOG_LEVEL, base: { component: "up" } });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  // The bus: Redis when REDIS_URL is set (workers publish there, the gateway subscribes), else the IPC channel
  // between this process and the workers it forks.
  let feed: BusFeed;
  let bus: LocalExecutorOptions["bus"];
  // Assessments only come through Redis (an assessor run beside `vigil up` writes there); without it, none.
  let assessments: AssessmentSource | undefined;
  if (env.REDIS_URL) {
    const { createRedisFeed } = await import("../gateway/redis-feed.ts");
    feed = createRedisFeed(env.REDIS_URL, { registry, log });
    bus = { redisUrl: env.REDIS_URL, feed };
    const { createRedisAssessments } = await import("../gateway/assessments-redis.ts");
    assessments = createRedisAssessments(env.REDIS_URL, { registry, log });
  } else {
    const scheduled = planWorkers(manifests, { placePaused: true }).workers.length > 0;
    const ipc = createIpcFeed({ registry, log, hasCameras: () => scheduled });
    feed = ipc;
    bus = { ipc };
  }

  // Snapshots and clips show people: the data directory is the user's alone.
  for (const d of [layer.dataDir, layer.clipDir, layer.scratchDir]) mkdirSync(d, { recursive: true, mode: 0o700 });
  const executor = createLocalExecutor({ manifests, bus, log, env: workerAlarmEnv(layer, process.env) });
  // No camera with spec.alarm, no alarm service; the records and clips are still served (earlier runs' alarms).
  const alarmService: LocalAlarmService | undefined = layer.alarmCameras.length
    ? createLocalAlarmService({
        manifests: resolve(cwd, values.file),
        env: serviceAlarmEnv(layer, process.env),
        cwd,
        log,
      })
    : undefined;
  const records: AlarmRecords = openRecords(layer.recordsUrl);
  const clips = createFsClipStore(layer.clipDir);
  log.info(
    { ...describeAlarmLayer(layer), cameras: layer.alarmCameras },
    layer.alarmCameras.length ? "alarms" : "alarms: no camera has spec.alarm; the alarm service is not started",
  );
  const catalog = createLocalCatalog({
    manifests,
    feed,
    placements: () => executor.placements(),
    workers: () => executor.workers(),
  });
  const seen = new Set<string>();
  feed.on({
    stats: (m) => {
      if (seen.has(m.camera_id)) return;
      seen.add(m.camera_id);
      log.info({ camera: m.camera_id, afterMs: Date.now() - started }, "first stats from the camera's worker");
    },
  });
  for (const [camera, p] of executor.placements())
    if (!p.worker) log.warn({ camera, reason: p.reason, message: p.message }, "camera not scheduled");

  const tokens = (env.VIGIL_API_TOKEN ?? "")
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
  // None given: one generated for this run, with the write scope (its dashboard may start and stop cameras).
  const generated = tokens.length === 0 ? randomBytes(24).toString("base64url") : undefined;
  if (generated) tokens.push(`${GENERATED_TOKEN_NAME}:${generated}:write`);

  let app: FastifyInstance | undefined;
  const closeGateway = async () => {
    if (!app) return;
    // Closing ends the live streams first; a connection that never sent a request (a browser's preconnect, a
    // pooled client socket) is not idle to Node and would hold server.close() open, so all are cut after 1 s.
    const server = app.server;
    const cut = setTimeout(() => server.closeAllConnections(), 1000);
    await app.close().catch((err: Error) => log.warn({ err: err.message }, "gateway close failed"));
    clearTimeout(cut);
  };
  const shutdown = async () => {
    // All at once: the children got a Ctrl-C's SIGINT too (one process group), and a supervisor told to stop
    // before their exit is seen does not schedule a restart. The workers' outboxes drain into the queue, the
    // alarm service leaves what is unfinished unacked there: neither needs the other to stop first.
    await Promise.all([closeGateway(), executor.stop(), alarmService?.stop()]);
    await catalog.close();
    await feed.close();
    await assessments?.close();
    await records.close().catch((err: Error) => log.warn({ err: err.message }, "alarm records close failed"));
  };
  try {
    // The records' tables before anyone reads them. The alarm service applies the migrations too (idempotent,
    // and safe at once: sqlite BEGIN IMMEDIATE, MySQL GET_LOCK); a database that is down now is not fatal: it
    // retries, and the alarm routes answer once it is up.
    await records.migrate().catch((err: Error) => {
      if (layer.records.kind === "embedded") throw new Error(`alarm records ${layer.records.path}: ${err.message}`);
      log.warn({ err: err.message }, "alarm records: migrations not applied yet (the alarm service retries)");
    });
    alarmService?.start();
    await executor.start();
    const { buildGateway } = await import("../gateway/app.ts");
    app = buildGateway({
      feed,
      catalog,
      tokens,
      registry,
      logger: log,
      alarms: { records, clips },
      control: executor,
      ...(assessments ? { assessments } : {}),
    });
    await app.listen({ port: env.VIGIL_PORT, host: env.VIGIL_HOST });
  } catch (err) {
    await shutdown();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : env.VIGIL_PORT;
  const host = env.VIGIL_HOST === "0.0.0.0" || env.VIGIL_HOST === "::" ? "127.0.0.1" : env.VIGIL_HOST;
  const base = `http://${host.includes(":") ? `[${host}]` : host}:${port}/`;
  process.stdout.write(
    generated
      ? `vigil up: dashboard ${base}?access_token=${generated}\n`
      : `vigil up: dashboard ${base}?access_token=… (a token from VIGIL_API_TOKEN)\n`,
  );
  log.info(
    { workers: executor.workers().map((w) => ({ name: w.name, cameras: w.cameras })), port },
    "vigil up is running",
  );

  await stopRequested;
  log.info("shutting down");
  // A second signal, or a shutdown that hangs, ends the process anyway.
  const force = () => process.exit(1);
  process.once("SIGINT", force).once("SIGTERM", force);
  setTimeout(force, 20_000).unref();
  await shutdown();
  process.off("SIGINT", force).off("SIGTERM", force);
  log.info("stopped");
  return 0;
}
