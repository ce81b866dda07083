// Real RabbitMQ and MariaDB from Debian's packages for the alarm tests, each a plain process on loopback ports
// with a temporary data directory (no systemd, no shared state between tests). Neither can be asked to choose
// its own port, so a port free a moment ago may be taken when it binds: then they try another.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import amqp from "amqplib";
import mysql from "mysql2/promise";
import { freePort } from "./operator-env.ts";

export type Broker = {
  url: string;
  port: number;
  /** Stops the process (SIGTERM, or SIGKILL for a crash) and keeps its data, for `start` to bring it back. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  /** Stops it and removes its data. */
  destroy(): Promise<void>;
  output: string[];
};

function exitOf(proc: ChildProcess): Promise<void> {
  return proc.exitCode !== null || proc.signalCode !== null
    ? Promise.resolve()
    : new Promise((r) => proc.once("exit", () => r()));
}

async function until(what: string, ok: () => Promise<boolean>, proc: ChildProcess, output: string[], ms: number) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null)
      throw new Error(`${what} exited (${proc.exitCode ?? proc.signalCode}): ${output.join("").slice(-800)}`);
    if (await ok().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready after ${ms} ms: ${output.join("").slice(-800)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function killGroup(pid: number, signal: NodeJS.Signals) {
  try {
    process.kill(-pid, signal);
  } catch {}
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

function capture(proc: ChildProcess, output: string[]) {
  const keep = (b: Buffer) => {
    output.push(b.toString());
    if (output.length > 400) output.splice(0, 200);
  };
  proc.stdout?.on("data", keep);
  proc.stderr?.on("data", keep);
}

/**
 * RabbitMQ 3.10 (Debian) as a plain process: its own node name, AMQP, distribution and epmd ports, and a
 * temporary HOME (the Erlang cookie), mnesia and log directory. Ready when an AMQP connection opens (~5 s).
 */
export async function startRabbitMQ(): Promise<Broker & { ctl(...args: string[]): string }> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-rabbitmq-"));
  writeFileSync(join(dir, "enabled_plugins"), "[].\n");
  writeFileSync(join(dir, "rabbitmq.conf"), "loopback_users.guest = true\n");
  const output: string[] = [];
  let proc: ChildProcess | undefined;
  let env: NodeJS.ProcessEnv = {};
  let port = 0;
  const node = `vigil-${process.pid}-${Math.random().toString(36).slice(2, 8)}@localhost`;

  const launch = async () => {
    // Its own process group: the script's beam.smp child dies with it, SIGKILL included.
    proc = spawn("/usr/lib/rabbitmq/bin/rabbitmq-server", [], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    capture(proc, output);
    const url = `amqp://guest:guest@127.0.0.1:${port}`;
    await until(
      "rabbitmq-server",
      async () => {
        const conn = await amqp.connect(url, { timeout: 1000 });
        await conn.close();
        return true;
      },
      proc,
      output,
      60_000,
    );
  };

  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    env = {
      PATH: process.env.PATH,
      HOME: dir,
      RABBITMQ_NODENAME: node,
      RABBITMQ_NODE_PORT: String(port),
      RABBITMQ_NODE_IP_ADDRESS: "127.0.0.1",
      RABBITMQ_DIST_PORT: String(await freePort()),
      ERL_EPMD_PORT: String(await freePort()),
      ERL_EPMD_ADDRESS: "127.0.0.1",
      RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
      RABBITMQ_LOG_BASE: join(dir, "log"),
      RABBITMQ_CONFIG_FILE: join(dir, "rabbitmq"),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, "enabled_plugins"),
      RABBITMQ_PID_FILE: join(dir, "pid"),
    };
    try {
      await launch();
      break;
    } catch (err) {
      if (proc?.pid) killGroup(proc.pid, "SIGKILL");
      if (!/eaddrinuse|address already in use/i.test(String(err)) || attempt >= 5) throw err;
    }
  }

  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (!proc?.pid) return;
    const p = proc;
    proc = undefined;
    killGroup(p.pid as number, signal);
    await exitOf(p);
    // beam.smp may outlive the script by a moment; wait until the group is gone, so a restart can bind.
    for (let i = 0; i < 100 && groupAlive(p.pid as number); i++) await new Promise((r) => setTimeout(r, 100));
  };
  return {
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    port,
    output,
    stop,
    start: launch,
    /** rabbitmqctl against this node (e.g. `list_queues name messages_unacknowledged`); throws on failure. */
    ctl(...args: string[]) {
      const r = spawnSync("/usr/lib/rabbitmq/bin/rabbitmqctl", ["-n", node, "-q", ...args], { env, encoding: "utf8" });
      if (r.status !== 0) throw new Error(`rabbitmqctl ${args.join(" ")}: ${r.stderr || r.stdout}`);
      return r.stdout;
    },
    async destroy() {
      await stop("SIGKILL");
      // The epmd daemon the node started outlives it; stop it by its port.
      spawnSync("epmd", ["-kill"], { env, stdio: "ignore" });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * MariaDB 10.11 (Debian): mariadb-install-db into a temporary datadir, then mariadbd on a loopback port as the
 * current user, root with no password (local tests only). Ready when a query answers (~1 s).
 */
export async function startMariaDB(database = "vigil"): Promise<Broker> {
  const dir = mkdtempSync(join(tmpdir(), "vigil-mariadb-"));
  const data = join(dir, "data");
  mkdirSync(data);
  const user = process.getuid?.() === 0 ? "root" : (process.env.USER ?? "root");
  const init = spawnSync(
    "mariadb-install-db",
    [`--datadir=${data}`, `--user=${user}`, "--auth-root-authentication-method=normal", "--skip-test-db"],
    { encoding: "utf8" },
  );
  if (init.status !== 0) throw new Error(`mariadb-install-db failed: ${init.stderr || init.stdout}`);
  const output: string[] = [];
  let proc: ChildProcess | undefined;
  let port = 0;

  const launch = async () => {
    proc = spawn(
      "mariadbd",
      [
        "--no-defaults",
        `--datadir=${data}`,
        `--port=${port}`,
        "--bind-address=127.0.0.1",
        `--socket=${join(dir, "s.sock")}`,
        `--pid-file=${join(dir, "pid")}`,
        `--user=${user}`,
        "--innodb-buffer-pool-size=32M",
        "--skip-log-bin",
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    capture(proc, output);
    await until(
      "mariadbd",
      async () => {
        const c = await mysql.createConnection({ host: "127.0.0.1", port, user: "root", connectTimeout: 1000 });
        await c.query(`CREATE DATABASE IF NOT EXISTS \`${database}\``);
        await c.end();
        return true;
      },
      proc,
      output,
      30_000,
    );
  };

  for (let attempt = 0; ; attempt++) {
    port = await freePort();
    try {
      await launch();
      break;
    } catch (err) {
      if (proc) proc.kill("SIGKILL");
      if (!/already in use|Can't start server/i.test(String(err)) || attempt >= 5) throw err;
    }
  }
  const stop = async (signal: NodeJS.Signals = "SIGTERM") => {
    if (!proc) return;
    const p = proc;
    proc = undefined;
    p.kill(signal);
    await exitOf(p);
  };
  return {
    url: `mysql://root@127.0.0.1:${port}/${database}`,
    port,
    output,
    stop,
    start: launch,
    async destroy() {
      await stop("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
