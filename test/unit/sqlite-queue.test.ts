// The embedded alarm queue (node:sqlite) with real files and, for the crash case, a real consumer process
// killed with SIGKILL: its lease runs out and another consumer gets the message.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Registry } from "prom-client";
import { afterEach, describe, expect, it } from "vitest";
import type { AlarmMessage } from "../../alarms/messages.ts";
import type { Delivery, Outcome } from "../../alarms/queue.ts";
import { createSqliteAlarmConsumer, createSqliteAlarmPublisher } from "../../alarms/sqlite-queue.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const queueFile = () => {
  const d = mkdtempSync(join(tmpdir(), "vigil-sqlq-"));
  dirs.push(d);
  return join(d, "queue.db");
};

const alarm = (n: number): AlarmMessage => ({
  v: 1,
  type: "alarm",
  id: `default/cam:entry:${n}:1700000000000`,
  camera_id: "default/cam",
  rule: "entry",
  kind: "presence",
  severity: "warning",
  track_id: n,
  zone: null,
  box: null,
  timestamp: "2023-11-14T22:13:20.000Z",
  detail: "",
  snapshot_key: null,
  clip: { key: `default/cam/entry_${n}_1700000000000.mp4`, pre_seconds: 1, post_seconds: 1 },
  dedup_window_seconds: 0,
  webhook_secret: null,
});

async function until<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("sqlite alarm queue", () => {
  it("delivers each published alarm once, acked ones leave, and counts what it confirmed", async () => {
    const file = queueFile();
    const registry = new Registry();
    const pub = createSqliteAlarmPublisher(file, registry);
    for (let i = 0; i < 50; i++) pub.publish(alarm(i));
    await pub.close();
    expect(pub.pending()).toBe(0);
    expect((await registry.getSingleMetricAsString("vigil_alarms_confirmed_total")).trim()).toMatch(/ 50$/);

    const seen: Delivery[] = [];
    const c = createSqliteAlarmConsumer(file, { prefetch: 8, pollMs: 20 });
    await c.start(async (d) => {
      seen.push(d);
      return { kind: "ack" };
    });
    await until(() => seen.length >= 50);
    await until(async () => (await c.depth()).ready === 0);
    expect(await c.depth()).toEqual({ ready: 0, dead: 0 });
    await c.close();
    const ids = seen.map((d) => (JSON.parse(d.body.toString()) as AlarmMessage).id);
    expect(new Set(ids).size).toBe(50);
    expect(seen.every((d) => !d.redelivered && d.deliveryCount === 0)).toBe(true);
  });

  it("requeues with a growing delivery count, and past the limit the message is dead with the reason", async () => {
    const file = queueFile();
    const pub = createSqliteAlarmPublisher(file, new Registry());
    pub.publish(alarm(1));
    pub.publish(alarm(2));
    await pub.close();
    const counts: number[] = [];
    const c = createSqliteAlarmConsumer(file, { pollMs: 10, deliveryLimit: 3 });
    await c.start(async (d): Promise<Outcome> => {
      const m = JSON.parse(d.body.toString()) as AlarmMessage;
      if (m.track_id === 2) return { kind: "dead", reason: "clip never ready" };
      counts.push(d.deliveryCount);
      return { kind: "requeue" };
    });
    await until(async () => (await c.depth()).dead === 2);
    await c.close();
    expect(counts).toEqual([0, 1, 2]);
    const db = new DatabaseSync(file);
    const dead = db.prepare("SELECT alarm_id, reason FROM alarm_dead ORDER BY alarm_id").all();
    db.close();
    expect(dead).toEqual([
      { alarm_id: alarm(1).id, reason: "delivery limit (3) reached" },
      { alarm_id: alarm(2).id, reason: "clip never ready" },
    ]);
  });

  it("a consumer killed with SIGKILL holding a message: it comes back after the lease, marked redelivered", async () => {
    const file = queueFile();
    const pub = createSqliteAlarmPublisher(file, new Registry());
    pub.publish(alarm(7));
    await pub.close();
    const mod = join(import.meta.dirname, "..", "..", "alarms", "sqlite-queue.ts");
    const script = `
      const { createSqliteAlarmConsumer } = await import(${JSON.stringify(mod)});
      const c = createSqliteAlarmConsumer(${JSON.stringify(file)}, { leaseMs: 600, pollMs: 10 });
      await c.start(() => { console.log("claimed"); return new Promise(() => {}); });`;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (b: Buffer) => {
      out += b.toString();
    });
    child.stderr.on("data", (b: Buffer) => {
      out += b.toString();
    });
    await until(() => out.includes("claimed"), 20_000).catch(() => {
      throw new Error(`child never claimed: ${out}`);
    });
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));

    const seen: Delivery[] = [];
    const c = createSqliteAlarmConsumer(file, { pollMs: 20 });
    await c.start(async (d) => {
      seen.push(d);
      return { kind: "ack" };
    });
    await until(() => seen.length === 1);
    await c.close();
    expect(seen[0]?.redelivered).toBe(true);
    expect(seen[0]?.deliveryCount).toBe(1);
  });
});
