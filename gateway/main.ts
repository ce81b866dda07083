// `vigil gateway`: the HTTP gateway over the bus (Redis) and the camera catalog (the Kubernetes API, or a
// manifest file with --manifests), with probes and metrics on a second port that needs no token. Settings from the
// environment, validated at start; stops cleanly on SIGTERM.
import { parseArgs } from "node:util";
import pino from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { z } from "zod";
import { createFsClipStore } from "../alarms/clips/fs-store.ts";
import { describeRecordsUrl, openRecords } from "../alarms/records-open.ts";
import { loadKubeConfig } from "../operator/kube/client.ts";
import { buildGateway } from "./app.ts";
import { createRedisAssessments } from "./assessments-redis.ts";
import { parseApiTokens } from "./auth.ts";
import { createKubeCatalog } from "./catalog-kube.ts";
import { createStaticCatalog } from "./catalog-static.ts";
import { createKubeControl } from "./control-kube.ts";
import type { CameraCatalog } from "./feed.ts";
import { buildHealthServer } from "./health-server.ts";
import { createRedisFeed } from "./redis-feed.ts";

const list = (v: string) =>
  v
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);

export const gatewayEnv = z.object({
  VIGIL_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  VIGIL_HOST: z.string().min(1).default("0.0.0.0"),
  // /healthz, /readyz and /metrics without the API token, on VIGIL_HOST too (like the operator's :8081; in a pod
  // the port is the pod's own). 0: a port of the OS's choosing, logged as healthPort.
  VIGIL_GATEWAY_HEALTH_PORT: z.coerce.number().int().min(0).max(65535).default(8081),
  // name:token[:read|write], comma-separated; a plain token is read-only (gateway/auth.ts).
  VIGIL_API_TOKEN: z
    .string({ error: "is required: one or more API tokens, comma-separated (name:token[:read|write])" })
    .transform((v, ctx) => {
      try {
        return parseApiTokens(v);
      } catch (err) {
        ctx.addIssue({ code: "custom", message: (err as Error).message.replace(/^VIGIL_API_TOKEN: /, "") });
        return z.NEVER;
      }
    }),
  REDIS_URL: z.string().default("redis://127.0.0.1:6379"),
  KUBECONFIG: z.string().optional(),
  VIGIL_WATCH_NAMESPACE: z.string().optional().describe("Only this namespace's cameras; all when unset."),
  VIGIL_CORS_ORIGINS: z
    .string()
    .optional()
    .describe("Comma-separated allowed origins, or * for any; CORS is off when unset."),
  VIGIL_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(0).default(6000),
  VIGIL_TRUST_PROXY: z.enum(["true", "false"]).default("false"),
  VIGIL_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000),
  MYSQL_URL: z
    .string()
    .regex(/^mysql:\/\//i, "must be a mysql:// URL")
    .optional()
    .describe("The alarm records (MySQL/MariaDB), for /api/v1/alarms."),
  VIGIL_ALARMS_DB: z
    .string()
    .min(1)
    .optional()
    .describe("The alarm records in a sqlite file, when MYSQL_URL is unset."),
  VIGIL_CLIP_DIR: z.string().min(1).optional().describe("The clip store directory: alarm snapshots and clips."),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
});
export type GatewayEnv = z.infer<typeof gatewayEnv>;

export function loadGatewayEnv(env: NodeJS.ProcessEnv = process.env): GatewayEnv {
  const parsed = gatewayEnv.safeParse(env);
  if (!parsed.success)
    throw new Error(
      `invalid gateway configuration: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`,
    );
  return parsed.data;
}

