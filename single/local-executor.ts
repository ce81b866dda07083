// Workers as supervised local processes: the manifests' cameras are packed onto workers per DetectorPool with the
// operator's own placement (assignCameras, desiredReplicas), and each worker is `vigil worker --cameras FILE
// --only a,b` forked with an IPC channel (or publishing to Redis), restarted with backoff when it exits.
import { type ChildProcess, fork } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import type { Logger } from "pino";
import { stringify } from "yaml";
import type { BusFeed } from "../gateway/feed.ts";
import type { IpcFeed } from "../gateway/ipc-feed.ts";
import type { DetectorPool } from "../operator/api/detector-pool.ts";
import type { CameraControl, Executor, WorkerInfo } from "../operator/api/executor.ts";
import { MODEL_CREDENTIAL_ENV, MODEL_ENV_KEYS, modelEnv } from "../operator/api/worker-env.ts";
import { assignCameras, desiredReplicas } from "../operator/controllers/assignment.ts";
import { isHttpUrl } from "../worker/ingest/source-url.ts";
import type { LocalManifests } from "../worker/manifests.ts";
import { parseCameraId } from "../worker/publish/camera-id.ts";
import { type IpcPauseMessage, ipcPausedMessage } from "../worker/publish/ipc-bus.ts";
import { type SupervisedProcess, Supervisor, type SupervisorOptions } from "./supervisor.ts";

export const ROOT = join(import.meta.dirname, "..");
export const VIGIL_BIN = join(ROOT, "bin", "vigil.ts");
/** The model the tests use (bash hack/fixtures.sh): what a pool runs when its own model file is not on this host. */
export const FIXTURE_MODEL = join(ROOT, ".cache", "fixtures", "yolov8n.onnx");

/**
 * file:// URLs on one host: `file:///abs/path` as usual, and `file://./rel` or `file://../rel` relative to `base`
 * (the directory `vigil up` runs in). Returns an absolute file:// URL; other URLs come back unchanged.
 */
