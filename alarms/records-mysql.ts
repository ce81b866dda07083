// The alarm records in MySQL or MariaDB (a cluster): a mysql2/promise pool, the statements of records-sql.ts.
// Concurrency between replicas comes from InnoDB row locks: admit reads the alarm row and the dedup key FOR UPDATE,
// so two replicas admitting the same id or key at once either wait for each other or deadlock, and InnoDB rolls
// one back (1213); that transaction is then run again from the start and sees the other's commit. Nothing else is
// retried here: with the database down every call rejects with a RecordsError naming the server (never the
// password), and the alarm service, which has not acked, tries again.
import mysql, { type Pool, type PoolConnection, type ResultSetHeader } from "mysql2/promise";
import { migrateMysql } from "./migrate.ts";
import type { AlarmRecords } from "./records.ts";
import { RecordsError } from "./records-core.ts";
import { type Row, type SqlDriver, type SqlTx, sqlRecords } from "./records-sql.ts";

/** InnoDB answers that mean "run the transaction again": deadlock, lock wait timeout, MariaDB's changed-record
 * check, and a duplicate key from a concurrent insert under READ COMMITTED. */
const RERUN = new Set(["ER_LOCK_DEADLOCK", "ER_LOCK_WAIT_TIMEOUT", "ER_CHECKREAD", "ER_DUP_ENTRY"]);
const RERUNS = 12;
/** Errors that say the server is away or busy, not that the statement is wrong. */
const AWAY = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "PROTOCOL_CONNECTION_LOST",
  "PROTOCOL_SEQUENCE_TIMEOUT",
  "ER_SERVER_SHUTDOWN",
  "ER_CON_COUNT_ERROR",
  "ER_LOCK_DEADLOCK",
  "ER_LOCK_WAIT_TIMEOUT",
]);
/** A statement running this long on a live connection means the server or network hangs: give up and reject. */
const QUERY_TIMEOUT_MS = 30_000;

type MysqlError = Error & { code?: string; fatal?: boolean; errors?: Error[] };

/** `host:port/database` of a mysql:// URL: what an error may name (never the user or password). */
export function mysqlWhere(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port || 3306}${u.pathname}`;
}

export function openMysqlRecords(url: string, opts: { connectionLimit?: number } = {}): AlarmRecords {
  const where = `alarm records (MySQL ${mysqlWhere(url)})`;
  const wrap = (err: unknown): Error => {
    if (err instanceof RecordsError) return err;
    const e = err as MysqlError;
    // A refused connection to a name with several addresses is an AggregateError with an empty message.
    const inner = e.errors?.[0] as MysqlError | undefined;
    const code = e.code ?? inner?.code;
    const text = e.message || inner?.message || String(err);
    const away = AWAY.has(code ?? "") || e.fatal === true;
    return new RecordsError(`${where}: ${away ? "unavailable: " : ""}${code ? `${code}: ` : ""}${text}`, away, {
      cause: err,
    });
  };

  const pool: Pool = mysql.createPool({
    uri: url,
    connectionLimit: opts.connectionLimit ?? 8,
    connectTimeout: 5_000,
    enableKeepAlive: true,
    // Idle connections are dropped after a minute: fewer dead sockets to find after a server restart.
    idleTimeout: 60_000,
    maxIdle: 2,
  });
  pool.on("connection", (c) => {
    // Shorter than QUERY_TIMEOUT_MS: a waiting lock answers ER_LOCK_WAIT_TIMEOUT (rerun) before the socket is cut.
    // The promise pool forwards this event with the callback-style connection, whatever its typings say.
    (c as unknown as { query(sql: string, cb: () => void): void }).query(
      "SET SESSION innodb_lock_wait_timeout = 10",
      () => {},
    );
  });

  const on = (c: Pool | PoolConnection): SqlTx => ({
    async all(sql, params = []) {
      const [rows] = await c.query({ sql, values: params, timeout: QUERY_TIMEOUT_MS });
      return rows as Row[];
    },
    async run(sql, params = []) {
      const [r] = await c.query<ResultSetHeader>({ sql, values: params, timeout: QUERY_TIMEOUT_MS });
      return { changes: r.affectedRows, insertId: Number(r.insertId) };
    },
  });
  const direct = on(pool);

  const driver: SqlDriver = {
    forUpdate: " FOR UPDATE",
    greatest: "GREATEST",
    all: (sql, params) => direct.all(sql, params).catch((err) => Promise.reject(wrap(err))),
    run: (sql, params) => direct.run(sql, params).catch((err) => Promise.reject(wrap(err))),
    async transaction(fn) {
      for (let attempt = 1; ; attempt++) {
        let conn: PoolConnection;
        try {
          conn = await pool.getConnection();
        } catch (err) {
          throw wrap(err);
        }
        let broken = false;
        try {
          await conn.beginTransaction();
          const r = await fn(on(conn));
          await conn.commit();
          return r;
        } catch (err) {
          const e = err as MysqlError;
          broken = e.fatal === true;
          if (!broken) await conn.rollback().catch(() => (broken = true));
          if (!broken && RERUN.has(e.code ?? "") && attempt < RERUNS) {
            // Jittered, growing: the racers that deadlocked should not meet again at once.
            await new Promise((r) => setTimeout(r, Math.random() * Math.min(200, 5 * 2 ** attempt)));
            continue;
          }
          throw wrap(err);
        } finally {
          if (broken) conn.destroy();
          else conn.release();
        }
      }
    },
    migrate: () =>
      migrateMysql(pool).then(
        () => {},
        (err) => Promise.reject(wrap(err)),
      ),
    close: () => pool.end(),
  };
  return sqlRecords(driver);
}
