// The alarm records against real MariaDB 10.11 (Debian's mariadbd) and node:sqlite, the same cases for both:
// migrations, admit and dedup, steps and attempts, list pages, and races between separate processes.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import mysql from "mysql2/promise";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ALARM_MESSAGE_VERSION, type AlarmMessage } from "../../alarms/messages.ts";
import { loadMigrations } from "../../alarms/migrate.ts";
import type { AlarmRecords } from "../../alarms/records.ts";
import { BadFilterError, RecordsError } from "../../alarms/records-core.ts";
import { openRecords } from "../../alarms/records-open.ts";
import { type Broker, startMariaDB } from "../setup/brokers.ts";
import { ROOT } from "../setup/operator-env.ts";

const T0 = Date.parse("2026-03-01T12:00:00.000Z");
const PASSWORD = "s3cret-Pw-9";

function msg(o: { camera?: string; rule?: string; track?: number; t: number; window?: number; severity?: string }) {
  const camera = o.camera ?? "shop/entrance";
  const rule = o.rule ?? "door";
  const track = o.track ?? 1;
  const m: AlarmMessage = {
    v: ALARM_MESSAGE_VERSION,
    type: "alarm",
    id: `${camera}:${rule}:${track}:${o.t}`,
    camera_id: camera,
    rule,
    kind: "presence",
    severity: (o.severity ?? "warning") as AlarmMessage["severity"],
    track_id: track,
    zone: "door",
    box: [10, 20, 110, 220],
    timestamp: new Date(o.t).toISOString(),
    detail: "person in door",
    snapshot_key: `shop/entrance/${rule}_${track}_${o.t}.jpg`,
    clip: { key: `shop/entrance/${rule}_${track}_${o.t}.mp4`, pre_seconds: 5, post_seconds: 5 },
    dedup_window_seconds: o.window ?? 30,
    webhook_secret: "entrance-hook",
  };
  return m;
}

type ChildResult = { id: string; kind: string; of: string | null };

