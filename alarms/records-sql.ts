// AlarmRecords written once over a small SQL driver, so MySQL (records-mysql.ts) and node:sqlite
// (records-sqlite.ts) run the same statements and pass the same tests. The drivers own what differs: connections,
// transactions (MySQL row locks with deadlock retry; sqlite BEGIN IMMEDIATE), migrations and error wording.
// Every statement here is plain SQL both dialects accept; the two spellings that differ come from the driver.
import { dedupKey } from "./messages.ts";
import type { AdmitResult, AlarmFilter, AlarmRecords, AlarmStep, DeliveryAttempt } from "./records.ts";
import {
  BadFilterError,
  decodeCursor,
  dedupVerdict,
  encodeCursor,
  numOrNull,
  RECORD_COLUMNS,
  RecordsError,
  recordFromRow,
  recordOf,
  rowValues,
  strOrNull,
} from "./records-core.ts";

export type Row = Record<string, unknown>;

export interface SqlTx {
  all(sql: string, params?: unknown[]): Promise<Row[]>;
  /** `changes`: rows matched (MySQL's FOUND_ROWS, sqlite's changes); `insertId` of an auto-increment insert. */
  run(sql: string, params?: unknown[]): Promise<{ changes: number; insertId: number }>;
}

export interface SqlDriver extends SqlTx {
  /** Appended to a SELECT inside a transaction to lock what it read (MySQL); "" where the transaction already
   * holds the database's write lock (sqlite BEGIN IMMEDIATE). */
  readonly forUpdate: string;
  /** The two-argument maximum: GREATEST (MySQL), MAX (sqlite). */
  readonly greatest: string;
  /** Runs `fn` in one transaction, committed when it resolves; retried whole on a deadlock or a lost race. */
  transaction<T>(fn: (tx: SqlTx) => Promise<T>): Promise<T>;
  migrate(): Promise<void>;
  close(): Promise<void>;
}

const STEP_COLUMN: Record<AlarmStep, string> = {
  raised_delivered: "raised_delivered_ms",
  clip_ready: "clip_ready_ms",
  clip_delivered: "clip_delivered_ms",
  completed: "completed_ms",
};

/** Largest page a list call returns. */
export const MAX_PAGE = 1000;
/** Dedup keys whose window ended this long ago are purged (a later event that old is not folded any more). */
const DEDUP_KEEP_MS = 24 * 3600_000;
const PURGE_EVERY_MS = 60_000;

const INSERT_ALARM = `INSERT INTO alarms (${RECORD_COLUMNS.join(", ")}) VALUES (${RECORD_COLUMNS.map(() => "?").join(", ")})`;

function attemptOf(row: Row): DeliveryAttempt {
  return {
    id: Number(row.id),
    alarm_id: String(row.alarm_id),
    type: String(row.type) as DeliveryAttempt["type"],
    webhook_id: String(row.webhook_id),
    started_ms: Number(row.started_ms),
    finished_ms: numOrNull(row.finished_ms),
    status_code: numOrNull(row.status_code),
    latency_ms: numOrNull(row.latency_ms),
    error: strOrNull(row.error),
  };
}

