// `vigil worker`: loads the model, then runs its cameras (from manifests in single-host mode) through the
// pipeline, publishing on Redis. Health and metrics on one port; stops cleanly on SIGTERM.
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CoordinationV1Api } from "@kubernetes/client-node";
import type { Logger } from "pino";
import pino from "pino";
import { collectDefaultMetrics, Registry } from "prom-client";
import { createAmqpAlarmPublisher } from "../alarms/amqp-publisher.ts";
import { createClipService } from "../alarms/clips/clip-service.ts";
import { createFsClipStore } from "../alarms/clips/fs-store.ts";
import type { AlarmPublisher } from "../alarms/queue.ts";
import { createSqliteAlarmPublisher } from "../alarms/sqlite-queue.ts";
import { MODEL_CREDENTIAL_ENV, parseWorkerEnv, type WorkerEnv } from "../operator/api/worker-env.ts";
import { startHealthServer } from "../operator/health.ts";
import { loadKubeConfig } from "../operator/kube/client.ts";
import { createAlarmStage } from "./alarms.ts";
import { createAmqpTaskPublisher } from "./assessment/amqp-task-publisher.ts";
import { createAssessmentStage } from "./assessment/stage.ts";
import { growHeapInLargerSteps } from "./heap-growth.ts";
import { loadModelInstances } from "./infer/instances.ts";
import { resolveModelUri } from "./infer/model-source.ts";
import type { Provider } from "./infer/session.ts";
import { watchAssignedCameras } from "./kube-cameras.ts";
import { startWorkerLease, type WorkerLease } from "./lease.ts";
import { loadManifests } from "./manifests.ts";
import { createOwnIdentity } from "./own-identity.ts";
import { createPausedCameras, listenForPauses, type PauseChannel } from "./paused-cameras.ts";
import { createPipeline } from "./pipeline.ts";
import { createIpcBus } from "./publish/ipc-bus.ts";
import { createRedisBus } from "./publish/redis-bus.ts";

