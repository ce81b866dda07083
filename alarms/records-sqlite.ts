// The alarm records in an embedded node:sqlite file (`vigil up`): the same statements as MySQL (records-sql.ts).
// Several processes may open one file (the alarm service and the gateway, or two services in a test): WAL lets
// readers run beside the writer, every write transaction is BEGIN IMMEDIATE (it takes the write lock up front, so
// it waits on busy_timeout instead of failing at its first write, which a deferred transaction does under WAL),
// and synchronous=FULL makes a commit survive power loss, not only a crash: the message is acked after it.
// DatabaseSync is synchronous, so in one process the calls are queued: a transaction whose body awaits must not
// interleave with another on the same connection.
import { mkdirSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { DatabaseSync, type SQLInputValue, type StatementSync } from "node:sqlite";
import { migrateSqlite } from "./migrate.ts";
import type { AlarmRecords } from "./records.ts";
import { RecordsError } from "./records-core.ts";
import { type Row, type SqlDriver, type SqlTx, sqlRecords } from "./records-sql.ts";

/** How long a call waits for another process's write lock before it rejects (retryable). */
const BUSY_TIMEOUT_MS = 10_000;
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;

export function openSqliteRecords(path: string, opts: { busyTimeoutMs?: number } = {}): AlarmRecords {
  const file = resolve(path);
  const where = `alarm records (sqlite ${file})`;
  const wrap = (err: unknown): Error => {
    if (err instanceof RecordsError) return err;
    const e = err as { errcode?: number; message?: string };
    const busy = e.errcode === SQLITE_BUSY || e.errcode === SQLITE_LOCKED;
    return new RecordsError(`${where}: ${e.message ?? String(err)}`, busy, { cause: err });
  };
  let db: DatabaseSync;
  try {
    mkdirSync(dirname(file), { recursive: true });
    db = new DatabaseSync(file, { timeout: opts.busyTimeoutMs ?? BUSY_TIMEOUT_MS });
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = FULL");
    db.exec("PRAGMA foreign_keys = ON");
  } catch (err) {
    throw wrap(err);
  }

  const statements = new Map<string, StatementSync>();
  const prepared = (sql: string) => {
    let s = statements.get(sql);
    if (!s) {
      s = db.prepare(sql);
      statements.set(sql, s);
    }
    return s;
  };
  const conn: SqlTx = {
    all: async (sql, params = []) => prepared(sql).all(...(params as SQLInputValue[])) as Row[],
    run: async (sql, params = []) => {
      const r = prepared(sql).run(...(params as SQLInputValue[]));
      return { changes: Number(r.changes), insertId: Number(r.lastInsertRowid) };
    },
  };

  let queue: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T> | T): Promise<T> => {
    const p = queue.then(fn).catch((err) => {
      throw wrap(err);
    });
    queue = p.catch(() => {});
    return p;
  };

  const driver: SqlDriver = {
    forUpdate: "",
    greatest: "MAX",
    all: (sql, params) => serial(() => conn.all(sql, params)),
    run: (sql, params) => serial(() => conn.run(sql, params)),
    transaction: (fn) =>
      serial(async () => {
        db.exec("BEGIN IMMEDIATE");
        try {
          const r = await fn(conn);
          db.exec("COMMIT");
          return r;
        } catch (err) {
          if (db.isTransaction) db.exec("ROLLBACK");
          throw err;
        }
      }),
    migrate: () => serial(() => void migrateSqlite(db)),
    close: () =>
      serial(() => {
        if (db.isOpen) db.close();
      }),
  };
  return sqlRecords(driver);
}
