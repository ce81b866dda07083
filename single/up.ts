// `vigil up -f cameras.yaml`: Vigil on one host without Kubernetes. The same CameraDetection / DetectorPool /
// Secret manifests, workers as supervised local processes (packed like the operator packs pods), their messages
// over IPC (or Redis when REDIS_URL is set), and the gateway serving the dashboard and API on one port.
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import type { FastifyInstance } from "fastify";
import pino from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { z } from "zod";
import type { BusFeed } from "../gateway/feed.ts";
import { createIpcFeed } from "../gateway/ipc-feed.ts";
import { SOURCE_SCHEMES } from "../operator/api/camera-detection.ts";
import { COCO_CLASSES } from "../worker/detections.ts";
import { type LocalManifests, loadManifests } from "../worker/manifests.ts";
import { validateRules } from "../worker/rules/engine.ts";
import { createLocalCatalog } from "./catalog.ts";
import { createLocalExecutor, type LocalExecutorOptions, planWorkers } from "./local-executor.ts";

const USAGE = `usage: vigil up -f FILE

Runs the CameraDetections of FILE (with their DetectorPools and Secrets) on this host and serves the dashboard.
file:// sources play in real time and loop; file://./x and file://../x are relative to the current directory.

environment: VIGIL_PORT (8080), VIGIL_HOST (127.0.0.1), VIGIL_API_TOKEN (comma-separated; a random one otherwise),
             REDIS_URL (workers publish to Redis instead of the built-in IPC bus), LOG_LEVEL
`;

const upEnv = z.object({
  VIGIL_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  VIGIL_HOST: z.string().min(1).default("127.0.0.1"),
  VIGIL_API_TOKEN: z.string().optional(),
  REDIS_URL: z.string().optional(),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
});

/**
 * What the apiserver's CEL rules would reject, checked here because no apiserver sees these manifests: source URL
 * scheme, credentials inside URLs, one kind per rule, zones and classes rules name, min ≤ max workers.
 */
const CREDENTIALS_IN_URL = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^/@]*@/;

export function checkManifests(file: string, m: LocalManifests): void {
  const problems: string[] = [];
  for (const p of m.pools) {
    if (p.spec.minWorkers > p.spec.maxWorkers)
      problems.push(`DetectorPool ${p.metadata.name}: spec.minWorkers: must not exceed maxWorkers`);
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
  if (env.REDIS_URL) {
    const { createRedisFeed } = await import("../gateway/redis-feed.ts");
    feed = createRedisFeed(env.REDIS_URL, { registry, log });
    bus = { redisUrl: env.REDIS_URL, feed };
  } else {
    const scheduled = planWorkers(manifests).workers.length > 0;
    const ipc = createIpcFeed({ registry, log, hasCameras: () => scheduled });
    feed = ipc;
    bus = { ipc };
  }

  const executor = createLocalExecutor({ manifests, bus, log, env: process.env });
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
  const generated = tokens.length === 0;
  if (generated) tokens.push(randomBytes(24).toString("base64url"));

  let app: FastifyInstance | undefined;
  const shutdown = async () => {
    if (app) {
      // Closing ends the live streams first; a connection that never sent a request (a browser's preconnect, a
      // pooled client socket) is not idle to Node and would hold server.close() open, so all are cut after 1 s.
      const server = app.server;
      const cut = setTimeout(() => server.closeAllConnections(), 1000);
      await app.close().catch((err: Error) => log.warn({ err: err.message }, "gateway close failed"));
      clearTimeout(cut);
    }
    await executor.stop();
    await catalog.close();
    await feed.close();
  };
  try {
    await executor.start();
    const { buildGateway } = await import("../gateway/app.ts");
    app = buildGateway({ feed, catalog, tokens, registry, logger: log });
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
      ? `vigil up: dashboard ${base}?access_token=${tokens[0]}\n`
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