export function resolveFileUrl(url: string, base: string): string {
  if (!/^file:\/\/\.\.?\//.test(url)) return url;
  return pathToFileURL(resolve(base, decodeURIComponent(url.slice("file://".length)))).href;
}

/** A file:// URL's path (relative forms resolved against base), or undefined for other schemes. */
export function fileUrlPath(url: string, base: string): string | undefined {
  if (!url.startsWith("file://")) return undefined;
  const path = decodeURIComponent(new URL(resolveFileUrl(url, base)).pathname);
  return isAbsolute(path) ? path : resolve(base, path);
}

export type ModelChoice = {
  /** A local path, or an http(s) URL the worker downloads. */
  path: string;
  sha256?: string | undefined;
  format?: "yolov5" | "yolov8" | "yolov11" | undefined;
  inputSize?: number | undefined;
  inputWidth?: number | undefined;
  inputHeight?: number | undefined;
  classNames?: readonly string[] | undefined;
  maxBatch?: number | undefined;
  maxBatchDelayMs?: number | undefined;
  /** Why the pool's own model is not used, when it is not. */
  fallback?: string | undefined;
};

/** The pool's model when it is a file on this host or an http(s) URL, else the fixture model (and none of the
 * pool's model settings, which describe another model). */
export function resolveModel(
  pool: DetectorPool | undefined,
  base: string,
  exists: (path: string) => boolean = existsSync,
): ModelChoice {
  if (!pool) return { path: FIXTURE_MODEL, fallback: "no DetectorPool" };
  const { uri, sha256, format, inputSize, inputWidth, inputHeight, classNames, maxBatch, maxBatchDelayMs } =
    pool.spec.model;
  const settings = { sha256, format, inputSize, inputWidth, inputHeight, classNames, maxBatch, maxBatchDelayMs };
  if (isHttpUrl(uri)) return { path: uri, ...settings };
  const path = fileUrlPath(uri, base);
  if (path && exists(path)) return { path, ...settings };
  return { path: FIXTURE_MODEL, fallback: `${path ?? uri} does not exist on this host` };
}

export type WorkerPlan = { name: string; pool: string; cameras: string[] };
export type Placement = {
  pool: string;
  worker?: string | undefined;
  /** Assigned, or why not: Paused, PoolNotFound, PoolFull (as the operator's Scheduled condition says). */
  reason: "Assigned" | "Paused" | "PoolNotFound" | "PoolFull";
  message: string;
  /** When this placement took effect, if after the start (a camera stopped or started through the API): stats
   * received before it are not this placement's. */
  since?: number | undefined;
};

/**
 * Packs cameras onto workers as the operator would: per pool, desiredReplicas workers named `<pool>-<n>`, cameras
 * in file order (older first) by assignCameras. Workers left without cameras are not started (minWorkers idles
 * nothing on one host). Pure. `placePaused`: cameras with spec.paused are placed too (their worker starts them
 * paused, and they can be started through the API); without it they are left out, as the operator leaves them.
 */
export function planWorkers(
  manifests: LocalManifests,
  opts: { placePaused?: boolean } = {},
): { workers: WorkerPlan[]; placements: Map<string, Placement> } {
  const placements = new Map<string, Placement>();
  const workers: WorkerPlan[] = [];
  const pools = new Map(manifests.pools.map((p) => [p.metadata.name, p]));
  const byPool = new Map<string, string[]>();
  for (const cam of manifests.cameras) {
    const pool = cam.spec.poolRef.name;
    if (cam.spec.paused && !opts.placePaused)
      placements.set(cam.id, { pool, reason: "Paused", message: "camera is paused" });
    else if (!pools.has(pool))
      placements.set(cam.id, {
        pool,
        reason: "PoolNotFound",
        message: `DetectorPool ${pool} is not in the manifests`,
      });
    else byPool.set(pool, [...(byPool.get(pool) ?? []), cam.id]);
  }
  for (const [name, pool] of pools) {
    const cams = byPool.get(name) ?? [];
    const { camerasPerWorker, minWorkers, maxWorkers } = pool.spec;
    const replicas = desiredReplicas(cams.length, camerasPerWorker, minWorkers, maxWorkers);
    const names = Array.from({ length: replicas }, (_, i) => `${name}-${i}`);
    const result = assignCameras(
      cams.map((key, i) => ({ key, createdAt: i })),
      names.map((w) => ({ name: w, capacity: camerasPerWorker, assignable: true })),
    );
    for (const w of names) {
      const mine = cams.filter((c) => result.assigned.get(c) === w);
      if (mine.length) workers.push({ name: w, pool: name, cameras: mine });
    }
    for (const [cam, worker] of result.assigned)
      placements.set(cam, { pool: name, worker, reason: "Assigned", message: `assigned to worker ${worker}` });
    for (const cam of result.unassigned)
      placements.set(cam, {
        pool: name,
        reason: "PoolFull",
        message: `pool ${name} is full: ${maxWorkers} workers × ${camerasPerWorker} cameras`,
      });
  }
  return { workers, placements };
}

/** The cameras again as CameraDetection and Secret documents, with file:// URLs made absolute. */
export function resolvedManifests(manifests: LocalManifests, base: string): string {
  const docs: unknown[] = [];
  manifests.cameras.forEach((cam, i) => {
    const { namespace, name } = parseCameraId(cam.id);
    const secret = cam.credentials ? `credentials-${i}` : undefined;
    if (cam.credentials && secret)
      docs.push({
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: secret, namespace },
        stringData: cam.credentials,
      });
    docs.push({
      apiVersion: "vigil.dev/v1alpha1",
      kind: "CameraDetection",
      metadata: { name, namespace },
      spec: {
        ...cam.spec,
        source: {
          ...cam.spec.source,
          url: resolveFileUrl(cam.spec.source.url, base),
          credentialsSecretRef: secret ? { name: secret, usernameKey: "username", passwordKey: "password" } : undefined,
        },
      },
    });
  });
  return docs.map((d) => stringify(d)).join("---\n");
}

/** A worker's log line under `vigil up`: pino's JSON lines stay JSON with the worker's name added. */
export function tagLine(worker: string, line: string): string {
  return line.startsWith("{") && line.endsWith("}")
    ? `{"worker":${JSON.stringify(worker)},${line.slice(1)}`
    : `[${worker}] ${line}`;
}