export async function runWorker(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: { cameras: { type: "string" }, only: { type: "string" }, paused: { type: "string" } },
  });
  const env = parseWorkerEnv(process.env);
  const log = pino({ level: env.LOG_LEVEL, base: { component: "worker" } });
  if (env.VIGIL_HEAP_GROWING_PERCENT > 0) growHeapInLargerSteps(env.VIGIL_HEAP_GROWING_PERCENT);
  // Two sources of cameras: manifests (single-host mode) or, in a pod, the CameraDetections assigned to it.
  const manifests = values.cameras ? loadManifests(values.cameras) : undefined;
  if (manifests && values.only !== undefined) {
    // --only a,b: a subset of the file's cameras (single-host mode packs one file's cameras onto several workers).
    const only = new Set(values.only.split(",").filter(Boolean));
    const unknown = [...only].filter((id) => !manifests.cameras.some((c) => c.id === id));
    if (unknown.length)
      throw new Error(`vigil worker --only: no CameraDetection ${unknown.join(", ")} in ${values.cameras}`);
    manifests.cameras = manifests.cameras.filter((c) => only.has(c.id));
  }
  // --paused a,b: of those, the cameras `vigil up` was told to stop (POST /cameras/{id}/stop) before this start.
  const paused = values.paused?.split(",").filter(Boolean) ?? [];
  if (paused.length && !manifests) throw new Error("vigil worker --paused needs --cameras FILE");
  const unknownPaused = paused.filter((id) => !manifests?.cameras.some((c) => c.id === id));
  if (unknownPaused.length)
    throw new Error(`vigil worker --paused: no CameraDetection ${unknownPaused.join(", ")} among its cameras`);
  if (env.VIGIL_BUS === "ipc" && !process.send)
    throw new Error("VIGIL_BUS=ipc needs an IPC channel to the parent (a worker forked by `vigil up`)");
  if (!manifests && !(env.POD_NAME && env.POD_NAMESPACE))
    throw new Error(
      "vigil worker: give --cameras FILE (CameraDetections and Secrets), or run in a pod (POD_NAME, POD_NAMESPACE)",
    );

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const modelPath = await resolveModelUri(env.VIGIL_MODEL_URI, {
    cacheDir: env.VIGIL_MODEL_DIR,
    ...(env.VIGIL_MODEL_SHA256 ? { sha256: env.VIGIL_MODEL_SHA256 } : {}),
    credentials: {
      token: env.VIGIL_MODEL_TOKEN,
      username: env.VIGIL_MODEL_USERNAME,
      password: env.VIGIL_MODEL_PASSWORD,
    },
  });
  // Used once: out of the environment, which every ffmpeg this process starts would inherit.
  for (const k of Object.values(MODEL_CREDENTIAL_ENV)) delete process.env[k];
  const detector = await loadModelInstances(
    modelPath,
    {
      providers: env.VIGIL_EXECUTION_PROVIDERS.split(",") as Provider[],
      threads: env.VIGIL_THREADS,
      stallMs: env.VIGIL_MODEL_STALL_MS,
      maxBatch: env.VIGIL_MAX_BATCH,
      maxBatchDelayMs: env.VIGIL_MAX_BATCH_DELAY_MS,
      ...(env.VIGIL_MODEL_SHA256 ? { sha256: env.VIGIL_MODEL_SHA256 } : {}),
      ...(env.VIGIL_MODEL_FORMAT ? { format: env.VIGIL_MODEL_FORMAT } : {}),
      ...(env.VIGIL_MODEL_INPUT_SIZE ? { inputSize: env.VIGIL_MODEL_INPUT_SIZE } : {}),
      ...inputShapeOf(env),
      ...(env.VIGIL_MODEL_CLASS_NAMES ? { classNames: env.VIGIL_MODEL_CLASS_NAMES } : {}),
    },
    env.VIGIL_MODEL_INSTANCES,
  );
  log.info(
    {
      head: detector.head,
      shape: detector.shape,
      provider: detector.provider,
      maxBatch: detector.maxBatch,
      instances: detector.instances,
      note: detector.providerNote,
      batchNote: detector.batchNote,
    },
    "model loaded",
  );
  const bus = env.VIGIL_BUS === "ipc" ? createIpcBus(registry, log) : createRedisBus(env.REDIS_URL, registry, log);
  // The alarm path's edges, built before the pipeline and stopped after it, in reverse order.
  const store = env.VIGIL_CLIP_DIR ? createFsClipStore(env.VIGIL_CLIP_DIR) : undefined;
  const publisher = alarmPublisher(env, registry, log);
  // Recording costs an ffmpeg per alarm camera: only when alarms go somewhere and clips have a store.
  const clips =
    store && publisher
      ? createClipService({
          store,
          // The service keeps a directory per process under it and removes those of processes that are gone.
          scratchDir: env.VIGIL_CLIP_SCRATCH_DIR ?? join(tmpdir(), "vigil-clip-scratch"),
          log,
          registry,
        })
      : undefined;
  const alarms = createAlarmStage({
    publisher,
    store,
    clips,
    realtimeFiles: env.VIGIL_REALTIME_FILES === "true",
    registry,
    log,
  });
  // Assessment tasks go to RabbitMQ only (the assessor reads them there); without it cameras say they are off.
  const taskPublisher = env.RABBITMQ_URL
    ? createAmqpTaskPublisher({
        url: env.RABBITMQ_URL,
        registry,
        log,
        outboxMax: env.VIGIL_ASSESSMENT_OUTBOX_MAX,
        perCameraMax: env.VIGIL_ASSESSMENT_OUTBOX_PER_CAMERA,
      })
    : undefined;
  const assessments = createAssessmentStage({
    publisher: taskPublisher,
    registry,
    log,
    deadlineSeconds: env.VIGIL_ASSESSMENT_DEADLINE_SECONDS,
  });
  let kube: ReturnType<typeof watchAssignedCameras> | undefined;
  let lease: WorkerLease | undefined;
  const pipeline = createPipeline({
    detector,
    bus,
    registry,
    log,
    stallTimeoutMs: env.VIGIL_STALL_TIMEOUT_MS,
    realtimeFiles: env.VIGIL_REALTIME_FILES === "true",
    connectLimit: env.VIGIL_STREAM_CONNECTS || Math.max(4, 4 * availableParallelism()),
    decode: {
      keyframeOnly: env.VIGIL_KEYFRAME_ONLY === "1",
      decoderThreads: env.VIGIL_FFMPEG_THREADS,
      nice: env.VIGIL_FFMPEG_NICE,
    },
    onStats: (id, stats, fps) => void kube?.reportHealth(id, stats, fps),
    alarms,
    assessments,
  });
  let stopListening: (() => void) | undefined;
  if (manifests) {
    const cameras = createPausedCameras(pipeline, manifests.cameras, paused, log);
    // Forked by `vigil up` (an IPC channel, whichever bus): it may stop and start single cameras. In the same tick
    // as the IPC bus's listener, so no message from the parent arrives in between.
    if (process.send) {
      const stop = listenForPauses(cameras, process as unknown as PauseChannel, log);
      stopListening = () => {
        stop();
        process.channel?.unref();
      };
    }
  } else {
    const kc = loadKubeConfig(env.KUBECONFIG);
    const namespace = env.POD_NAMESPACE ?? "";
    const pod = env.POD_NAME ?? "";
    // One token of the pod's own ServiceAccount for its cameras' Secrets and its Lease.
    const own = createOwnIdentity(kc, namespace, pod);
    const cameras = watchAssignedCameras(kc, namespace, pod, pipeline, log, own);
    kube = cameras;
    cameras.start();
    // From now on the operator may give this worker cameras: the model is loaded and their watch is starting.
    lease = startWorkerLease({
      api: () => own.client(CoordinationV1Api),
      onUnauthorized: () => own.invalidate(),
      namespace,
      name: pod,
      log,
      unhealthy: () => {
        if (!cameras.synced()) return "the camera watch has not synced yet";
        const h = detector.health?.();
        return h && !h.ok ? `model ${h.state}: ${h.reason}` : undefined;
      },
    });
  }
  const health = await startHealthServer({
    host: env.VIGIL_WORKER_HOST,
    port: env.VIGIL_WORKER_PORT,
    registry,
    // In a pod, ready once the assigned cameras are known: the operator's worker health reads this.
    ready: () => kube?.synced() ?? true,
    // Liveness: the model can still run frames (infer/model-health.ts).
    live: () => {
      const h = detector.health?.() ?? { ok: true };
      return h.ok ? undefined : `model ${h.state}: ${h.reason}`;
    },
  });
  log.info(
    { port: health.port, mode: manifests ? "manifests" : `pod ${env.POD_NAMESPACE}/${env.POD_NAME}` },
    "worker listening",
  );

  let onDisconnect: (() => void) | undefined;
  let modelLost: string | undefined;
  let probe: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve) => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => resolve());
    // Nothing in this process can run frames again: exit non-zero, which is what a kubelet's liveness restart
    // would come to (and how `vigil up`'s supervisor learns it), after LOST_DRAIN_MS in which /healthz fails
    // and each camera's stats say why (model_error).
    void detector.lost?.then((reason) => {
      modelLost = reason;
      log.fatal({ reason, exitInMs: LOST_DRAIN_MS }, "the model thread is dead; exiting");
      setTimeout(resolve, LOST_DRAIN_MS);
    });
    if (env.VIGIL_BUS === "ipc") {
      // Forked by `vigil up`, which has no kubelet: the worker is its own liveness probe. A model that stays
      // stalled (infer/model-health.ts) ends the process, and the supervisor starts a new one, as a failing
      // livenessProbe would restart the container in a pod.
      probe = setInterval(() => {
        const h = detector.health?.();
        if (!h || h.ok || h.state !== "stalled") return;
        clearInterval(probe);
        log.fatal({ reason: h.reason, exitInMs: LOST_DRAIN_MS }, "the model thread is stalled; exiting");
        // No clean stop: the pipeline would wait for frames the wedged thread never answers. Its ffmpegs are
        // told to stop, then the process goes, and the thread with it.
        setTimeout(() => {
          void pipeline.stop();
          setTimeout(() => process.exit(1), 500);
        }, LOST_DRAIN_MS);
      }, 1000);
      // Forked by `vigil up`: the parent going away (even SIGKILLed) ends the worker too.
      onDisconnect = () => resolve();
      process.once("disconnect", onDisconnect);
      if (!process.connected) resolve();
    }
  });
  if (onDisconnect) process.off("disconnect", onDisconnect);
  clearInterval(probe);
  stopListening?.();
  // Every step below is bounded on its own, but a stop that still hangs (a client waiting on a peer that is gone)
  // must not outlive the pod's 30 s grace as a silent process: past this, say which step and exit non-zero.
  let step = "start";
  const hard = setTimeout(() => {
    log.error({ step, afterMs: SHUTDOWN_LIMIT_MS }, "shutdown hung; exiting");
    process.exit(1);
  }, SHUTDOWN_LIMIT_MS);
  hard.unref();
  // First: the operator moves this worker's cameras now, while the streams below stop (not 6 s later).
  step = "lease";
  await lease?.stop();
  kube?.stop();
  step = "pipeline";
  await pipeline.stop();
  // Alarms still writing their snapshot reach the outbox, and the outbox gets a while to reach the broker.
  step = "alarm snapshots";
  await alarms.idle();
  // Tasks still encoding reach their outbox (alarm events hand theirs over once their snapshot is written).
  step = "assessment tasks";
  await assessments.idle();
  // Clips still waiting for their post-roll are cancelled (the alarm service sees no clip and says so).
  step = "clips";
  await clips?.stop();
  step = "broker outboxes";
  await Promise.all([publisher?.close(ALARM_DRAIN_MS), taskPublisher?.close(ALARM_DRAIN_MS)]);
  step = "bus";
  await bus.close();
  step = "model";
  await detector.close();
  step = "health server";
  await new Promise((r) => health.server.close(r));
  clearTimeout(hard);
  log.info("worker stopped");
  if (modelLost) process.exitCode = 1;
}

