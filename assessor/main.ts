// `vigil assessor`: consumes vigil.assessment.tasks (RabbitMQ), schedules them fairly per camera (service.ts), calls
// the model through each AssessmentPool's key pool (pool/key-pool.ts, state shared in Redis), publishes results and
// the alarms they raise, and stores results in Redis for the gateway. 1..N replicas compete on the queue. Pools come
// from a PoolSource: `--pool FILE` (manifests with their keys inline), or else the Kubernetes API (AssessmentPools and
// the Secrets they name, watched; kube/pool-source.ts), where the Lease holder also writes each pool's status
// (kube/status-writer.ts, keys by fingerprint). /healthz, /readyz and /metrics on
// VIGIL_ASSESSOR_PORT. SIGTERM: stop consuming, let in-flight tasks finish (bounded), leave the rest unacked, close.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import { Redis } from "ioredis";
import pino from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { z } from "zod";
import { declareAlarmTopology } from "../alarms/amqp-topology.ts";
import { startHealthServer } from "../operator/health.ts";
import { loadKubeConfig } from "../operator/kube/client.ts";
import { createTaskConsumer, scrubUrl } from "./amqp/consumer.ts";
import { createKubePoolSource, type KubePoolSource } from "./kube/pool-source.ts";
import { ASSESSOR_LEASE, createStatusWriter } from "./kube/status-writer.ts";
import { createAssessorMetrics } from "./metrics.ts";
import { createKeyPool } from "./pool/key-pool.ts";
import type { KeyPool, PoolConfig } from "./pool/types.ts";
import { filePoolSource, type PoolSource } from "./pool-source.ts";
import { alarmOfResult } from "./raise-alarm.ts";
import { createResultsStore } from "./results-store.ts";
import { createAssessorService, type PoolHandle } from "./service.ts";

