// Real services for worker tests, started on loopback ports: Debian's redis-server and a GStreamer RTSP server.
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Redis } from "ioredis";
import { CHANNELS, parseMessage, type StatsMessage, statsMessage } from "../../worker/publish/messages.ts";
import { freePort, listeningPort, ROOT, waitFor } from "./operator-env.ts";

export type Service = {
  proc: ChildProcess;
  port: number;
  output: string[];
  stop: (signal?: NodeJS.Signals) => Promise<void>;
};

/**
 * Runs a server until its output matches `ready`; the port is the one given, or the one the server printed (the
 * first group of `ready`) when the OS chose it.
 */
function run(
  cmd: string,
  args: string[],
  port: number,
  ready: RegExp,
  env: Record<string, string> = {},
): Promise<Service> {
  const proc = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  const output: string[] = [];
  const exited = new Promise<void>((r) => proc.once("exit", () => r()));
  return new Promise((resolve, reject) => {
    const onData = (b: Buffer) => {
      output.push(b.toString());
      const m = ready.exec(output.join(""));
      if (!m) return;
      service.port = port || Number(m[1]);
      resolve(service);
    };
    const service: Service = {
      proc,
      port,
      output,
      stop: async (signal = "SIGTERM") => {
        if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
        await exited;
      },
    };
    proc.stdout?.on("data", onData);
    proc.stderr?.on("data", onData);
    proc.once("exit", (code) =>
      reject(new Error(`${cmd} exited (${code}) before it was ready: ${output.join("").slice(-500)}`)),
    );
  });
}

/**
 * Redis cannot be asked to choose its port (port 0 turns TCP off), so a port that was free a moment ago may be
 * taken when it binds: then it tries another. Given a port (a restart in an outage test), it retries that one.
 */
export async function startRedis(port?: number): Promise<Service> {
  for (let attempt = 0; ; attempt++) {
    const p = port ?? (await freePort());
    try {
      return await run(
        "redis-server",
        ["--port", String(p), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        p,
        /Ready to accept connections/,
      );
    } catch (err) {
      if (!/Address already in use/.test(String(err)) || attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Serves a video file at rtsp://127.0.0.1:PORT/PATH in real time, optionally behind basic auth. */
export async function startRtsp(
  video: string,
  /** loop: the file plays again and again, as a camera's stream never ends (by default it ends with the file). */
  opts: { port?: number; path?: string; auth?: string; loop?: boolean } = {},
): Promise<Service> {
  // Port 0: the server binds one the OS gives and prints it; a restart passes the port it had.
  const args = [
    join(ROOT, "hack", "rtsp", "server.py"),
    String(opts.port ?? 0),
    opts.path ?? "/cam1",
    video,
    ...(opts.auth ? [opts.auth] : []),
  ];
  return run("/usr/bin/python3", args, opts.port ?? 0, /ready (\d+)/, opts.loop ? { VIGIL_RTSP_LOOP: "1" } : {});
}

export const FIXTURES = join(ROOT, ".cache", "fixtures");

export { freePort, waitFor };

export type WorkerProc = { proc: ChildProcess; port: number; logs: string[] };
export type GatewayProc = WorkerProc & { base: string };

/**
 * A `vigil` subcommand as a real process on loopback, reading the given Redis, on ports the OS chooses: resolves
 * once its `listening` log line names its port. Its output goes to `logs` (callers may share one between processes).
 */
async function startVigil(
  sub: string,
  args: string[],
  redisPort: number,
  env: Record<string, string>,
  logs: string[],
): Promise<WorkerProc> {
  const proc = spawn(process.execPath, [join(ROOT, "bin", "vigil.ts"), sub, ...args], {
    env: { ...process.env, REDIS_URL: `redis://127.0.0.1:${redisPort}`, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let own = "";
  for (const s of [proc.stdout, proc.stderr])
    s?.on("data", (b: Buffer) => {
      logs.push(b.toString());
      own += b.toString();
    });
  return { proc, port: await listeningPort(proc, () => own, `${sub} listening`), logs };
}

/** `vigil worker`, publishing to the given Redis. */
export const startWorker = (args: string[], redisPort: number, env: Record<string, string> = {}, logs: string[] = []) =>
  startVigil("worker", args, redisPort, { VIGIL_WORKER_PORT: "0", VIGIL_WORKER_HOST: "127.0.0.1", ...env }, logs);

/**
 * `vigil gateway` (catalog from `--manifests FILE` or from the Kubernetes API at KUBECONFIG), reading the given
 * Redis. Callers wait for it to be ready.
 */
export async function startGateway(
  args: string[],
  redisPort: number,
  env: Record<string, string>,
  logs: string[] = [],
): Promise<GatewayProc> {
  const g = await startVigil(
    "gateway",
    args,
    redisPort,
    // Several gateways may run at once: the health port (default 8081) is the OS's choice too, logged as healthPort.
    { VIGIL_PORT: "0", VIGIL_HOST: "127.0.0.1", VIGIL_GATEWAY_HEALTH_PORT: "0", LOG_LEVEL: "info", ...env },
    logs,
  );
  return { ...g, base: `http://127.0.0.1:${g.port}` };
}

/**
 * The live child processes of `pid` with their command lines, from the OS process table (/proc): what a process
 * really has running, whatever it believes it stopped.
 */
export function childProcesses(pid: number): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ")".
      const [state, ppid] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (Number(ppid) !== pid || state === "Z") continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0").join(" ").trim();
      out.push({ pid: Number(entry), cmdline });
    } catch {
      // exited while we read it
    }
  }
  return out;
}

/** Every valid stats message on the Redis at `port` goes into `into`, from now on; disconnect() ends it. */
export async function subscribeStats(port: number, into: StatsMessage[]): Promise<Redis> {
  const sub = new Redis(port, "127.0.0.1");
  await sub.subscribe(CHANNELS.stats);
  sub.on("message", (_channel, raw) => {
    const r = parseMessage(statsMessage, raw);
    if (r.ok) into.push(r.value);
  });
  return sub;
}
