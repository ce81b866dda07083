// The alarm service under `vigil up`: `vigil alarms --manifests FILE` as a supervised child process, restarted with
// the workers' backoff (supervisor.ts) when it exits. A child rather than a part of the `vigil up` process: a crash
// there (a webhook endpoint answering something unexpected, a corrupt records file) must not take the dashboard and
// the workers with it, and the other way round; everything it works on is durable (the queue keeps each alarm until
// it is acked after its clip delivery), so a restart resumes where it stopped. Its JSON log lines carry
// `"component":"alarms"` already and pass through as they are; other lines (a stack trace) get `[alarms] `.
import { type ChildProcess, fork } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Logger } from "pino";
import type { WorkerInfo } from "../operator/api/executor.ts";
import { ROOT } from "./local-executor.ts";
import { Supervisor, type SupervisorOptions } from "./supervisor.ts";

export const ALARM_CHILD = join(ROOT, "single", "alarm-child.ts");
export const ALARM_SERVICE_NAME = "alarms";

export type LocalAlarmServiceOptions = {
  /** The manifests file (absolute): the service reads the webhook Secrets from it. */
  manifests: string;
  /** Its whole environment (alarm-layer.ts serviceAlarmEnv). */
  env: NodeJS.ProcessEnv;
  cwd: string;
  log?: Logger;
  /** Each line it prints (default: to this process's stdout/stderr). */
  output?: (line: string, stream: "stdout" | "stderr") => void;
  supervisor?: Pick<SupervisorOptions, "initialDelayMs" | "maxDelayMs" | "resetAfterMs" | "stopGraceMs" | "clock">;
};

export type LocalAlarmService = {
  start(): void;
  /** SIGTERM (the service leaves unfinished alarms unacked, in the queue), SIGKILL after the grace period. */
  stop(): Promise<void>;
  info(): Omit<WorkerInfo, "pool" | "cameras">;
  child(): ChildProcess | undefined;
};

export function createLocalAlarmService(opts: LocalAlarmServiceOptions): LocalAlarmService {
  const { log } = opts;
  const output =
    opts.output ??
    ((line: string, stream: "stdout" | "stderr") =>
      (stream === "stdout" ? process.stdout : process.stderr).write(
        `${line.startsWith("{") ? line : `[${ALARM_SERVICE_NAME}] ${line}`}\n`,
      ));
  let current: ChildProcess | undefined;
  let tail: string[] = [];

  const supervisor: Supervisor = new Supervisor({
    ...opts.supervisor,
    spawn(onExit) {
      const child = fork(ALARM_CHILD, ["--manifests", opts.manifests], {
        execArgv: [],
        env: opts.env,
        cwd: opts.cwd,
        // The IPC channel tells the child when this process is gone (alarm-child.ts).
        stdio: ["ignore", "pipe", "pipe", "ipc"],
      });
      current = child;
      tail = [];
      for (const [stream, name] of [
        [child.stdout, "stdout"],
        [child.stderr, "stderr"],
      ] as const)
        if (stream)
          createInterface({ input: stream }).on("line", (line) => {
            tail.push(line);
            if (tail.length > 20) tail.shift();
            // Running once it consumes: main.ts logs this after its probes listen, before the migrations.
            if (line.includes('"msg":"alarms listening"')) supervisor.markRunning();
            output(line, name);
          });
      child.once("exit", (code, signal) => {
        if (current === child) current = undefined;
        onExit(code, signal);
      });
      child.once("error", (err) => {
        log?.error({ err: err.message }, "alarm service could not be started");
        if (current === child) current = undefined;
        onExit(null, null);
      });
      return child;
    },
    onStart: (started, restarts) => log?.info({ pid: started.pid, restarts }, "alarm service started"),
    onExit: (exit, delayMs) =>
      log?.warn(
        { code: exit.code, signal: exit.signal, restartInMs: delayMs, output: tail.slice(-5) },
        "alarm service exited; restarting",
      ),
  });

  return {
    start: () => supervisor.start(),
    stop: () => supervisor.stop(),
    info() {
      const exit = supervisor.lastExit;
      return {
        name: ALARM_SERVICE_NAME,
        pid: supervisor.pid,
        restarts: supervisor.restarts,
        state: supervisor.state,
        lastExit: exit ? { code: exit.code, signal: exit.signal, at: new Date(exit.at).toISOString() } : undefined,
      };
    },
    child: () => current,
  };
}