export function sqlRecords(d: SqlDriver): AlarmRecords {
  // Every change moves updated_ms forward, by 1 ms at least (two changes in one ms, or a replica whose clock is
  // behind): changedSince then sees each change as a later updated_ms, and the gateway's live feed misses none.
  const bump = `updated_ms = ${d.greatest}(updated_ms + 1, ?)`;
  let lastPurge = 0;

  const mustExist = async (tx: SqlTx, id: string, changes: number) => {
    if (changes > 0) return;
    const [row] = await tx.all("SELECT id FROM alarms WHERE id = ?", [id]);
    if (!row) throw new RecordsError(`alarm ${JSON.stringify(id)}: no record (admit it first)`, false);
  };

  return {
    migrate: () => d.migrate(),

    async admit(m, nowMs): Promise<AdmitResult> {
      const rec = recordOf(m, nowMs);
      const key = dedupKey(m);
      const windowMs = Math.round(m.dedup_window_seconds * 1000);
      const result = await d.transaction(async (tx): Promise<AdmitResult> => {
        const [own] = await tx.all(`SELECT * FROM alarms WHERE id = ?${d.forUpdate}`, [m.id]);
        if (own) return { kind: "resumed", record: recordFromRow(own) };
        const [folded] = await tx.all("SELECT of_id FROM alarm_duplicates WHERE id = ?", [m.id]);
        if (folded) return { kind: "duplicate", of: String(folded.of_id) };
        const [held] = await tx.all(
          `SELECT alarm_id, event_ms, expires_ms FROM alarm_dedup WHERE dedup_key = ?${d.forUpdate}`,
          [key],
        );
        const verdict = dedupVerdict(
          held && {
            alarm_id: String(held.alarm_id),
            event_ms: Number(held.event_ms),
            expires_ms: Number(held.expires_ms),
          },
          { id: m.id, eventMs: rec.event_ms, windowMs },
        );
        if (verdict.kind === "duplicate") {
          await tx.run("INSERT INTO alarm_duplicates (id, of_id, event_ms, received_ms) VALUES (?, ?, ?, ?)", [
            m.id,
            verdict.of,
            rec.event_ms,
            nowMs,
          ]);
          await tx.run(`UPDATE alarms SET duplicates = duplicates + 1, ${bump} WHERE id = ?`, [nowMs, verdict.of]);
          return verdict;
        }
        await tx.run(INSERT_ALARM, rowValues(rec));
        if (verdict.kind === "take") {
          const hold = [m.id, rec.event_ms, rec.event_ms + windowMs, key];
          if (held)
            await tx.run("UPDATE alarm_dedup SET alarm_id = ?, event_ms = ?, expires_ms = ? WHERE dedup_key = ?", hold);
          else
            await tx.run(
              "INSERT INTO alarm_dedup (alarm_id, event_ms, expires_ms, dedup_key) VALUES (?, ?, ?, ?)",
              hold,
            );
        }
        return { kind: "new", record: rec };
      });
      if (result.kind === "new" && nowMs - lastPurge > PURGE_EVERY_MS) {
        lastPurge = nowMs;
        // Its own short statement after the commit: a best-effort sweep, never part of the admit's locks.
        await d.run("DELETE FROM alarm_dedup WHERE expires_ms < ?", [nowMs - DEDUP_KEEP_MS]).catch(() => {});
      }
      return result;
    },

    async markStep(id, step, atMs) {
      const col = STEP_COLUMN[step];
      const status =
        step === "completed" ? ", status = CASE WHEN status = 'open' THEN 'delivered' ELSE status END" : "";
      await d.transaction(async (tx) => {
        // COALESCE keeps the first time a step was done: a resumed alarm marking it again changes nothing.
        const r = await tx.run(`UPDATE alarms SET ${col} = COALESCE(${col}, ?)${status}, ${bump} WHERE id = ?`, [
          atMs,
          atMs,
          id,
        ]);
        await mustExist(tx, id, r.changes);
      });
    },

    async markDead(id, reason, atMs) {
      await d.transaction(async (tx) => {
        const r = await tx.run(`UPDATE alarms SET status = 'dead', dead_reason = ?, ${bump} WHERE id = ?`, [
          reason,
          atMs,
          id,
        ]);
        await mustExist(tx, id, r.changes);
      });
    },

    async startAttempt(a) {
      return d.transaction(async (tx) => {
        const r = await tx.run(`UPDATE alarms SET ${bump} WHERE id = ?`, [a.started_ms, a.alarm_id]);
        await mustExist(tx, a.alarm_id, r.changes);
        const ins = await tx.run(
          "INSERT INTO alarm_deliveries (alarm_id, type, webhook_id, started_ms) VALUES (?, ?, ?, ?)",
          [a.alarm_id, a.type, a.webhook_id, a.started_ms],
        );
        return ins.insertId;
      });
    },

    async finishAttempt(attemptId, r) {
      await d.transaction(async (tx) => {
        const u = await tx.run(
          "UPDATE alarm_deliveries SET finished_ms = ?, status_code = ?, latency_ms = ?, error = ? WHERE id = ?",
          [r.finished_ms, r.status_code, r.latency_ms, r.error, attemptId],
        );
        if (u.changes === 0) throw new RecordsError(`delivery attempt ${attemptId}: no record`, false);
        // The alarm changes too (its delivery status), so the live feed (changedSince) shows the attempt.
        await tx.run(`UPDATE alarms SET ${bump} WHERE id = (SELECT alarm_id FROM alarm_deliveries WHERE id = ?)`, [
          r.finished_ms,
          attemptId,
        ]);
      });
    },

    async get(id) {
      const [row] = await d.all("SELECT * FROM alarms WHERE id = ?", [id]);
      return row ? recordFromRow(row) : undefined;
    },

    async attempts(alarmId) {
      const rows = await d.all("SELECT * FROM alarm_deliveries WHERE alarm_id = ? ORDER BY id", [alarmId]);
      return rows.map(attemptOf);
    },

    async list(f: AlarmFilter) {
      if (!Number.isInteger(f.limit) || f.limit < 1 || f.limit > MAX_PAGE)
        throw new BadFilterError(`limit: must be an integer from 1 to ${MAX_PAGE}`);
      const where: string[] = [];
      const params: unknown[] = [];
      const eq = (col: string, v: unknown) => {
        where.push(`${col} = ?`);
        params.push(v);
      };
      if (f.camera !== undefined) eq("camera_id", f.camera);
      if (f.rule !== undefined) eq("rule", f.rule);
      if (f.severity !== undefined) eq("severity", f.severity);
      if (f.since !== undefined) {
        where.push("event_ms >= ?");
        params.push(f.since);
      }
      if (f.until !== undefined) {
        where.push("event_ms < ?");
        params.push(f.until);
      }
      if (f.cursor !== undefined) {
        const c = decodeCursor(f.cursor);
        where.push("(event_ms < ? OR (event_ms = ? AND id < ?))");
        params.push(c.event_ms, c.event_ms, c.id);
      }
      const rows = await d.all(
        `SELECT * FROM alarms${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ` +
          "ORDER BY event_ms DESC, id DESC LIMIT ?",
        [...params, f.limit + 1],
      );
      const items = rows.slice(0, f.limit).map(recordFromRow);
      const last = items.at(-1);
      return { items, next: rows.length > f.limit && last ? encodeCursor(last) : null };
    },

    async changedSince(sinceMs, limit) {
      const rows = await d.all("SELECT * FROM alarms WHERE updated_ms > ? ORDER BY updated_ms, id LIMIT ?", [
        sinceMs,
        Math.max(1, Math.min(MAX_PAGE, Math.floor(limit))),
      ]);
      return rows.map(recordFromRow);
    },

    async disableEndpoint(key, reason, atMs) {
      await d.transaction(async (tx) => {
        // The first 410 is the one to keep (when and why it was disabled); later ones change nothing.
        const [row] = await tx.all(`SELECT endpoint_key FROM endpoints_disabled WHERE endpoint_key = ?${d.forUpdate}`, [
          key,
        ]);
        if (!row)
          await tx.run("INSERT INTO endpoints_disabled (endpoint_key, reason, disabled_ms) VALUES (?, ?, ?)", [
            key,
            reason,
            atMs,
          ]);
      });
    },

    async endpointDisabled(key) {
      const [row] = await d.all("SELECT reason FROM endpoints_disabled WHERE endpoint_key = ?", [key]);
      return row ? String(row.reason) : undefined;
    },

    async claim(id, owner, nowMs, leaseMs) {
      return d.transaction(async (tx) => {
        const r = await tx.run(
          "UPDATE alarms SET owner = ?, lease_until_ms = ? WHERE id = ? " +
            "AND (owner IS NULL OR owner = ? OR lease_until_ms IS NULL OR lease_until_ms <= ?)",
          [owner, nowMs + leaseMs, id, owner, nowMs],
        );
        if (r.changes > 0) return true;
        await mustExist(tx, id, 0);
        return false;
      });
    },

    async release(id, owner) {
      await d.run("UPDATE alarms SET owner = NULL, lease_until_ms = NULL WHERE id = ? AND owner = ?", [id, owner]);
    },

    close: () => d.close(),
  };
}
