// The migration runner: alarms/migrations/<dialect>/NNN_name.sql, applied in order, each once, recorded in a
// `schema_migrations` table with its checksum. Safe when several replicas start at once: MySQL serialises the
// runners with GET_LOCK (a named lock per database; DDL cannot sit in a transaction there), sqlite with one
// BEGIN IMMEDIATE transaction around every pending file (sqlite DDL is transactional, so a crash applies nothing).
// A file changed after it was applied stops the start, naming it: the schema would no longer match the code.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import type { DatabaseSync } from "node:sqlite";
import type { Pool, PoolConnection, RowDataPacket } from "mysql2/promise";

export type Dialect = "mysql" | "sqlite";
export type Migration = { version: string; sql: string; checksum: string };

const FILE = /^(\d{3})_[a-z0-9_]+\.sql$/;
/** How long a replica waits for another's migration to finish (a fresh MySQL 8 takes ~1 s for 001). */
const LOCK_WAIT_S = 120;

/** The migration files of a dialect, in version order. */
export function loadMigrations(dialect: Dialect): Migration[] {
  const dir = new URL(`./migrations/${dialect}/`, import.meta.url);
  const files = readdirSync(dir)
    .filter((f) => f.endsWith(".sql"))
    .sort();
  const seen = new Set<string>();
  return files.map((f) => {
    const m = FILE.exec(f);
    if (!m) throw new Error(`alarms/migrations/${dialect}/${f}: must be named NNN_name.sql`);
    if (seen.has(m[1] as string)) throw new Error(`alarms/migrations/${dialect}: two files numbered ${m[1]}`);
    seen.add(m[1] as string);
    const sql = readFileSync(new URL(f, dir), "utf8");
    return { version: f.slice(0, -4), sql, checksum: createHash("sha256").update(sql).digest("hex") };
  });
}

/**
 * Statements of a migration file: split at a `;` that ends a line, `--` comment lines dropped. The files are
 * ours and keep to that (no `;` at the end of a line inside a string), so no SQL parser is needed.
 */
export function splitStatements(sql: string): string[] {
  return sql
    .split("\n")
    .filter((l) => !/^\s*--/.test(l))
    .join("\n")
    .split(/;[ \t]*(?:\n|$)/)
    .map((s) => s.trim())
    .filter(Boolean);
}

function pending(all: Migration[], applied: Map<string, string>, where: string): Migration[] {
  for (const [version, checksum] of applied) {
    const m = all.find((x) => x.version === version);
    if (m && m.checksum !== checksum)
      throw new Error(`${where}: migration ${version} changed after it was applied (write a new file instead)`);
  }
  return all.filter((m) => !applied.has(m.version));
}

/** Applies the pending MySQL migrations; returns the versions it applied. */
export async function migrateMysql(pool: Pool, migrations = loadMigrations("mysql")): Promise<string[]> {
  const conn: PoolConnection = await pool.getConnection();
  const lock = "vigil-alarms-migrate";
  let locked = false;
  try {
    const [got] = await conn.query<RowDataPacket[]>("SELECT GET_LOCK(CONCAT(?, DATABASE()), ?) AS got", [
      lock,
      LOCK_WAIT_S,
    ]);
    if (Number(got[0]?.got) !== 1)
      throw new Error(`alarm records: another replica held the migration lock for ${LOCK_WAIT_S} s`);
    locked = true;
    await conn.query(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version VARCHAR(255) NOT NULL PRIMARY KEY, " +
        "checksum CHAR(64) NOT NULL, applied_ms BIGINT NOT NULL) ENGINE=InnoDB",
    );
    const [rows] = await conn.query<RowDataPacket[]>("SELECT version, checksum FROM schema_migrations");
    const todo = pending(
      migrations,
      new Map(rows.map((r) => [String(r.version), String(r.checksum)])),
      "alarm records (MySQL)",
    );
    for (const m of todo) {
      // Each statement commits on its own (MySQL DDL); the files use IF NOT EXISTS, so rerunning after a crash
      // between a table and the schema_migrations row is harmless.
      for (const stmt of splitStatements(m.sql)) await conn.query(stmt);
      await conn.query("INSERT INTO schema_migrations (version, checksum, applied_ms) VALUES (?, ?, ?)", [
        m.version,
        m.checksum,
        Date.now(),
      ]);
    }
    return todo.map((m) => m.version);
  } finally {
    if (locked) await conn.query("SELECT RELEASE_LOCK(CONCAT(?, DATABASE()))", [lock]).catch(() => {});
    conn.release();
  }
}

/** Applies the pending sqlite migrations in one transaction; returns the versions it applied. */
export function migrateSqlite(db: DatabaseSync, migrations = loadMigrations("sqlite")): string[] {
  db.exec("BEGIN IMMEDIATE");
  try {
    db.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT NOT NULL PRIMARY KEY, " +
        "checksum TEXT NOT NULL, applied_ms INTEGER NOT NULL)",
    );
    const rows = db.prepare("SELECT version, checksum FROM schema_migrations").all();
    const todo = pending(
      migrations,
      new Map(rows.map((r) => [String(r.version), String(r.checksum)])),
      `alarm records (sqlite ${db.location() ?? ":memory:"})`,
    );
    const record = db.prepare("INSERT INTO schema_migrations (version, checksum, applied_ms) VALUES (?, ?, ?)");
    for (const m of todo) {
      db.exec(m.sql);
      record.run(m.version, m.checksum, Date.now());
    }
    db.exec("COMMIT");
    return todo.map((m) => m.version);
  } catch (err) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw err;
  }
}