export const assessorEnv = z.object({
  RABBITMQ_URL: z
    .string({ error: "is required: amqp://user:pass@host:port" })
    .regex(/^amqps?:\/\//, "must be amqp(s)://"),
  REDIS_URL: z.string({ error: "is required: redis://host:port" }).regex(/^rediss?:\/\//, "must be redis(s)://"),
  VIGIL_ASSESSOR_PORT: z.coerce.number().int().min(0).max(65535).default(8084),
  VIGIL_ASSESSOR_HOST: z.string().min(1).default("0.0.0.0"),
  /** Tasks per pool with the key pool at once (per replica): about scope capacity × call latency, with room. */
  VIGIL_ASSESSOR_CONCURRENCY: z.coerce.number().int().min(1).max(1024).default(32),
  /** Unacked deliveries held: large, so the queue drains into the per-camera scheduler queues. */
  VIGIL_ASSESSOR_PREFETCH: z.coerce.number().int().min(1).max(65_535).default(5_000),
  VIGIL_ASSESSOR_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().positive().default(15_000),
  /** Raise alarms from results at or above the task's threshold (off: results only). */
  VIGIL_ASSESSOR_ALARMS: z.enum(["on", "off"]).default("on"),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** Without --pool: AssessmentPools of this namespace only (all namespaces when unset). */
  VIGIL_WATCH_NAMESPACE: z.string().min(1).optional(),
  /** The Lease whose holder writes the pools' status (one writer among the replicas). */
  VIGIL_LEASE_NAME: z.string().min(1).default(ASSESSOR_LEASE),
  POD_NAME: z.string().min(1).optional(),
  POD_NAMESPACE: z.string().min(1).optional(),
});
export type AssessorEnv = z.infer<typeof assessorEnv>;

export function loadAssessorEnv(env: NodeJS.ProcessEnv = process.env): AssessorEnv {
  const parsed = assessorEnv.safeParse(env);
  if (!parsed.success)
    // The field's name and zod's message only: never the value (a URL carries credentials).
    throw new Error(
      `invalid assessor configuration: ${parsed.error.issues.map((i) => `${i.path.join(".")} ${i.message}`).join("; ")}`,
    );
  return parsed.data;
}

/** host:port of a URL, for logs: never its user info. */
const where = (url: string) => {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port}`;
  } catch {
    return "<invalid url>";
  }
};

export async function runAssessor(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { pool: { type: "string" } } });
  const env = loadAssessorEnv();
  const log = pino({ level: env.LOG_LEVEL, base: { component: "assessor" } });
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const redis = new Redis(env.REDIS_URL, { maxRetriesPerRequest: 2, lazyConnect: false });
  redis.on("error", (err) => log.warn({ err: scrubUrl(err.message, env.REDIS_URL) }, "redis error"));
  let kube: KubePoolSource | undefined;
  let source: PoolSource;
  if (values.pool === undefined) {
    kube = createKubePoolSource({ namespace: env.VIGIL_WATCH_NAMESPACE, log });
    source = kubeSource(kube);
    // Waits for the pools and their Secrets' first lists (bounded), so the first tasks find their pool.
    await kube.start();
  } else source = filePoolSource(values.pool, log);

  // One key pool per AssessmentPool; a changed config updates it in place (keys keep their state).
  const pools = new Map<string, { pool: KeyPool; handle: PoolHandle }>();
  const sync = (configs: PoolConfig[]) => {
    const seen = new Set<string>();
    for (const c of configs) {
      const key = `${c.namespace}/${c.name}`;
      seen.add(key);
      const have = pools.get(key);
      if (have) {
        have.pool.update(c);
        have.handle = { pool: have.pool, maxTasksPerCamera: c.spec.maxTasksPerCamera };
      } else {
        const pool = createKeyPool({ config: c, redis, registry, log: log.child({ pool: key }) });
        pools.set(key, { pool, handle: { pool, maxTasksPerCamera: c.spec.maxTasksPerCamera } });
      }
    }
    for (const [key, p] of pools)
      if (!seen.has(key)) {
        pools.delete(key);
        void p.pool.close();
      }
  };
  sync(source.current());

  const results = createResultsStore(redis);
  let consumer: ReturnType<typeof createTaskConsumer> | undefined;
  const metrics = createAssessorMetrics(registry, () =>
    consumer ? consumer.depth() : Promise.reject(new Error("not started")),
  );
  const service = createAssessorService({
    log,
    metrics,
    results,
    pool: (ns, name) => pools.get(`${ns}/${name}`)?.handle,
    ...(env.VIGIL_ASSESSOR_ALARMS === "on" ? { alarmOf: alarmOfResult } : {}),
    concurrency: env.VIGIL_ASSESSOR_CONCURRENCY,
  });
  source.on("change", () => {
    sync(source.current());
    service.refreshPools();
  });
  consumer = createTaskConsumer({
    url: env.RABBITMQ_URL,
    prefetch: env.VIGIL_ASSESSOR_PREFETCH,
    log,
    onDelivery: (d) => service.onDelivery(d),
    onChannelLost: (n) => service.onChannelLost(n),
    // The alarm exchange must exist before an alarm is published on this channel (a 404 would close it).
    declare: (ch) => declareAlarmTopology(ch),
  });

  const health = await startHealthServer({
    host: env.VIGIL_ASSESSOR_HOST,
    port: env.VIGIL_ASSESSOR_PORT,
    registry,
    ready: () => (consumer?.connected() ?? false) && redis.status === "ready",
  });
  await consumer.start();
  const writer = kube
    ? createStatusWriter({
        kc: loadKubeConfig(),
        source: kube,
        leaseName: env.VIGIL_LEASE_NAME,
        leaseNamespace: env.POD_NAMESPACE ?? "default",
        identity: `${env.POD_NAME ?? hostname()}_${randomBytes(4).toString("hex")}`,
        log,
        stats: async (p) => {
          const have = pools.get(`${p.namespace}/${p.name}`);
          if (!have) return undefined;
          const depth = await consumer?.depth().catch(() => undefined);
          return {
            ...(await have.pool.status()),
            ...(depth ? { queueDepth: depth.ready, deadLetters: depth.dead } : {}),
          };
        },
      })
    : undefined;
  writer?.start();
  log.info(
    {
      port: health.port,
      broker: where(env.RABBITMQ_URL),
      redis: where(env.REDIS_URL),
      pools: [...pools.keys()],
      source: values.pool ? "file" : `kubernetes ${env.VIGIL_WATCH_NAMESPACE ?? "(all namespaces)"}`,
      concurrency: env.VIGIL_ASSESSOR_CONCURRENCY,
      prefetch: env.VIGIL_ASSESSOR_PREFETCH,
    },
    "assessor listening",
  );

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => resolve(sig));
  });
  log.info({ signal }, "shutting down");
  const hard = setTimeout(() => {
    log.warn("shutdown timed out; exiting (unacked tasks return to the queue)");
    process.exit(1);
  }, env.VIGIL_ASSESSOR_SHUTDOWN_TIMEOUT_MS + 5_000);
  hard.unref();
  await writer?.stop();
  await consumer.stopConsuming();
  await service.stop(env.VIGIL_ASSESSOR_SHUTDOWN_TIMEOUT_MS);
  await consumer.close();
  source.close();
  await Promise.allSettled([...pools.values()].map((p) => p.pool.close()));
  redis.disconnect();
  await new Promise((r) => health.server.close(r));
  clearTimeout(hard);
  log.info("assessor stopped");
}

/** The Kubernetes source behind the service's PoolSource interface. */
function kubeSource(k: KubePoolSource): PoolSource {
  return {
    current: () => k.current(),
    on: (_event, listener) => k.on("change", () => listener()),
    close: () => k.stop(),
  };
}