export type LocalExecutorOptions = {
  manifests: LocalManifests;
  /** Relative file:// URLs resolve against this (default: the current directory). */
  base?: string;
  /** IPC bus: workers publish to their parent, read by this feed. Otherwise they publish to Redis at redisUrl. */
  bus: { ipc: IpcFeed } | { redisUrl: string; feed: BusFeed };
  /** The environment workers inherit (default process.env). */
  env?: NodeJS.ProcessEnv;
  log?: Logger;
  /** Each line a worker prints (default: to this process's stdout/stderr, JSON lines tagged with the worker). */
  output?: (worker: string, line: string, stream: "stdout" | "stderr") => void;
  supervisor?: Pick<SupervisorOptions, "initialDelayMs" | "maxDelayMs" | "resetAfterMs" | "stopGraceMs" | "clock">;
};

/**
 * The executor and the gateway's camera control: setPaused stops or starts one camera's pipeline inside its
 * running worker (no restart; the worker's other cameras go on), and placements() says Paused for it until it is
 * started again or `vigil up` exits. A worker restarted meanwhile starts its paused cameras paused.
 */
export type LocalExecutor = Executor &
  CameraControl & {
    /** Where each camera runs, or why not (Paused while stopped through the API). */
    placements(): Map<string, Placement>;
    /** The worker serving a camera, if any. */
    workerOf(cameraId: string): WorkerInfo | undefined;
    /** The live child process of a worker (tests, diagnostics). */
    child(worker: string): ChildProcess | undefined;
  };

/** How long setPaused waits for a running worker to confirm; past it the state still holds (and is applied when
 * the worker reads the message, or at its next start). */
const PAUSE_CONFIRM_MS = 5000;

type Proc = { plan: WorkerPlan; child?: ChildProcess | undefined; tail: string[] };
type Running = Proc & { supervisor: Supervisor };

