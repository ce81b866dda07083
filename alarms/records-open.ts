// Which records backend a URL names: `mysql://user:pass@host:port/db` → MySQL/MariaDB (records-mysql.ts); a file
// path or `sqlite:PATH` → node:sqlite (records-sqlite.ts). The caller applies the migrations (`migrate()`).
import type { AlarmRecords } from "./records.ts";
import { openMysqlRecords } from "./records-mysql.ts";
import { openSqliteRecords } from "./records-sqlite.ts";

/** What a records URL opens, without opening it (and without the password, for logs). */
export function describeRecordsUrl(url: string): { kind: "mysql" | "sqlite"; where: string } {
  if (/^mysql:\/\//i.test(url)) {
    const u = new URL(url);
    return { kind: "mysql", where: `${u.hostname}:${u.port || 3306}${u.pathname}` };
  }
  if (/^sqlite:/i.test(url)) {
    const path = url.slice("sqlite:".length).replace(/^\/\/(?=\/)/, "");
    if (!path) throw new Error(`alarm records URL ${JSON.stringify(url)}: sqlite: needs a file path`);
    return { kind: "sqlite", where: path };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(url))
    throw new Error(`alarm records URL: scheme ${url.split(":")[0]}: is not mysql:// or sqlite:`);
  if (!url) throw new Error("alarm records URL: empty");
  return { kind: "sqlite", where: url };
}

export function openRecords(url: string): AlarmRecords {
  const d = describeRecordsUrl(url);
  return d.kind === "mysql" ? openMysqlRecords(url) : openSqliteRecords(d.where);
}