/** Admits `messages` from another process (records-child.ts), starting at `startAt`. */
function child(url: string, job: { migrate: boolean; startAt: number; messages: AlarmMessage[] }) {
  return new Promise<ChildResult[]>((resolve, reject) => {
    const p = spawn(process.execPath, [join(ROOT, "test/setup/records-child.ts"), url], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    p.stdout.on("data", (b) => (out += b));
    p.stderr.on("data", (b) => (err += b));
    p.on("exit", (code) =>
      code === 0 ? resolve(JSON.parse(out) as ChildResult[]) : reject(new Error(`child exited ${code}: ${err}`)),
    );
    p.stdin.end(JSON.stringify(job));
  });
}

type Backend = {
  name: string;
  /** A fresh, empty database's URL. */
  fresh(): Promise<string>;
  /** Rows of schema_migrations. */
  migrations(url: string): Promise<string[]>;
};

let maria: Broker;
let rootUrl: string;
const tmp = mkdtempSync(join(tmpdir(), "vigil-records-"));
let dbs = 0;

const mariadb: Backend = {
  name: "MariaDB",
  async fresh() {
    const name = `records_${++dbs}`;
    const c = await mysql.createConnection(rootUrl);
    await c.query(`CREATE DATABASE ${name}`);
    await c.end();
    return `mysql://vigil:${PASSWORD}@127.0.0.1:${maria.port}/${name}`;
  },
  async migrations(url) {
    const c = await mysql.createConnection(url);
    const [rows] = await c.query("SELECT version FROM schema_migrations ORDER BY version");
    await c.end();
    return (rows as { version: string }[]).map((r) => r.version);
  },
};

const sqlite: Backend = {
  name: "sqlite",
  async fresh() {
    return `sqlite:${join(tmp, `records-${++dbs}.db`)}`;
  },
  async migrations(url) {
    const db = new DatabaseSync(url.slice("sqlite:".length), { readOnly: true });
    const rows = db.prepare("SELECT version FROM schema_migrations ORDER BY version").all();
    db.close();
    return rows.map((r) => String(r.version));
  },
};

beforeAll(async () => {
  maria = await startMariaDB("vigil");
  rootUrl = maria.url;
  const c = await mysql.createConnection(rootUrl);
  // A user with a password, so the tests can check that no error or log ever carries it.
  await c.query(`CREATE USER 'vigil'@'127.0.0.1' IDENTIFIED BY '${PASSWORD}'`);
  await c.query("GRANT ALL ON *.* TO 'vigil'@'127.0.0.1'");
  await c.end();
}, 60_000);

afterAll(async () => {
  await maria?.destroy();
  rmSync(tmp, { recursive: true, force: true });
});

describe.each([mariadb, sqlite])("alarm records in $name", (backend) => {
  let url: string;
  let records: AlarmRecords;
  beforeAll(async () => {
    url = await backend.fresh();
    records = openRecords(url);
  });
  afterAll(async () => {
    await records?.close();
  });

  it("apply the migrations once, however often and from however many processes they run", async () => {
    const files = loadMigrations(backend.name === "sqlite" ? "sqlite" : "mysql").map((m) => m.version);
    const second = openRecords(url);
    await Promise.all([records.migrate(), second.migrate()]);
    await records.migrate();
    await second.close();
    expect(await backend.migrations(url)).toEqual(files);
  });

  it("admit a new alarm once: the same id again resumes, the same track within the window is a duplicate", async () => {
    const first = msg({ t: T0 });
    const a = await records.admit(first, T0 + 50);
    expect(a.kind).toBe("new");
    if (a.kind !== "new") return;
    expect(a.record).toMatchObject({ id: first.id, status: "open", event_ms: T0, received_ms: T0 + 50, duplicates: 0 });
    expect(a.record.box).toEqual([10, 20, 110, 220]);

    const again = await records.admit(first, T0 + 5000);
    expect(again).toEqual({ kind: "resumed", record: a.record });

    const later = msg({ t: T0 + 10_000 });
    expect(await records.admit(later, T0 + 10_050)).toEqual({ kind: "duplicate", of: first.id });
    // A redelivered duplicate gets the same answer and is counted once.
    expect(await records.admit(later, T0 + 20_000)).toEqual({ kind: "duplicate", of: first.id });
    expect((await records.get(first.id))?.duplicates).toBe(1);
    expect(await records.get(later.id)).toBeUndefined();

    // Another track, or another rule, is another alarm.
    expect((await records.admit(msg({ t: T0 + 10_000, track: 2 }), T0 + 10_100)).kind).toBe("new");
    expect((await records.admit(msg({ t: T0 + 10_000, rule: "loiter" }), T0 + 10_100)).kind).toBe("new");
  });

  it("start a new alarm once the holder's window has ended at the event's time", async () => {
    const holder = msg({ t: T0 + 100_000, track: 7 });
    expect((await records.admit(holder, T0 + 100_000)).kind).toBe("new");
    const after = msg({ t: T0 + 130_000, track: 7 });
    expect((await records.admit(after, T0 + 130_000)).kind).toBe("new");
    // The key moved to the newer alarm: an event inside its window folds into it.
    expect(await records.admit(msg({ t: T0 + 140_000, track: 7 }), T0 + 140_000)).toEqual({
      kind: "duplicate",
      of: after.id,
    });
    // A much older event arriving late is its own alarm and leaves the key where it is.
    expect((await records.admit(msg({ t: T0 + 10_000, track: 7 }), T0 + 150_000)).kind).toBe("new");
    expect(await records.admit(msg({ t: T0 + 150_000, track: 7 }), T0 + 150_000)).toEqual({
      kind: "duplicate",
      of: after.id,
    });
  });

  it("record each step once, every delivery attempt, the dead reason, and show them in changedSince", async () => {
    const m = msg({ t: T0 + 500_000, track: 11 });
    await records.admit(m, T0 + 500_000);
    await records.markStep(m.id, "raised_delivered", T0 + 500_100);
    await records.markStep(m.id, "raised_delivered", T0 + 500_900); // resumed: the first time stays
    const a1 = await records.startAttempt({
      alarm_id: m.id,
      type: "alarm.clip",
      webhook_id: `${m.id}.alarm.clip`,
      started_ms: T0 + 506_000,
    });
    await records.finishAttempt(a1, { finished_ms: T0 + 506_040, status_code: 500, latency_ms: 40, error: "HTTP 500" });
    const a2 = await records.startAttempt({
      alarm_id: m.id,
      type: "alarm.clip",
      webhook_id: `${m.id}.alarm.clip`,
      started_ms: T0 + 507_000,
    });
    await records.finishAttempt(a2, { finished_ms: T0 + 507_012, status_code: 200, latency_ms: 12.5, error: null });
    const a3 = await records.startAttempt({
      alarm_id: m.id,
      type: "alarm.raised",
      webhook_id: `${m.id}.alarm.raised`,
      started_ms: T0 + 507_500,
    });
    await records.markStep(m.id, "clip_ready", T0 + 506_000);
    await records.markStep(m.id, "clip_delivered", T0 + 507_012);
    await records.markStep(m.id, "completed", T0 + 507_020);

    expect(await records.get(m.id)).toMatchObject({
      raised_delivered_ms: T0 + 500_100,
      clip_ready_ms: T0 + 506_000,
      clip_delivered_ms: T0 + 507_012,
      completed_ms: T0 + 507_020,
      status: "delivered",
      // The last change (completed) came after the attempt at 507 500: each change moves updated_ms on by 1 ms.
      updated_ms: T0 + 507_503,
    });
    const attempts = await records.attempts(m.id);
    expect(attempts.map((a) => [a.id, a.type, a.status_code, a.latency_ms, a.error, a.finished_ms])).toEqual([
      [a1, "alarm.clip", 500, 40, "HTTP 500", T0 + 506_040],
      [a2, "alarm.clip", 200, 12.5, null, T0 + 507_012],
      // Unfinished (a crash mid-POST): the next send of this webhook-id is a counted repeat.
      [a3, "alarm.raised", null, null, null, null],
    ]);

    const dead = msg({ t: T0 + 600_000, track: 12 });
    await records.admit(dead, T0 + 600_000);
    await records.markDead(dead.id, "webhook: retry budget spent (last: HTTP 503)", T0 + 700_000);
    expect(await records.get(dead.id)).toMatchObject({ status: "dead", dead_reason: /retry budget/ });

    const changed = await records.changedSince(T0 + 507_000, 100);
    expect(changed.map((r) => r.id)).toEqual([m.id, dead.id]);
    expect(await records.changedSince(T0 + 700_000, 100)).toEqual([]);

    // Steps of an alarm that was never admitted are a bug: a clear, non-retryable error.
    const missing = records.markStep("shop/entrance:door:99:1", "completed", T0);
    await expect(missing).rejects.toThrow(/no record/);
    await expect(missing).rejects.toMatchObject({ retryable: false });
  });

  it("let one owner claim an alarm until its lease ends, and keep a disabled endpoint", async () => {
    const m = msg({ t: T0 + 800_000, track: 13 });
    await records.admit(m, T0 + 800_000);
    expect(await records.claim?.(m.id, "replica-a", T0, 30_000)).toBe(true);
    expect(await records.claim?.(m.id, "replica-b", T0 + 1000, 30_000)).toBe(false);
    expect(await records.claim?.(m.id, "replica-a", T0 + 2000, 30_000)).toBe(true); // renewed
    expect(await records.claim?.(m.id, "replica-b", T0 + 31_000, 30_000)).toBe(false);
    expect(await records.claim?.(m.id, "replica-b", T0 + 32_000, 30_000)).toBe(true); // a's lease ran out
    await records.release?.(m.id, "replica-b");
    expect(await records.claim?.(m.id, "replica-a", T0 + 33_000, 30_000)).toBe(true);

    expect(await records.endpointDisabled("hook-1")).toBeUndefined();
    await records.disableEndpoint("hook-1", "HTTP 410 Gone", T0);
    await records.disableEndpoint("hook-1", "HTTP 410 again", T0 + 1);
    expect(await records.endpointDisabled("hook-1")).toBe("HTTP 410 Gone");
  });

  it("list newest first in pages that join up, with camera, rule, severity and time filters", async () => {
    const list = await backend.fresh();
    const r = openRecords(list);
    await r.migrate();
    const cases = [
      { camera: "shop/entrance", rule: "door", severity: "warning", t: T0 + 1000 },
      { camera: "shop/entrance", rule: "loiter", severity: "critical", t: T0 + 2000 },
      { camera: "shop/yard", rule: "door", severity: "info", t: T0 + 2000 }, // same time: ordered by id
      { camera: "shop/yard", rule: "door", severity: "critical", t: T0 + 3000 },
      { camera: "depot/gate", rule: "door", severity: "warning", t: T0 + 4000 },
      { camera: "shop/entrance", rule: "door", severity: "critical", t: T0 + 5000, track: 2 },
      { camera: "shop/entrance", rule: "door", severity: "info", t: T0 + 6000, track: 3 },
    ];
    for (const c of cases) await r.admit(msg({ ...c, window: 0 }), c.t);
    const all = [...cases]
      .map((c) => ({ t: c.t, id: msg({ ...c }).id }))
      .sort((a, b) => b.t - a.t || (a.id < b.id ? 1 : -1))
      .map((x) => x.id);

    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const page = await r.list({ limit: 3, ...(cursor ? { cursor } : {}) });
      seen.push(...page.items.map((i) => i.id));
      cursor = page.next ?? undefined;
      pages++;
    } while (cursor);
    expect(seen).toEqual(all);
    expect(pages).toBe(3);

    const of = async (f: Parameters<AlarmRecords["list"]>[0]) =>
      (await r.list(f)).items.map((i) => `${i.camera_id} ${i.rule} ${i.severity} ${i.event_ms - T0}`);
    expect(await of({ limit: 10, camera: "shop/yard" })).toEqual([
      "shop/yard door critical 3000",
      "shop/yard door info 2000",
    ]);
    expect(await of({ limit: 10, rule: "loiter" })).toEqual(["shop/entrance loiter critical 2000"]);
    expect(await of({ limit: 10, severity: "critical", camera: "shop/entrance" })).toEqual([
      "shop/entrance door critical 5000",
      "shop/entrance loiter critical 2000",
    ]);
    expect(await of({ limit: 10, since: T0 + 2000, until: T0 + 4000 })).toEqual([
      "shop/yard door critical 3000",
      "shop/yard door info 2000",
      "shop/entrance loiter critical 2000",
    ]);
    // A filtered list pages too, and the last page says there is no next.
    const p1 = await r.list({ limit: 2, camera: "shop/entrance" });
    const p2 = await r.list({ limit: 2, camera: "shop/entrance", cursor: p1.next as string });
    expect([...p1.items, ...p2.items].map((i) => i.event_ms - T0)).toEqual([6000, 5000, 2000, 1000]);
    expect(p2.next).toBeNull();

    await expect(r.list({ limit: 3, cursor: "not-a-cursor" })).rejects.toThrow(BadFilterError);
    await expect(r.list({ limit: 0 })).rejects.toThrow(/limit/);
    await r.close();
  });

  it("admit exactly one new alarm when two processes race on the same events", async () => {
    const race = await backend.fresh();
    // 12 events of one track inside one window, each admitted by both processes at the same moment. Events of
    // now, as the service sees them (the records forget dedup keys a day after their window).
    const t = Date.now() - 10_000;
    const messages = Array.from({ length: 12 }, (_, i) => msg({ camera: "shop/race", t: t + i * 100, window: 60 }));
    const startAt = Date.now() + 1500;
    const [a, b] = await Promise.all([
      child(race, { migrate: true, startAt, messages }),
      child(race, { migrate: true, startAt, messages: [...messages].reverse() }),
    ]);
    const results = [...(a ?? []), ...(b ?? [])];
    const winners = results.filter((x) => x.kind === "new").map((x) => x.id);
    expect(winners, JSON.stringify(results)).toHaveLength(1);
    const winner = winners[0] as string;
    // The winner's other copy resumed; every other event is a duplicate of the winner, in both processes.
    expect(results.filter((x) => x.kind === "resumed").map((x) => x.id)).toEqual([winner]);
    const dups = results.filter((x) => x.kind === "duplicate");
    expect(dups).toHaveLength(22);
    expect(new Set(dups.map((x) => x.of))).toEqual(new Set([winner]));

    const r = openRecords(race);
    expect((await r.get(winner))?.duplicates).toBe(11);
    expect((await r.list({ limit: 100 })).items.map((i) => i.id)).toEqual([winner]);
    await r.close();
    expect(await backend.migrations(race)).toEqual(["001_init"]);
  });
});