export async function runGateway(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { manifests: { type: "string" } } });
  const env = loadGatewayEnv();
  const log = pino({
    level: env.LOG_LEVEL,
    base: { component: "gateway" },
    redact: ["req.headers.authorization", "headers.authorization"],
  });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  // From the Kubernetes API, or from a manifest file; starting and stopping cameras sets their spec.paused, so it
  // needs the API (a manifest file is not written to: those routes answer 503).
  const kc = values.manifests ? undefined : loadKubeConfig(env.KUBECONFIG);
  const catalog: CameraCatalog = kc
    ? createKubeCatalog(kc, {
        ...(env.VIGIL_WATCH_NAMESPACE ? { namespace: env.VIGIL_WATCH_NAMESPACE } : {}),
        log,
      })
    : createStaticCatalog(values.manifests ?? "");
  const control = kc ? createKubeControl(kc) : undefined;
  const feed = createRedisFeed(env.REDIS_URL, { registry, log });
  // Where `vigil assessor` stores its answers (the same Redis as the bus).
  const assessments = createRedisAssessments(env.REDIS_URL, { registry, log });
  const recordsUrl = env.MYSQL_URL ?? env.VIGIL_ALARMS_DB;
  const records = recordsUrl ? openRecords(recordsUrl) : undefined;
  // The alarm service applies the migrations too; a gateway whose database user may not create tables still
  // serves alarms once it has.
  records
    ?.migrate()
    .catch((err: Error) => log.warn({ err: err.message }, "alarm records: migrations not applied here"));
  const clips = env.VIGIL_CLIP_DIR ? createFsClipStore(env.VIGIL_CLIP_DIR) : undefined;
  const cors = env.VIGIL_CORS_ORIGINS;
  const app = buildGateway({
    feed,
    catalog,
    tokens: env.VIGIL_API_TOKEN,
    registry,
    logger: log,
    rateLimitPerMinute: env.VIGIL_RATE_LIMIT_PER_MINUTE,
    trustProxy: env.VIGIL_TRUST_PROXY === "true",
    ...(control ? { control } : {}),
    alarms: { ...(records ? { records } : {}), ...(clips ? { clips } : {}) },
    assessments,
    ...(cors ? { corsOrigins: cors.trim() === "*" ? (true as const) : list(cors) } : {}),
  });
  const health = buildHealthServer({ feed, catalog, registry, logger: log });
  try {
    await app.listen({ host: env.VIGIL_HOST, port: env.VIGIL_PORT });
    await health.listen({ host: env.VIGIL_HOST, port: env.VIGIL_GATEWAY_HEALTH_PORT });
  } catch (err) {
    // A port in use: nothing may keep the process alive after the error is reported.
    await Promise.allSettled([
      app.close(),
      health.close(),
      feed.close(),
      assessments.close(),
      catalog.close(),
      records?.close(),
    ]);
    throw err;
  }
  const portOf = (a: ReturnType<typeof app.server.address>) => (typeof a === "object" && a ? a.port : undefined);
  log.info(
    {
      catalog: values.manifests
        ? `manifests ${values.manifests}`
        : `kubernetes ${env.VIGIL_WATCH_NAMESPACE ?? "(all namespaces)"}`,
      tokens: env.VIGIL_API_TOKEN.map((t) => `${t.name}:${t.scope}`),
      control: control ? "kubernetes (spec.paused)" : "off (--manifests)",
      alarms: recordsUrl
        ? `${describeRecordsUrl(recordsUrl).kind} ${describeRecordsUrl(recordsUrl).where}`
        : "off (set MYSQL_URL or VIGIL_ALARMS_DB)",
      clips: env.VIGIL_CLIP_DIR ?? "off (set VIGIL_CLIP_DIR)",
      port: portOf(app.server.address()),
      healthPort: portOf(health.server.address()),
    },
    "gateway listening",
  );

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => resolve(sig));
  });
  log.info({ signal }, "shutting down");
  const deadline = setTimeout(() => {
    log.warn("shutdown timed out; exiting");
    process.exit(1);
  }, env.VIGIL_SHUTDOWN_TIMEOUT_MS);
  deadline.unref();
  await app.close(); // stops accepting, ends live streams and WebSockets, waits for requests in flight
  await health.close();
  await feed.close();
  await assessments.close();
  await catalog.close();
  await records?.close();
  clearTimeout(deadline);
  log.info("gateway stopped");
}
