// The embedded durable alarm queue of `vigil up` (no broker): one node:sqlite file in WAL mode, written by the
// workers (createSqliteAlarmPublisher) and read by `vigil alarms` (createSqliteAlarmConsumer), each in its own
// process. At-least-once like the RabbitMQ pair: a consumer claims a message with a lease (a visibility timeout)
// that it renews while the handler runs, and removes it only on ack; a consumer that dies stops renewing, so its
// messages become visible again when the lease runs out. Each claim counts a delivery; past the limit a message
// goes to the dead table with the reason, as RabbitMQ's x-delivery-limit does.
import { randomUUID } from "node:crypto";
import { DatabaseSync } from "node:sqlite";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import { ALARM_TOPOLOGY, type AlarmMessage } from "./messages.ts";
import type { AlarmConsumer, AlarmPublisher, Delivery, Outcome } from "./queue.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS alarm_queue (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  alarm_id TEXT NOT NULL,
  body BLOB NOT NULL,
  enqueued_ms INTEGER NOT NULL,
  -- Claimable when visible_ms <= now; a claim moves it to now + lease.
  visible_ms INTEGER NOT NULL,
  lease TEXT,
  deliveries INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS alarm_queue_visible ON alarm_queue (visible_ms, seq);
CREATE TABLE IF NOT EXISTS alarm_dead (
  seq INTEGER PRIMARY KEY,
  alarm_id TEXT NOT NULL,
  body BLOB NOT NULL,
  reason TEXT NOT NULL,
  failed_ms INTEGER NOT NULL,
  deliveries INTEGER NOT NULL
);`;

/** Opens the queue file, creating its tables; both ends call it, whichever starts first. */
function openQueue(path: string, busyTimeoutMs: number): DatabaseSync {
  const db = new DatabaseSync(path, { timeout: busyTimeoutMs });
  db.exec("PRAGMA journal_mode = WAL");
  // FULL: a commit is on disk (WAL fsynced) before it counts as confirmed, as a RabbitMQ publisher confirm is.
  db.exec("PRAGMA synchronous = FULL");
  db.exec(SCHEMA);
  return db;
}

function metric<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/**
 * The worker's end. `publish` only appends to an in-memory outbox and returns: the insert runs on the next turn
 * of the event loop, in one transaction per batch. A writer that finds the file locked (the consumer committing)
 * tries again shortly instead of waiting, so detection never blocks on the queue.
 */
export function createSqliteAlarmPublisher(
  path: string,
  registry: Registry,
  opts: { outboxLimit?: number; log?: Logger } = {},
): AlarmPublisher {
  const limit = opts.outboxLimit ?? 10_000;
  const registers = [registry];
  const published = metric(
    registry,
    "vigil_alarms_published_total",
    () => new Counter({ name: "vigil_alarms_published_total", help: "Alarms handed to the queue", registers }),
  );
  const confirmed = metric(
    registry,
    "vigil_alarms_confirmed_total",
    () => new Counter({ name: "vigil_alarms_confirmed_total", help: "Alarms the queue confirmed durable", registers }),
  );
  const overflow = metric(
    registry,
    "vigil_alarms_outbox_overflow_total",
    () =>
      new Counter({
        name: "vigil_alarms_outbox_overflow_total",
        help: "Alarms dropped because the outbox was full",
        registers,
      }),
  );
  const outbox: AlarmMessage[] = [];
  metric(
    registry,
    "vigil_alarms_outbox",
    () =>
      new Gauge({
        name: "vigil_alarms_outbox",
        help: "Alarms waiting in the outbox for a confirm",
        registers,
        collect() {
          this.set(outbox.length);
        },
      }),
  );

  let db: DatabaseSync | undefined;
  let timer: NodeJS.Timeout | undefined;
  let scheduled = false;
  let backoffMs = 0;
  let closed = false;

  const flush = (): void => {
    scheduled = false;
    if (outbox.length === 0) return;
    try {
      // A short busy timeout: the consumer's transactions last microseconds; a longer lock means retry later.
      db ??= openQueue(path, 50);
      const insert = db.prepare(
        "INSERT INTO alarm_queue (alarm_id, body, enqueued_ms, visible_ms) VALUES (?, ?, ?, ?)",
      );
      const batch = outbox.slice(0, 500);
      const now = Date.now();
      db.exec("BEGIN IMMEDIATE");
      try {
        for (const m of batch) insert.run(m.id, Buffer.from(JSON.stringify(m)), now, now);
        db.exec("COMMIT");
      } catch (err) {
        db.exec("ROLLBACK");
        throw err;
      }
      outbox.splice(0, batch.length);
      confirmed.inc(batch.length);
      backoffMs = 0;
      if (outbox.length) schedule(0);
    } catch (err) {
      backoffMs = Math.min(5_000, Math.max(50, backoffMs * 2));
      opts.log?.warn({ err: String(err), pending: outbox.length, retryMs: backoffMs }, "alarm queue write failed");
      schedule(backoffMs);
    }
  };

  function schedule(ms: number): void {
    if (scheduled || closed) return;
    scheduled = true;
    timer = ms > 0 ? setTimeout(flush, ms) : (setImmediate(flush) as unknown as NodeJS.Timeout);
  }

  return {
    publish(m) {
      if (closed) throw new Error("alarm publisher is closed");
      if (outbox.length >= limit) {
        overflow.inc();
        return;
      }
      outbox.push(m);
      published.inc();
      schedule(backoffMs);
    },
    pending: () => outbox.length,
    async close(timeoutMs = 5_000) {
      const deadline = Date.now() + timeoutMs;
      while (outbox.length && Date.now() < deadline) {
        if (!scheduled) flush();
        await new Promise((r) => setTimeout(r, 20));
      }
      closed = true;
      clearTimeout(timer);
      db?.close();
    },
  };
}

export type SqliteConsumerOptions = {
  /** Messages handled at once. */
  prefetch?: number;
  /** How long a claim holds a message without renewal; a crashed consumer's messages return after this. */
  leaseMs?: number;
  /** Deliveries before a message goes to the dead table (RabbitMQ's x-delivery-limit). */
  deliveryLimit?: number;
  /** How often an idle consumer looks for new messages (another process writes them; no notification). */
  pollMs?: number;
  log?: Logger;
};

type Row = { seq: number; body: Uint8Array; deliveries: number; alarm_id: string };

/** The `vigil alarms` end under `vigil up`. */
export function createSqliteAlarmConsumer(path: string, opts: SqliteConsumerOptions = {}): AlarmConsumer {
  const prefetch = opts.prefetch ?? 64;
  const leaseMs = opts.leaseMs ?? 30_000;
  const limit = opts.deliveryLimit ?? ALARM_TOPOLOGY.deliveryLimit;
  const pollMs = opts.pollMs ?? 100;
  const token = randomUUID();
  const db = openQueue(path, 5_000);
  const inflight = new Map<number, Promise<void>>();
  let stopping = false;
  let poller: NodeJS.Timeout | undefined;
  let renewer: NodeJS.Timeout | undefined;

  // One UPDATE claims atomically (SQLite holds the write lock for the statement), so two consumers never
  // claim the same row.
  const claimSql = db.prepare(
    `UPDATE alarm_queue SET lease = ?, visible_ms = ?, deliveries = deliveries + 1
     WHERE seq IN (SELECT seq FROM alarm_queue WHERE visible_ms <= ? ORDER BY seq LIMIT ?)
     RETURNING seq, body, deliveries, alarm_id`,
  );
  const ackSql = db.prepare("DELETE FROM alarm_queue WHERE seq = ? AND lease = ?");
  const releaseSql = db.prepare("UPDATE alarm_queue SET lease = NULL, visible_ms = ? WHERE seq = ? AND lease = ?");
  const renewSql = db.prepare("UPDATE alarm_queue SET visible_ms = ? WHERE lease = ?");
  const deadSql = db.prepare(
    `INSERT OR REPLACE INTO alarm_dead (seq, alarm_id, body, reason, failed_ms, deliveries)
     SELECT seq, alarm_id, body, ?, ?, deliveries FROM alarm_queue WHERE seq = ? AND lease = ?`,
  );
  const countSql = db.prepare(
    "SELECT (SELECT count(*) FROM alarm_queue WHERE visible_ms <= ?) AS ready, (SELECT count(*) FROM alarm_dead) AS dead",
  );

  const toDead = (seq: number, reason: string) => {
    db.exec("BEGIN IMMEDIATE");
    try {
      deadSql.run(reason, Date.now(), seq, token);
      ackSql.run(seq, token);
      db.exec("COMMIT");
    } catch (err) {
      db.exec("ROLLBACK");
      throw err;
    }
  };

  const settle = (seq: number, o: Outcome) => {
    if (o.kind === "ack") ackSql.run(seq, token);
    else if (o.kind === "dead") toDead(seq, o.reason);
    // requeue and abandon both give it back now; abandon only happens while this consumer stops.
    else releaseSql.run(Date.now(), seq, token);
  };

  const settleSafely = (seq: number, o: Outcome) => {
    try {
      settle(seq, o);
    } catch (err) {
      // The lease runs out and the message comes back: at-least-once holds.
      opts.log?.error({ err: String(err), seq, outcome: o.kind }, "alarm queue: settling failed");
    }
  };

  const poll = (handle: (d: Delivery) => Promise<Outcome>) => {
    if (stopping) return;
    const room = prefetch - inflight.size;
    let claimed: Row[] = [];
    if (room > 0) {
      try {
        const now = Date.now();
        claimed = claimSql.all(token, now + leaseMs, now, room) as unknown as Row[];
      } catch (err) {
        opts.log?.warn({ err: String(err) }, "alarm queue: claim failed");
      }
    }
    for (const row of claimed) {
      if (row.deliveries > limit) {
        settleSafely(row.seq, { kind: "dead", reason: `delivery limit (${limit}) reached` });
        continue;
      }
      const d: Delivery = {
        body: Buffer.from(row.body),
        redelivered: row.deliveries > 1,
        deliveryCount: row.deliveries - 1,
      };
      const run = handle(d)
        .catch((err): Outcome => {
          opts.log?.error({ err: String(err), alarm: row.alarm_id }, "alarm handler failed; requeued");
          return { kind: "requeue" };
        })
        .then((o) => settleSafely(row.seq, o))
        .finally(() => inflight.delete(row.seq));
      inflight.set(row.seq, run);
    }
    // A full batch may mean more are waiting: look again at once.
    poller = setTimeout(() => poll(handle), claimed.length > 0 && claimed.length === room ? 0 : pollMs);
  };

  return {
    async start(handle) {
      renewer = setInterval(
        () => {
          try {
            renewSql.run(Date.now() + leaseMs, token);
          } catch (err) {
            opts.log?.warn({ err: String(err) }, "alarm queue: lease renewal failed");
          }
        },
        Math.max(50, Math.floor(leaseMs / 3)),
      );
      poll(handle);
    },
    async depth() {
      const r = countSql.get(Date.now()) as { ready: number; dead: number };
      return { ready: Number(r.ready), dead: Number(r.dead) };
    },
    async close() {
      stopping = true;
      clearTimeout(poller);
      await Promise.allSettled([...inflight.values()]);
      clearInterval(renewer);
      // Whatever this consumer still holds comes back now rather than after the lease.
      db.prepare("UPDATE alarm_queue SET lease = NULL, visible_ms = ? WHERE lease = ?").run(Date.now(), token);
      db.close();
    },
  };
}