describe("alarm records when MariaDB goes away", () => {
  it("keep a committed record across a crash, reject clearly while it is down, and work again once it is up", async () => {
    const url = await mariadb.fresh();
    const records = openRecords(url);
    await records.migrate();
    const m = msg({ t: T0, camera: "shop/crash" });
    const admitted = await records.admit(m, T0);
    await records.markStep(m.id, "raised_delivered", T0 + 100);

    await maria.stop("SIGKILL");
    const down = await records.admit(msg({ t: T0 + 60_000, camera: "shop/crash" }), T0 + 60_000).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(down).toBeInstanceOf(RecordsError);
    expect(down).toMatchObject({ retryable: true });
    const text = String((down as Error).message);
    expect(text).toContain(`MySQL 127.0.0.1:${maria.port}/`);
    expect(text).toMatch(/unavailable/);
    expect(text).not.toContain(PASSWORD);
    await expect(records.get(m.id)).rejects.toMatchObject({ retryable: true });

    await maria.start();
    const back = await records.get(m.id);
    expect(back).toEqual({
      ...(admitted.kind === "new" ? admitted.record : {}),
      raised_delivered_ms: T0 + 100,
      updated_ms: T0 + 100,
    });
    expect((await records.admit(msg({ t: T0 + 60_000, camera: "shop/crash" }), T0 + 60_000)).kind).toBe("new");
    await records.close();
  });
});
