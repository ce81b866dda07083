// Operator settings from the environment, validated once at start; a bad value names the variable.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { z } from "zod";
import { DEFAULT_TOLERATION_SECONDS } from "./controllers/workload.ts";

const bool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");
const ms = z.coerce.number().int().positive();

export const operatorEnv = z.object({
  KUBECONFIG: z.string().optional(),
  VIGIL_WATCH_NAMESPACE: z.string().optional().describe("Only this namespace; all when unset."),
  VIGIL_NAMESPACE: z
    .string()
    .optional()
    .describe("Where the leader Lease lives. Default: POD_NAMESPACE, else the kubeconfig context's, else default."),
  POD_NAMESPACE: z.string().optional().describe("The pod's namespace (the chart sets it from the downward API)."),
  POD_NAME: z.string().optional(),
  VIGIL_LEADER_ELECT: bool.default(true),
  VIGIL_LEASE_NAME: z.string().default("vigil-operator"),
  VIGIL_LEASE_DURATION_MS: ms.default(10_000),
  VIGIL_RENEW_DEADLINE_MS: ms.default(7_000),
  VIGIL_RETRY_PERIOD_MS: ms.default(2_000),
  VIGIL_HEALTH_PORT: z.coerce.number().int().min(0).max(65535).default(8081),
  VIGIL_HEALTH_HOST: z.string().default("0.0.0.0"),
  VIGIL_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(16),
  VIGIL_WORKER_IMAGE: z.string().default("ghcr.io/vigil-dev/vigil:0.1.0"),
  VIGIL_ALLOWED_WORKER_IMAGES: z
    .string()
    .default("")
    .transform((v) =>
      v
        .split(",")
        .map((x) => x.trim())
        .filter(Boolean),
    )
    .describe(
      "Comma-separated image prefixes a DetectorPool's spec.image may use; VIGIL_WORKER_IMAGE is always allowed.",
    ),
  VIGIL_WORKER_SERVICE_ACCOUNT: z.string().default("vigil-worker"),
  VIGIL_WORKER_ENV_SECRET: z.string().default("vigil-worker-env"),
  VIGIL_WORKER_TOLERATION_SECONDS: z.coerce
    .number()
    .int()
    .min(0)
    .max(86_400)
    .default(DEFAULT_TOLERATION_SECONDS)
    .describe(
      "Worker pods' tolerationSeconds for the not-ready and unreachable taints (Kubernetes' default is 300); a pool's spec.failover.tolerationSeconds overrides it.",
    ),
  VIGIL_ALARMS_SERVICE_ACCOUNT: z
    .string()
    .optional()
    .describe(
      "<namespace>/<name> of the alarm service's ServiceAccount; each pool gets a Role for it (alarm-access.ts).",
    ),
  VIGIL_RABBITMQ_SECRET: z
    .string()
    .min(1)
    .optional()
    .describe("Secret in each pool's namespace whose key (VIGIL_RABBITMQ_SECRET_KEY) is the workers' RABBITMQ_URL."),
  VIGIL_RABBITMQ_SECRET_KEY: z.string().min(1).default("url"),
  VIGIL_REDIS_SECRET: z
    .string()
    .min(1)
    .optional()
    .describe("Secret in each pool's namespace whose key (VIGIL_REDIS_SECRET_KEY) is the workers' REDIS_URL."),
  VIGIL_REDIS_SECRET_KEY: z.string().min(1).default("url"),
  VIGIL_CLIP_PVC: z
    .string()
    .min(1)
    .optional()
    .describe(
      "PersistentVolumeClaim in each pool's namespace: the clip store the workers write snapshots and clips to.",
    ),
  VIGIL_WEBHOOK_RECHECK_MS: ms
    .default(30_000)
    .describe("How often a camera whose webhook Secret is not ready is looked at again."),
  VIGIL_RELIST_MS: ms.default(10 * 60_000),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
});
export type OperatorEnv = z.infer<typeof operatorEnv>;

export function loadOperatorEnv(env: NodeJS.ProcessEnv = process.env): OperatorEnv {
  const parsed = operatorEnv.safeParse(env);
  if (!parsed.success) {
    const why = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new Error(`invalid operator configuration: ${why}`);
  }
  return parsed.data;
}

/**
 * Where the leader Lease lives: VIGIL_NAMESPACE; in a cluster POD_NAMESPACE (the pod's own); out of one the namespace
 * the kubeconfig's context names, else "default", as kubectl picks one. So `npx vigil operator` works on a fresh
 * cluster, where no vigil-system namespace exists.
 */
export const leaseNamespace = (e: OperatorEnv, contextNamespace?: string) =>
  e.VIGIL_NAMESPACE || e.POD_NAMESPACE || contextNamespace || "default";
/**
 * This process's leader-election identity: the pod's name and a token of this process (controller-runtime's
 * hostname_uuid). A leader its kubelet restarts at once is a new candidate: it cannot take the Lease back as its own
 * before the dead process's term ran out, so the standby, which has watched that term, takes over.
 */
export const identity = (e: OperatorEnv) =>
  `${e.POD_NAME ?? `${hostname()}_${process.pid}`}_${randomBytes(4).toString("hex")}`;