export function createLocalExecutor(opts: LocalExecutorOptions): LocalExecutor {
  const base = opts.base ?? process.cwd();
  const { log } = opts;
  const env = opts.env ?? process.env;
  // Paused cameras get a worker too, which starts them paused: they can be started through the API.
  const { workers: plans, placements } = planWorkers(opts.manifests, { placePaused: true });
  /** Paused cameras: by the manifests (no actor) or through the API (actor: the token's name). */
  const paused = new Map<string, { actor?: string; at?: number }>();
  for (const cam of opts.manifests.cameras) if (cam.spec.paused) paused.set(cam.id, {});
  /** Cameras started through the API, and when. */
  const resumedAt = new Map<string, number>();
  const pools = new Map(opts.manifests.pools.map((p) => [p.metadata.name, p]));
  const ipc = "ipc" in opts.bus ? opts.bus.ipc : undefined;
  const feed: BusFeed = "ipc" in opts.bus ? opts.bus.ipc : opts.bus.feed;
  const running = new Map<string, Running>();
  const byCamera = new Map<string, string>();
  for (const p of plans) for (const c of p.cameras) byCamera.set(c, p.name);
  let dir: string | undefined;
  let stopped = false;

  // A worker is "running" once stats of one of its cameras arrive.
  feed.on({
    stats: (m) => {
      const w = byCamera.get(m.camera_id);
      if (w) running.get(w)?.supervisor.markRunning();
    },
  });

  const output =
    opts.output ??
    ((worker: string, line: string, stream: "stdout" | "stderr") =>
      (stream === "stdout" ? process.stdout : process.stderr).write(`${tagLine(worker, line)}\n`));

  function spawnWorker(rt: Proc, file: string, onExit: (code: number | null, signal: NodeJS.Signals | null) => void) {
    const { plan } = rt;
    const model = resolveModel(pools.get(plan.pool), base);
    const pool = pools.get(plan.pool);
    // Inherited model settings describe some other model: clear them, then set this pool's (the contract the
    // operator's StatefulSet fills too, operator/api/worker-env.ts).
    const inherited: NodeJS.ProcessEnv = { ...env };
    for (const k of [...MODEL_ENV_KEYS, "POD_NAME", "POD_NAMESPACE"]) delete inherited[k];
    const creds = model.fallback ? undefined : opts.manifests.modelCredentials?.get(plan.pool);
    const childEnv: NodeJS.ProcessEnv = {
      ...inherited,
      ...modelEnv(
        { ...model, uri: model.path },
        env.VIGIL_EXECUTION_PROVIDERS?.split(",") ?? pool?.spec.executionProviders ?? ["cpu"],
      ),
      ...(creds?.token ? { [MODEL_CREDENTIAL_ENV.token]: creds.token } : {}),
      ...(creds?.username !== undefined ? { [MODEL_CREDENTIAL_ENV.username]: creds.username } : {}),
      ...(creds?.password !== undefined ? { [MODEL_CREDENTIAL_ENV.password]: creds.password } : {}),
      // Workers share the host's cores instead of each taking all of them.
      VIGIL_THREADS: env.VIGIL_THREADS ?? String(Math.max(1, Math.floor(availableParallelism() / plans.length))),
      VIGIL_WORKER_PORT: "0",
      VIGIL_WORKER_HOST: "127.0.0.1",
      VIGIL_REALTIME_FILES: "true",
    };
    if (ipc) childEnv.VIGIL_BUS = "ipc";
    else if ("redisUrl" in opts.bus) {
      childEnv.VIGIL_BUS = "redis";
      childEnv.REDIS_URL = opts.bus.redisUrl;
    }
    const args = ["worker", "--cameras", file, "--only", plan.cameras.join(",")];
    const pausedHere = plan.cameras.filter((c) => paused.has(c));
    if (pausedHere.length) args.push("--paused", pausedHere.join(","));
    const child = fork(VIGIL_BIN, args, {
      serialization: "advanced",
      execArgv: [],
      env: childEnv,
      cwd: base,
      stdio: ["ignore", "pipe", "pipe", "ipc"],
    });
    rt.child = child;
    rt.tail = [];
    for (const [stream, name] of [
      [child.stdout, "stdout"],
      [child.stderr, "stderr"],
    ] as const)
      if (stream)
        createInterface({ input: stream }).on("line", (line) => {
          rt.tail.push(line);
          if (rt.tail.length > 20) rt.tail.shift();
          output(plan.name, line, name);
        });
    child.once("exit", (code, signal) => {
      if (rt.child === child) rt.child = undefined;
      onExit(code, signal);
    });
    child.once("error", (err) => {
      log?.error({ worker: plan.name, err: err.message }, "worker could not be started");
      if (rt.child === child) rt.child = undefined;
      onExit(null, null);
    });
    // A worker answers pauses once its model is loaded (and announces the cameras it started paused): it is up,
    // also when none of its cameras streams.
    child.on("message", (m: unknown) => {
      if ((m as { t?: unknown } | null)?.t === "paused") running.get(plan.name)?.supervisor.markRunning();
    });
    ipc?.attach(child);
    return child satisfies SupervisedProcess;
  }

  function info(rt: Running): WorkerInfo {
    const exit = rt.supervisor.lastExit;
    return {
      name: rt.plan.name,
      pool: rt.plan.pool,
      cameras: [...rt.plan.cameras],
      pid: rt.supervisor.pid,
      restarts: rt.supervisor.restarts,
      state: rt.supervisor.state,
      lastExit: exit ? { code: exit.code, signal: exit.signal, at: new Date(exit.at).toISOString() } : undefined,
    };
  }

  /** Sends a worker a pause; resolves when it confirms, exits, or PAUSE_CONFIRM_MS passed (or at once if `wait` is false). */
  function tellWorker(child: ChildProcess, camera: string, pause: boolean, wait: boolean): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        child.off("message", onMessage);
        child.off("exit", done);
        resolve();
      };
      const onMessage = (raw: unknown) => {
        if ((raw as { t?: unknown } | null)?.t !== "paused") return;
        const r = ipcPausedMessage.safeParse(raw);
        if (r.success && r.data.camera === camera && r.data.paused === pause) done();
      };
      const timer = setTimeout(() => {
        if (wait) log?.warn({ camera, paused: pause }, "the worker did not confirm the pause in time");
        done();
      }, PAUSE_CONFIRM_MS);
      child.on("message", onMessage);
      child.once("exit", done);
      try {
        child.send({ t: "pause", camera, paused: pause } satisfies IpcPauseMessage, (err) => {
          if (err) {
            log?.debug({ camera, err: err.message }, "pause not delivered (the next start applies it)");
            done();
          } else if (!wait) done();
        });
      } catch {
        done();
      }
    });
  }

  return {
    async setPaused(cameraId, pause, actor) {
      if (!placements.has(cameraId)) return "not-found";
      if (pause === paused.has(cameraId)) return "done";
      const at = Date.now();
      if (pause) {
        paused.set(cameraId, { actor, at });
        resumedAt.delete(cameraId);
      } else {
        paused.delete(cameraId);
        resumedAt.set(cameraId, at);
      }
      log?.info(
        { camera: cameraId, actor },
        pause ? "camera stopped through the API" : "camera started through the API",
      );
      const w = byCamera.get(cameraId);
      const rt = w ? running.get(w) : undefined;
      // A worker that is not up yet reads the message once its model is loaded; one in backoff starts with --paused.
      if (rt?.child?.connected) await tellWorker(rt.child, cameraId, pause, rt.supervisor.state === "running");
      return "done";
    },
    async start() {
      if (dir || stopped) return;
      for (const [name, pool] of pools) {
        if (!plans.some((p) => p.pool === name)) continue; // no cameras, no worker
        const model = resolveModel(pool, base);
        if (model.fallback)
          log?.warn(
            { pool: name, model: model.path, reason: model.fallback },
            "pool model not found; using the fixture",
          );
        if (!isHttpUrl(model.path) && !existsSync(model.path))
          throw new Error(
            `pool ${name}: model ${model.path} does not exist (bash hack/fixtures.sh fetches the fixture)`,
          );
      }
      for (const cam of opts.manifests.cameras) {
        const path = fileUrlPath(cam.spec.source.url, base);
        if (path && !existsSync(path)) log?.warn({ camera: cam.id, path }, "camera source file does not exist");
      }
      // The worker reads the same manifests, with relative file:// URLs resolved, from a private file.
      dir = mkdtempSync(join(tmpdir(), "vigil-up-"));
      const file = join(dir, "cameras.yaml");
      writeFileSync(file, resolvedManifests(opts.manifests, base), { mode: 0o600 });
      for (const plan of plans) {
        const proc: Proc = { plan, tail: [] };
        const supervisor = new Supervisor({
          ...opts.supervisor,
          spawn: (onExit) => spawnWorker(proc, file, onExit),
          onStart: (started, restarts) =>
            log?.info({ worker: plan.name, pid: started.pid, cameras: plan.cameras, restarts }, "worker started"),
          onExit: (exit, delayMs) =>
            log?.warn(
              {
                worker: plan.name,
                code: exit.code,
                signal: exit.signal,
                restartInMs: delayMs,
                output: proc.tail.slice(-5),
              },
              "worker exited; restarting",
            ),
        });
        running.set(plan.name, Object.assign(proc, { supervisor }));
        supervisor.start();
      }
    },
    async stop() {
      stopped = true;
      await Promise.all([...running.values()].map((rt) => rt.supervisor.stop()));
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
    workers: () => [...running.values()].map(info),
    placements() {
      const out = new Map<string, Placement>();
      for (const [id, p] of placements) {
        const pause = paused.get(id);
        const since = pause?.at ?? resumedAt.get(id);
        if (pause)
          out.set(id, {
            pool: p.pool,
            reason: "Paused",
            message: pause.actor ? `stopped through the API by token ${pause.actor}` : "camera is paused",
            since,
          });
        else out.set(id, since === undefined ? p : { ...p, since });
      }
      return out;
    },
    workerOf(cameraId) {
      const w = byCamera.get(cameraId);
      const rt = w ? running.get(w) : undefined;
      return rt ? info(rt) : undefined;
    },
    child: (worker) => running.get(worker)?.child,
  };
}