/** The pool's model.inputWidth × inputHeight, which go together (the CRD says so; a hand-set environment may not). */
function inputShapeOf(env: WorkerEnv): { inputShape?: { width: number; height: number } } {
  const width = env.VIGIL_MODEL_INPUT_WIDTH;
  const height = env.VIGIL_MODEL_INPUT_HEIGHT;
  if (width === undefined && height === undefined) return {};
  if (width === undefined || height === undefined)
    throw new Error("VIGIL_MODEL_INPUT_WIDTH and VIGIL_MODEL_INPUT_HEIGHT (model.inputWidth, inputHeight) go together");
  return { inputShape: { width, height } };
}

/**
 * RabbitMQ when RABBITMQ_URL is set; else the embedded queue file (VIGIL_ALARM_QUEUE, `vigil up`); otherwise none,
 * and cameras with spec.alarm say that alarms are off.
 */
function alarmPublisher(env: WorkerEnv, registry: Registry, log: Logger): AlarmPublisher | undefined {
  if (env.RABBITMQ_URL)
    return createAmqpAlarmPublisher({ url: env.RABBITMQ_URL, registry, log, outboxMax: env.VIGIL_ALARM_OUTBOX_MAX });
  if (env.VIGIL_ALARM_QUEUE)
    return createSqliteAlarmPublisher(env.VIGIL_ALARM_QUEUE, registry, {
      outboxLimit: env.VIGIL_ALARM_OUTBOX_MAX,
      log,
    });
  return undefined;
}

/** Of the pod's 30 s grace period: time for unconfirmed alarms to reach a broker that is up (well under 1 s). */
const ALARM_DRAIN_MS = 10_000;
/** The whole stop, under the pod's default 30 s terminationGracePeriodSeconds. */
const SHUTDOWN_LIMIT_MS = 25_000;

/** Two stats ticks (one a second per camera), so the last stats of every camera carry model_error. */
const LOST_DRAIN_MS = 2000;
