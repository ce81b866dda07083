// Where `vigil up` keeps its alarms: the queue, the records and the clip store, each either the embedded default
// under one data directory (node:sqlite files and a clips folder) or the server its URL names (RABBITMQ_URL,
// MYSQL_URL), chosen independently. Pure: from the environment and the working directory to the paths and the
// environment each process gets; up.ts creates the directories and starts the processes.
//
// The data directory defaults to `.vigil` in the working directory rather than an XDG directory
// ($XDG_STATE_HOME/vigil): what it holds belongs to the manifests run from there (a queued alarm needs its camera's
// webhook Secret, which is in that file), so two setups in two directories must not share one queue, and
// `rm -rf .vigil` is an obvious reset. Relative file:// sources resolve against the same directory.
import { isAbsolute, join, resolve } from "node:path";
import { describeRecordsUrl } from "../alarms/records-open.ts";
import type { LocalManifests } from "../worker/manifests.ts";

export const DEFAULT_DATA_DIR = ".vigil";

export type AlarmLayer = {
  /** The data directory (absolute): embedded files, clips and the recorders' scratch space live under it. */
  dataDir: string;
  queue: { kind: "rabbitmq"; url: string } | { kind: "embedded"; path: string };
  records: { kind: "mysql"; url: string } | { kind: "embedded"; path: string };
  clipDir: string;
  /**
   * The recorders' segments. Under the data directory, so on the same filesystem as the clip store: a finished
   * clip moves into the store by rename instead of a copy.
   */
  scratchDir: string;
  /** What the records URL opens (records-open.ts): a mysql:// URL or the sqlite file. */
  recordsUrl: string;
  /** Cameras with spec.alarm: without any, no alarm service is started. */
  alarmCameras: string[];
};

const abs = (p: string, cwd: string) => (isAbsolute(p) ? p : resolve(cwd, p));

/**
 * The layer from the environment: VIGIL_DATA_DIR (default `.vigil`, relative to cwd), RABBITMQ_URL (else the
 * embedded queue file VIGIL_ALARM_QUEUE, default <data>/alarm-queue.sqlite), MYSQL_URL (else the records file
 * VIGIL_ALARMS_DB, default <data>/alarms.sqlite), VIGIL_CLIP_DIR (default <data>/clips) and VIGIL_CLIP_SCRATCH_DIR
 * (default <data>/scratch). Throws naming the variable when one is unusable.
 */
export function planAlarmLayer(env: NodeJS.ProcessEnv, cwd: string, manifests: LocalManifests): AlarmLayer {
  const set = (k: string) => {
    const v = env[k]?.trim();
    return v ? v : undefined;
  };
  const dataDir = abs(set("VIGIL_DATA_DIR") ?? DEFAULT_DATA_DIR, cwd);
  const rabbit = set("RABBITMQ_URL");
  if (rabbit && !/^amqps?:\/\//i.test(rabbit)) throw new Error("RABBITMQ_URL: must be an amqp:// or amqps:// URL");
  const mysql = set("MYSQL_URL");
  if (mysql && !/^mysql:\/\//i.test(mysql)) throw new Error("MYSQL_URL: must be a mysql:// URL");
  if (mysql) describeRecordsUrl(mysql); // throws on a URL that does not parse, before anything starts
  const recordsPath = abs(set("VIGIL_ALARMS_DB") ?? join(dataDir, "alarms.sqlite"), cwd);
  return {
    dataDir,
    queue: rabbit
      ? { kind: "rabbitmq", url: rabbit }
      : { kind: "embedded", path: abs(set("VIGIL_ALARM_QUEUE") ?? join(dataDir, "alarm-queue.sqlite"), cwd) },
    records: mysql ? { kind: "mysql", url: mysql } : { kind: "embedded", path: recordsPath },
    clipDir: abs(set("VIGIL_CLIP_DIR") ?? join(dataDir, "clips"), cwd),
    scratchDir: abs(set("VIGIL_CLIP_SCRATCH_DIR") ?? join(dataDir, "scratch"), cwd),
    recordsUrl: mysql ?? recordsPath,
    alarmCameras: manifests.cameras.filter((c) => c.spec.alarm && !c.spec.paused).map((c) => c.id),
  };
}

/** The queue both the workers and the service use: RabbitMQ's URL, or the embedded queue's file. */
function queueEnv(layer: AlarmLayer, out: NodeJS.ProcessEnv): void {
  if (layer.queue.kind === "rabbitmq") {
    out.RABBITMQ_URL = layer.queue.url;
    delete out.VIGIL_ALARM_QUEUE;
  } else {
    delete out.RABBITMQ_URL;
    out.VIGIL_ALARM_QUEUE = layer.queue.path;
  }
}

/**
 * The environment of the workers: the queue they publish to and the clip store they write snapshots and clips to.
 * Only what they need: MYSQL_URL (with its password) is not passed on.
 */
export function workerAlarmEnv(layer: AlarmLayer, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  delete out.MYSQL_URL;
  delete out.VIGIL_ALARMS_DB;
  queueEnv(layer, out);
  out.VIGIL_CLIP_DIR = layer.clipDir;
  out.VIGIL_CLIP_SCRATCH_DIR = layer.scratchDir;
  return out;
}

/**
 * The environment of the alarm service child (`vigil alarms --manifests FILE`): queue, records and clips as
 * planned; its probes and metrics on a port of the OS's choosing on loopback unless VIGIL_ALARMS_PORT /
 * VIGIL_ALARMS_HOST say otherwise (8083 on every interface is the in-cluster default, wrong for a laptop).
 */
export function serviceAlarmEnv(layer: AlarmLayer, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  delete out.KUBECONFIG; // Secrets come from the manifests file; Events go to the log
  queueEnv(layer, out);
  if (layer.records.kind === "mysql") {
    out.MYSQL_URL = layer.records.url;
    delete out.VIGIL_ALARMS_DB;
  } else {
    delete out.MYSQL_URL;
    out.VIGIL_ALARMS_DB = layer.records.path;
  }
  out.VIGIL_CLIP_DIR = layer.clipDir;
  out.VIGIL_ALARMS_PORT = env.VIGIL_ALARMS_PORT ?? "0";
  out.VIGIL_ALARMS_HOST = env.VIGIL_ALARMS_HOST ?? "127.0.0.1";
  return out;
}

/** The layer for the log: where each part is, never a password or token. */
export function describeAlarmLayer(layer: AlarmLayer): Record<string, string> {
  const where = (url: string, port: number) => {
    try {
      const u = new URL(url);
      return `${u.hostname}:${u.port || port}${u.pathname === "/" ? "" : u.pathname}`;
    } catch {
      return "<invalid url>";
    }
  };
  return {
    queue:
      layer.queue.kind === "rabbitmq" ? `rabbitmq ${where(layer.queue.url, 5672)}` : `embedded ${layer.queue.path}`,
    records:
      layer.records.kind === "mysql" ? `mysql ${where(layer.records.url, 3306)}` : `embedded ${layer.records.path}`,
    clips: layer.clipDir,
  };
}
