// `vigil up -f FILE` as a real child process, the way the single-host tests start it: Node's own binary on
// bin/vigil.ts, the OS's port (VIGIL_PORT=0), a private data directory, and none of the cluster-mode variables a
// developer's shell may carry (they would switch its edges from the embedded defaults to Redis or RabbitMQ).
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { exitOf, ROOT, waitFor } from "./operator-env.ts";

/** Variables `vigil up` reads to leave its embedded defaults; unset unless a test passes them in `env`. */
const CLUSTER_ENV = [
  "REDIS_URL",
  "RABBITMQ_URL",
  "MYSQL_URL",
  "VIGIL_ALARM_QUEUE",
  "VIGIL_ALARMS_DB",
  "VIGIL_CLIP_DIR",
  "VIGIL_API_TOKEN",
];

export type UpProc = {
  proc: ChildProcess;
  /** stdout and stderr so far, interleaved. */
  output(): string;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  startedAt: number;
  /** The dashboard's origin (`http://127.0.0.1:<port>`) and, when `vigil up` made the token, that token. */
  base: string;
  token: string | undefined;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when it has exited. */
  stop(graceMs?: number): Promise<void>;
};

export async function startUp(
  file: string,
  opts: { dataDir: string; cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number },
): Promise<UpProc> {
  const env: NodeJS.ProcessEnv = { ...process.env, VIGIL_PORT: "0", LOG_LEVEL: "info", VIGIL_DATA_DIR: opts.dataDir };
  for (const k of CLUSTER_ENV) delete env[k];
  Object.assign(env, opts.env);
  const startedAt = Date.now();
  const proc = spawn(process.execPath, [join(ROOT, "bin", "vigil.ts"), "up", "-f", file], {
    cwd: opts.cwd ?? ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const own = { stdout: "", stderr: "" };
  for (const name of ["stdout", "stderr"] as const)
    proc[name]?.on("data", (b: Buffer) => {
      out += b.toString();
      own[name] += b.toString();
    });
  const exited = exitOf(proc);
  const url = await waitFor(
    "the dashboard URL",
    async () => /vigil up: dashboard (http:\/\/127\.0\.0\.1:\d+)\/(?:\?access_token=(\S+))?/.exec(out) ?? undefined,
    opts.timeoutMs ?? 60_000,
  ).catch((err) => {
    proc.kill("SIGKILL");
    throw new Error(`${err}\n${out.slice(-4000)}`);
  });
  const running = () => proc.exitCode === null && proc.signalCode === null;
  return {
    proc,
    output: () => out,
    stdout: () => own.stdout,
    stderr: () => own.stderr,
    exited,
    startedAt,
    base: url[1]!,
    token: url[2],
    async stop(graceMs = 15_000) {
      if (!running()) return;
      proc.kill("SIGTERM");
      const killed = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(killed);
    },
  };
}
