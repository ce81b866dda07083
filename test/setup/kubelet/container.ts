// One container's process: spawned from the launch argv, stdout and stderr appended to its log file and kept as a
// bounded in-memory tail, its end reported as exit code or signal.
import { spawn } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { constants } from "node:os";
import { dirname } from "node:path";

export type Exit = { code: number | null; signal: number | undefined; finishedAt: Date };

/** The last `max` bytes (about) of a stream, kept as text. */
export class LogTail {
  private chunks: string[] = [];
  private size = 0;
  private readonly max: number;
  constructor(max = 64 * 1024) {
    this.max = max;
  }
  push(s: string): void {
    this.chunks.push(s);
    this.size += s.length;
    while (this.size > this.max && this.chunks.length > 1) this.size -= this.chunks.shift()?.length ?? 0;
  }
  text(): string {
    const all = this.chunks.join("");
    return all.length > this.max ? all.slice(all.length - this.max) : all;
  }
}

export type ContainerProcess = {
  pid: number;
  startedAt: Date;
  exited: Promise<Exit>;
  kill: (signal: NodeJS.Signals) => void;
  alive: () => boolean;
};

export function spawnContainer(o: {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  logFile: string;
  tail: LogTail;
}): ContainerProcess {
  mkdirSync(dirname(o.logFile), { recursive: true });
  const file = createWriteStream(o.logFile, { flags: "a", mode: 0o600 });
  const [cmd, ...args] = o.argv;
  if (!cmd) throw new Error("empty argv");
  // detached: its own process group, so that the processes it starts (ffmpeg) die with it, as a container's do
  // when its PID 1 ends; and a terminal's Ctrl-C reaches the kubelet only, which then stops its containers.
  const child = spawn(cmd, args, { env: o.env, cwd: o.cwd, stdio: ["ignore", "pipe", "pipe"], detached: true });
  const startedAt = new Date();
  let done = false;
  const onData = (buf: Buffer) => {
    file.write(buf);
    o.tail.push(buf.toString("utf8"));
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  const exited = new Promise<Exit>((resolve) => {
    // 'exit', not 'close': a child of the process that kept our pipes open would delay 'close' until it ends.
    child.once("exit", (code, signal) => {
      done = true;
      killGroup(child.pid);
      resolve({ code, signal: signal ? constants.signals[signal] : undefined, finishedAt: new Date() });
    });
    child.once("close", () => file.end());
    child.once("error", (err) => {
      // Not started at all (ENOENT for unshare): the runtime's "exit code 127" for a missing executable.
      if (child.pid === undefined) {
        done = true;
        o.tail.push(`process kubelet: ${err.message}\n`);
        file.end();
        resolve({ code: 127, signal: undefined, finishedAt: new Date() });
      }
    });
  });
  return {
    pid: child.pid ?? -1,
    startedAt,
    exited,
    kill: (signal) => {
      if (!done) child.kill(signal);
    },
    alive: () => !done,
  };
}

/** What is left of the process's group once its leader ended. */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // ESRCH: nothing left.
  }
}
