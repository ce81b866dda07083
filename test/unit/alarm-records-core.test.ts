import { describe, expect, it } from "vitest";
import { loadMigrations, splitStatements } from "../../alarms/migrate.ts";
import { BadFilterError, decodeCursor, dedupVerdict, encodeCursor } from "../../alarms/records-core.ts";

describe("the dedup verdict", () => {
  const hold = { alarm_id: "a", event_ms: 100_000, expires_ms: 130_000 };
  const at = (id: string, eventMs: number, windowMs = 30_000) => ({ id, eventMs, windowMs });

  it("takes a free key, and folds a later event inside the holder's window into it", () => {
    expect(dedupVerdict(undefined, at("a", 100_000))).toEqual({ kind: "take" });
    expect(dedupVerdict(hold, at("b", 100_000))).toEqual({ kind: "duplicate", of: "a" });
    expect(dedupVerdict(hold, at("b", 129_999))).toEqual({ kind: "duplicate", of: "a" });
  });

  it("is a new alarm once the holder's window has ended at the event's time", () => {
    expect(dedupVerdict(hold, at("c", 130_000))).toEqual({ kind: "take" });
  });

  it("folds an older event that arrives late when the holder lies in its window, and keeps the key otherwise", () => {
    expect(dedupVerdict(hold, at("d", 80_000))).toEqual({ kind: "duplicate", of: "a" });
    // 60 s before the holder: a separate alarm, and the holder's window reaches further, so it keeps the key.
    expect(dedupVerdict(hold, at("e", 40_000))).toEqual({ kind: "keep" });
  });

  it("never dedups with a zero window, and the holder's own id takes its key again", () => {
    const zero = { alarm_id: "a", event_ms: 100_000, expires_ms: 100_000 };
    expect(dedupVerdict(zero, at("b", 100_000, 0))).toEqual({ kind: "take" });
    expect(dedupVerdict(hold, at("a", 100_000))).toEqual({ kind: "take" });
  });
});

describe("the list cursor", () => {
  it("round-trips the last item's position and refuses anything else, naming the field", () => {
    const c = encodeCursor({ event_ms: 1_700_000_000_123, id: "shop/entrance:door:3:1700000000123" });
    expect(decodeCursor(c)).toEqual({ event_ms: 1_700_000_000_123, id: "shop/entrance:door:3:1700000000123" });
    expect(() => decodeCursor("%%%")).toThrow(BadFilterError);
    expect(() => decodeCursor(Buffer.from('{"a":1}').toString("base64url"))).toThrow(/cursor/);
  });
});

describe("migration files", () => {
  it("split into statements at a line-ending semicolon, comments dropped", () => {
    expect(
      splitStatements("-- a comment; still a comment\nCREATE TABLE a (x INT);\n\nCREATE TABLE b (y INT);"),
    ).toEqual(["CREATE TABLE a (x INT)", "CREATE TABLE b (y INT)"]);
  });

  it("exist for both dialects with the same versions, in order, with their checksums", () => {
    const mysql = loadMigrations("mysql");
    const sqlite = loadMigrations("sqlite");
    expect(mysql.map((m) => m.version)).toEqual(sqlite.map((m) => m.version));
    expect(mysql[0]?.version).toBe("001_init");
    expect(mysql[0]?.checksum).toMatch(/^[0-9a-f]{64}$/);
    // Every MySQL statement is idempotent on its own (its DDL commits per statement).
    for (const m of mysql) for (const s of splitStatements(m.sql)) expect(s).toMatch(/^CREATE TABLE IF NOT EXISTS /);
  });
});
