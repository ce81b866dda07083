// `vigil alarms` as a real child process for tests and benchmarks, and the test's own ends of the alarm queue:
// publishing alarm messages straight to the exchange on a confirm channel, and reading the dead-letter queue.
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import amqp, { type ChannelModel, type ConfirmChannel } from "amqplib";
import { DEAD_HEADERS } from "../../alarms/amqp-consumer.ts";
import { declareAlarmTopology } from "../../alarms/amqp-topology.ts";
import { alarmObjectKeys } from "../../alarms/clips/store.ts";
import { ALARM_TOPOLOGY, type AlarmMessage, alarmRoutingKey } from "../../alarms/messages.ts";
import { exitOf, listeningPort, metricValue, ROOT } from "./operator-env.ts";

export type AlarmServiceProc = {
  proc: ChildProcess;
  port: number;
  logs: string[];
  metrics(): Promise<string>;
  metric(name: string, labels?: string): Promise<number>;
  /** Resolves with the exit code and signal once the process is gone. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
};

/** `vigil alarms` on loopback with its health/metrics port chosen by the OS (read from its "alarms listening" line). */
export async function startAlarmService(
  env: Record<string, string>,
  args: string[] = [],
  logs: string[] = [],
): Promise<AlarmServiceProc> {
  const proc = spawn(process.execPath, [join(ROOT, "bin", "vigil.ts"), "alarms", ...args], {
    env: { ...process.env, VIGIL_ALARMS_PORT: "0", VIGIL_ALARMS_HOST: "127.0.0.1", LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let own = "";
  for (const s of [proc.stdout, proc.stderr])
    s?.on("data", (b: Buffer) => {
      logs.push(b.toString());
      own += b.toString();
    });
  const exited = exitOf(proc);
  const port = await listeningPort(proc, () => own, "alarms listening");
  const metrics = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return {
    proc,
    port,
    logs,
    metrics,
    metric: async (name, labels = "") => metricValue(await metrics(), name, labels),
    exited,
    stop: async (signal = "SIGTERM") => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** An alarm message as a worker publishes it, for camera `<namespace>/cam` and track `track`. */
export function alarmFixture(
  namespace: string,
  track: number,
  o: { eventMs?: number; pre?: number; post?: number; secret?: string | null; dedupSeconds?: number } = {},
): AlarmMessage {
  const eventMs = o.eventMs ?? Date.now();
  const id = `${namespace}/cam:entry:${track}:${eventMs}`;
  const keys = alarmObjectKeys(id);
  return {
    v: 1,
    type: "alarm",
    id,
    camera_id: `${namespace}/cam`,
    rule: "entry",
    kind: "presence",
    severity: "warning",
    track_id: track,
    zone: "door",
    box: [10, 20, 110, 220],
    timestamp: new Date(eventMs).toISOString(),
    detail: "person in door",
    snapshot_key: keys.snapshot,
    clip: { key: keys.clip, pre_seconds: o.pre ?? 1, post_seconds: o.post ?? 1 },
    dedup_window_seconds: o.dedupSeconds ?? 0,
    webhook_secret: o.secret === undefined ? "hook" : o.secret,
  };
}

export type DeadLettered = { id: string | undefined; reason: string; failedAt: string; body: string };

/** The test's connection to the broker: publish with confirms, read the dead-letter queue. */
export async function alarmQueueClient(url: string) {
  const conn: ChannelModel = await amqp.connect(url);
  const ch: ConfirmChannel = await conn.createConfirmChannel();
  await declareAlarmTopology(ch);
  const dead: DeadLettered[] = [];
  return {
    /** Publishes raw bodies (a malformed one too) routed as `cameraId`'s, persistent, and waits for the confirms. */
    async publishRaw(cameraId: string, bodies: (string | Buffer)[]): Promise<void> {
      for (const b of bodies)
        ch.publish(ALARM_TOPOLOGY.exchange, alarmRoutingKey(cameraId), Buffer.isBuffer(b) ? b : Buffer.from(b), {
          persistent: true,
          contentType: "application/json",
        });
      await ch.waitForConfirms();
    },
    async publish(...ms: AlarmMessage[]): Promise<void> {
      for (const m of ms)
        ch.publish(ALARM_TOPOLOGY.exchange, alarmRoutingKey(m.camera_id), Buffer.from(JSON.stringify(m)), {
          persistent: true,
          contentType: "application/json",
          messageId: m.id,
        });
      await ch.waitForConfirms();
    },
    /** Everything dead-lettered so far (drained from the DLQ and kept here, acked there). */
    async deadLettered(): Promise<DeadLettered[]> {
      for (;;) {
        const m = await ch.get(ALARM_TOPOLOGY.deadLetterQueue, { noAck: true });
        if (!m) break;
        const body = m.content.toString();
        let id: string | undefined;
        try {
          id = (JSON.parse(body) as { id?: string }).id;
        } catch {}
        const h = m.properties.headers ?? {};
        dead.push({
          id,
          body,
          reason: String(h[DEAD_HEADERS.reason] ?? ""),
          failedAt: String(h[DEAD_HEADERS.failedAt]),
        });
      }
      return dead;
    },
    /** Ready messages in the alarm queue (not counting those delivered and unacked). */
    async ready(): Promise<number> {
      return (await ch.checkQueue(ALARM_TOPOLOGY.queue)).messageCount;
    },
    close: () => conn.close(),
  };
}
