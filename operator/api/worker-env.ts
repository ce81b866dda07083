// The worker's environment: the contract between the two executors that start workers (the operator's StatefulSet,
// `vigil up`'s local processes) and `vigil worker`, which reads it. One schema: the worker parses it at start, and
// both executors build the model's part with modelEnv(), whose keys the schema checks.
import { homedir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import type { DetectorPool } from "./detector-pool.ts";

const classNames = z
  .string()
  .transform((raw, ctx) => {
    let names: unknown;
    try {
      names = JSON.parse(raw);
    } catch {}
    const r = z.array(z.string().min(1)).min(1).safeParse(names);
    if (!r.success) ctx.addIssue({ code: "custom", message: "must be a JSON array of class names" });
    return r.data ?? [];
  })
  .optional();

export const workerEnv = z.object({
  REDIS_URL: z.string().default("redis://127.0.0.1:6379"),
  // ipc: publish to the parent process that forked this worker (`vigil up`) instead of Redis.
  VIGIL_BUS: z.enum(["redis", "ipc"]).default("redis"),
  // The DetectorPool's spec.model (modelEnv below).
  VIGIL_MODEL_URI: z.string().min(1).default(".cache/fixtures/yolov8n.onnx"),
  // Where http(s) models are downloaded: the pod's cache volume, else the user's own cache (not a shared /tmp).
  VIGIL_MODEL_DIR: z.string().default(join(homedir(), ".cache", "vigil", "models")),
  VIGIL_MODEL_SHA256: z.string().optional(),
  VIGIL_MODEL_FORMAT: z.enum(["yolov5", "yolov8", "yolov11"]).optional(),
  VIGIL_MODEL_INPUT_SIZE: z.coerce.number().int().positive().optional(),
  // spec.model.inputWidth and inputHeight: the rectangle frames are letterboxed to (both or neither).
  VIGIL_MODEL_INPUT_WIDTH: z.coerce.number().int().positive().optional(),
  VIGIL_MODEL_INPUT_HEIGHT: z.coerce.number().int().positive().optional(),
  VIGIL_MODEL_CLASS_NAMES: classNames,
  // Download credentials (spec.model.credentialsSecretRef), from a Secret: a Bearer token, or a user and password.
  VIGIL_MODEL_TOKEN: z.string().min(1).optional(),
  VIGIL_MODEL_USERNAME: z.string().min(1).optional(),
  VIGIL_MODEL_PASSWORD: z.string().optional(),
  VIGIL_EXECUTION_PROVIDERS: z.string().default("cpu"),
  VIGIL_THREADS: z.coerce.number().int().min(0).default(0),
  // Sessions of the model that run frames at once, VIGIL_THREADS shared out among them (DetectorPool
  // spec.model.instances; worker/infer/instances.ts).
  VIGIL_MODEL_INSTANCES: z.coerce.number().int().min(1).max(16).default(1),
  // Batch across cameras when the model's batch axis is dynamic (DetectorPool spec.model.maxBatch).
  VIGIL_MAX_BATCH: z.coerce.number().int().min(1).max(64).default(8),
  VIGIL_MAX_BATCH_DELAY_MS: z.coerce.number().int().min(0).max(1000).default(0),
  VIGIL_WORKER_PORT: z.coerce.number().int().min(0).max(65535).default(9090),
  VIGIL_WORKER_HOST: z.string().default("0.0.0.0"),
  VIGIL_STALL_TIMEOUT_MS: z.coerce.number().int().positive().default(5000),
  // How long the model thread may answer nothing while frames wait before liveness fails (worker/infer/model-health.ts);
  // a slow GPU warm-up or a huge batch may want more. Below 1 s it would fail on an ordinary slow run.
  VIGIL_MODEL_STALL_MS: z.coerce.number().int().min(1000).default(30_000),
  // Decoders (worker/ingest/ffmpeg-source.ts), tunable so bench/density.ts can measure each lever on a real worker.
  // One thread per decoder: 24 cameras already keep every core busy, and frame threads only add switching.
  // Measured (4 clients of the 1080p RTSP fixture at fps=1, load ~13): every frame 155 → 97 ms CPU per
  // stream-second; keyframes only 45 → 37 ms. 0 = ffmpeg's own choice.
  VIGIL_FFMPEG_THREADS: z.coerce.number().int().min(0).max(64).default(1),
  // The decoders' niceness (0 = the worker's own), so the model's threads could win the cores over them.
  VIGIL_FFMPEG_NICE: z.coerce.number().int().min(0).max(19).default(0),
  // Streams connecting at once (worker/ingest/connect-gate.ts): 0 = four per core, at least 4. Measured (24 cameras
  // of the 1080p fixture, 2 cores): unlimited, 16 went past the first-frame watchdog and started over; 4, none, all
  // streaming in 22.7 s; 8, none, in 19.0 s.
  VIGIL_STREAM_CONNECTS: z.coerce.number().int().min(0).max(1024).default(0),
  // Decode only keyframes when the stream's GOP is no longer than the sample period (keyframe-decode.ts).
  VIGIL_KEYFRAME_ONLY: z.enum(["0", "1"]).default("1"),
  // How far V8's old generation grows past the live heap before the next full GC (worker/heap-growth.ts): 0 leaves
  // V8's own choice, which ran a full GC every ~6 frames of a camera here.
  VIGIL_HEAP_GROWING_PERCENT: z.coerce.number().int().min(0).max(1000).default(100),
  VIGIL_REALTIME_FILES: z.enum(["true", "false"]).default("false"),
  // Alarms (worker/alarms.ts) go to RabbitMQ when set; else to the embedded queue file of `vigil up`
  // (alarms/sqlite-queue.ts); with neither, alarms are off.
  RABBITMQ_URL: z.string().min(1).optional(),
  VIGIL_ALARM_QUEUE: z.string().min(1).optional(),
  // Unconfirmed alarms kept while the broker is away; more are dropped and counted.
  VIGIL_ALARM_OUTBOX_MAX: z.coerce.number().int().min(1).max(1_000_000).default(10_000),
  // Assessment tasks (worker/assessment/) go to RabbitMQ (RABBITMQ_URL; without it assessments are off). A task the
  // assessor has not sent to the model this long after it was built is dropped as stale.
  VIGIL_ASSESSMENT_DEADLINE_SECONDS: z.coerce.number().int().min(1).max(3600).default(30),
  // Unconfirmed tasks kept while the broker is away, in all and per camera; past either the oldest are dropped
  // and counted. A task measured 24–26 KB on vtest.avi (base64 JPEGs: the 320×240 frame 22 KB, a crop ~1.5 KB),
  // so 1000 hold ~25–50 MB.
  VIGIL_ASSESSMENT_OUTBOX_MAX: z.coerce.number().int().min(1).max(100_000).default(1000),
  VIGIL_ASSESSMENT_OUTBOX_PER_CAMERA: z.coerce.number().int().min(1).max(100_000).default(100),
  // The clip store's root (a volume shared with the alarm service in a cluster), and where the rolling segment
  // buffers are recorded (local disk; a fresh temporary directory when unset).
  VIGIL_CLIP_DIR: z.string().min(1).optional(),
  VIGIL_CLIP_SCRATCH_DIR: z.string().min(1).optional(),
  POD_NAME: z.string().optional(),
  POD_NAMESPACE: z.string().optional(),
  KUBECONFIG: z.string().optional(),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
});
export type WorkerEnv = z.infer<typeof workerEnv>;
type WorkerEnvKey = keyof z.input<typeof workerEnv>;

export function parseWorkerEnv(env: NodeJS.ProcessEnv): WorkerEnv {
  const parsed = workerEnv.safeParse(env);
  if (!parsed.success)
    throw new Error(
      `invalid worker configuration: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
    );
  return parsed.data;
}

type Model = Omit<
  DetectorPool["spec"]["model"],
  "maxBatch" | "maxBatchDelayMs" | "credentialsSecretRef" | "classNames" | "instances"
> & {
  instances?: number | undefined;
  maxBatch?: number | undefined;
  maxBatchDelayMs?: number | undefined;
  classNames?: readonly string[] | undefined;
};

/** The model part of a worker's environment, as strings; credentials are not in it (they come from a Secret). */
export function modelEnv(model: Model, executionProviders: readonly string[]): Partial<Record<WorkerEnvKey, string>> {
  const env: Partial<Record<WorkerEnvKey, string | undefined>> = {
    VIGIL_MODEL_URI: model.uri,
    VIGIL_MODEL_SHA256: model.sha256,
    VIGIL_MODEL_FORMAT: model.format,
    VIGIL_MODEL_INPUT_SIZE: model.inputSize?.toString(),
    VIGIL_MODEL_INPUT_WIDTH: model.inputWidth?.toString(),
    VIGIL_MODEL_INPUT_HEIGHT: model.inputHeight?.toString(),
    VIGIL_MODEL_CLASS_NAMES: model.classNames && JSON.stringify(model.classNames),
    VIGIL_MAX_BATCH: model.maxBatch?.toString(),
    VIGIL_MODEL_INSTANCES: model.instances?.toString(),
    VIGIL_MAX_BATCH_DELAY_MS: model.maxBatchDelayMs ? String(model.maxBatchDelayMs) : undefined,
    VIGIL_EXECUTION_PROVIDERS: executionProviders.join(","),
  };
  return Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined));
}

/** Every variable that describes the model: an executor clears them before setting a pool's own. */
export const MODEL_ENV_KEYS = [
  "VIGIL_MODEL_URI",
  "VIGIL_MODEL_SHA256",
  "VIGIL_MODEL_FORMAT",
  "VIGIL_MODEL_INPUT_SIZE",
  "VIGIL_MODEL_INPUT_WIDTH",
  "VIGIL_MODEL_INPUT_HEIGHT",
  "VIGIL_MODEL_CLASS_NAMES",
  "VIGIL_MAX_BATCH",
  "VIGIL_MAX_BATCH_DELAY_MS",
  "VIGIL_MODEL_INSTANCES",
  "VIGIL_MODEL_TOKEN",
  "VIGIL_MODEL_USERNAME",
  "VIGIL_MODEL_PASSWORD",
] as const satisfies readonly WorkerEnvKey[];

/** Secret keys a model's credentialsSecretRef may hold, and the variables they become. */
export const MODEL_CREDENTIAL_ENV = {
  token: "VIGIL_MODEL_TOKEN",
  username: "VIGIL_MODEL_USERNAME",
  password: "VIGIL_MODEL_PASSWORD",
} as const satisfies Record<string, WorkerEnvKey>;
