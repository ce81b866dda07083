import { describe, expect, it } from "vitest";
import { DrrScheduler, type Priority, type Scheduled } from "../../assessor/schedule/drr.ts";
import { jainIndex, SlidingCounts } from "../../assessor/schedule/fairness.ts";

let seq = 0;
const task = (
  cameraId: string,
  opts: { priority?: Priority; deadline?: number; cost?: number; id?: string } = {},
): Scheduled<null> => ({
  id: opts.id ?? `${cameraId}:${seq++}`,
  cameraId,
  priority: opts.priority ?? "normal",
  deadline: opts.deadline ?? Number.POSITIVE_INFINITY,
  ...(opts.cost !== undefined ? { cost: opts.cost } : {}),
  item: null,
});

/** Hands out everything at `now`; returns the camera ids in order. */
function order(s: DrrScheduler<null>, now = 0, max = 10_000): string[] {
  const out: string[] = [];
  for (let i = 0; i < max; i++) {
    const { task } = s.next(now);
    if (!task) break;
    out.push(task.cameraId);
  }
  return out;
}

describe("DrrScheduler", () => {
  it("alternates between cameras whatever their backlog", () => {
    const s = new DrrScheduler<null>({ maxPerCamera: 100 });
    for (let i = 0; i < 10; i++) s.push(task("a"));
    for (let i = 0; i < 2; i++) s.push(task("b"));
    s.push(task("c"));
    expect(order(s)).toEqual(["a", "b", "c", "a", "b", ...Array(8).fill("a")]);
    expect(s.size).toBe(0);
  });

  it("keeps each camera's tasks in arrival order", () => {
    const s = new DrrScheduler<null>({ maxPerCamera: 100 });
    for (let i = 0; i < 5; i++) s.push(task("a", { id: `a${i}` }));
    const ids: string[] = [];
    for (let t = s.next(0).task; t; t = s.next(0).task) ids.push(t.id);
    expect(ids).toEqual(["a0", "a1", "a2", "a3", "a4"]);
  });

  it("serves alarm tasks before any normal task, round robin among cameras", () => {
    const s = new DrrScheduler<null>({ maxPerCamera: 100 });
    for (let i = 0; i < 3; i++) s.push(task("a"));
    s.push(task("b", { priority: "alarm", id: "b-alarm1" }));
    s.push(task("b", { priority: "alarm", id: "b-alarm2" }));
    s.push(task("c", { priority: "alarm", id: "c-alarm" }));
    const ids: string[] = [];
    for (let t = s.next(0).task; t; t = s.next(0).task) ids.push(t.id);
    expect(ids.slice(0, 3)).toEqual(["b-alarm1", "c-alarm", "b-alarm2"]);
    expect(ids.slice(3).every((id) => id.startsWith("a:"))).toBe(true);
  });

  it("an alarm arriving later still goes before waiting normal tasks", () => {
    const s = new DrrScheduler<null>({ maxPerCamera: 100 });
    for (let i = 0; i < 5; i++) s.push(task("a"));
    expect(s.next(0).task?.priority).toBe("normal");
    s.push(task("z", { priority: "alarm", id: "late-alarm" }));
    expect(s.next(0).task?.id).toBe("late-alarm");
  });

  it("when a camera is full, the oldest task is dropped and reported as overflow", () => {
    const s = new DrrScheduler<null>({ maxPerCamera: 3 });
    const dropped: string[] = [];
    for (let i = 0; i < 5; i++)
      for (const d of s.push(task("a", { id: `a${i}` }))) {
        expect(d.reason).toBe("dropped-overflow");
        dropped.push(d.task.id);
      }
    s.push(task("b"));
    expect(dropped).toEqual(["a0", "a1"]);
    expect(s.sizeOf("a")).toBe(3);
    expect(s.size).toBe(4);
    const ids: string[] = [];
    for (let t = s.next(0).task; t; t = s.next(0).task) if (t.cameraId === "a") ids.push(t.id);
    expect(ids).toEqual(["a2", "a3", "a4"]);
  });

  it("a full camera drops its oldest normal task before any alarm", () => {
    const s = new DrrScheduler<null>({ maxPerCamera: 2 });
    s.push(task("a", { priority: "alarm", id: "alarm0" }));
    s.push(task("a", { id: "normal0" }));
    const d1 = s.push(task("a", { priority: "alarm", id: "alarm1" }));
    expect(d1.map((d) => d.task.id)).toEqual(["normal0"]);
    // Full of alarms: a normal task pushed now is the one dropped.
    const d2 = s.push(task("a", { id: "normal1" }));
    expect(d2.map((d) => d.task.id)).toEqual(["normal1"]);
    // A newer alarm pushes out the oldest alarm.
    const d3 = s.push(task("a", { priority: "alarm", id: "alarm2" }));
    expect(d3.map((d) => d.task.id)).toEqual(["alarm0"]);
    expect(s.size).toBe(2);
  });

  it("never hands out a task past its deadline; it is dropped as stale", () => {
    const s = new DrrScheduler<null>({ maxPerCamera: 10 });
    s.push(task("a", { id: "old", deadline: 1_000 }));
    s.push(task("a", { id: "fresh", deadline: 5_000 }));
    s.push(task("b", { id: "b-old", deadline: 999 }));
    const r = s.next(1_000);
    expect(r.task?.id).toBe("fresh");
    expect(r.dropped.map((d) => [d.reason, d.task.id])).toEqual([["dropped-stale", "old"]]);
    const r2 = s.next(1_000);
    expect(r2.task).toBeUndefined();
    expect(r2.dropped.map((d) => d.task.id)).toEqual(["b-old"]);
    expect(s.size).toBe(0);
  });

  it("a deadline exactly now counts as passed", () => {
    const s = new DrrScheduler<null>({ maxPerCamera: 10 });
    s.push(task("a", { deadline: 100 }));
    expect(s.next(99).task).toBeDefined();
    s.push(task("a", { deadline: 100 }));
    expect(s.next(100).task).toBeUndefined();
  });

  it("expire sweeps stale tasks behind a fresh head", () => {
    const s = new DrrScheduler<null>({ maxPerCamera: 10 });
    s.push(task("a", { id: "a-late", deadline: 10_000 }));
    s.push(task("a", { id: "a-early", deadline: 2_000 }));
    s.push(task("b", { id: "b-early", deadline: 1_500 }));
    const d = s.expire(3_000);
    expect(d.map((x) => x.task.id).sort()).toEqual(["a-early", "b-early"]);
    expect(s.size).toBe(1);
    expect(order(s, 3_000)).toEqual(["a"]);
  });

  it("a fake clock run: every pushed task is handed out, dropped stale or dropped overflow, exactly once", () => {
    const s = new DrrScheduler<null>({ maxPerCamera: 5 });
    const seen = new Map<string, string>();
    const note = (id: string, what: string) => {
      expect(seen.has(id), `${id} accounted twice`).toBe(false);
      seen.set(id, what);
    };
    let pushed = 0;
    // 10 cameras push one task every 100 ms each (100/s) with a 2 s deadline; 40 tasks/s are served.
    for (let now = 0; now < 20_000; now += 25) {
      if (now % 100 === 0)
        for (let c = 0; c < 10; c++) {
          pushed++;
          for (const d of s.push(task(`cam${c}`, { deadline: now + 2_000 }))) note(d.task.id, d.reason);
        }
      const r = s.next(now);
      for (const d of r.dropped) note(d.task.id, d.reason);
      if (r.task) {
        expect(r.task.deadline).toBeGreaterThan(now);
        note(r.task.id, "sent");
      }
    }
    for (const d of s.expire(Number.POSITIVE_INFINITY)) note(d.task.id, d.reason);
    expect(seen.size).toBe(pushed);
    const sent = [...seen.values()].filter((v) => v === "sent").length;
    expect(sent).toBe(800); // one per 25 ms tick over 20 s: the scheduler never idles while tasks wait
    expect([...seen.values()].filter((v) => v === "dropped-overflow").length).toBeGreaterThan(0);
    expect(s.size).toBe(0);
  });

  it("50 cameras at 2x overload get equal shares (Jain ≥ 0.99) and bounded waits", () => {
    const s = new DrrScheduler<null>({ maxPerCamera: 20 });
    const served = new Map<string, number>();
    const waits: number[] = [];
    const created = new Map<string, number>();
    // Capacity 20/s; 50 cameras each offer 0.8/s = 40/s, phase-shifted.
    for (let now = 0; now < 60_000; now += 50) {
      for (let c = 0; c < 50; c++) {
        if ((now / 50) % 25 === c % 25) {
          const t = task(`cam${c}`, { deadline: now + 30_000 });
          created.set(t.id, now);
          s.push(t);
        }
      }
      if (now % 50 === 0) {
        const { task: t } = s.next(now);
        if (t) {
          served.set(t.cameraId, (served.get(t.cameraId) ?? 0) + 1);
          waits.push(now - (created.get(t.id) as number));
        }
      }
    }
    const j = jainIndex([...Array(50).keys()].map((c) => served.get(`cam${c}`) ?? 0));
    expect(j).toBeGreaterThanOrEqual(0.99);
    // With a bound of 20 per camera at 0.4 sends per camera per second, no task waits more than ~50 s; the
    // bound (not the queue's growth) sets the wait.
    expect(Math.max(...waits)).toBeLessThanOrEqual((20 / 0.4) * 1000 + 1_250);
  });

  it("costs: a camera whose tasks cost 2 gets half as many sends", () => {
    const s = new DrrScheduler<null>({ maxPerCamera: 1000 });
    for (let i = 0; i < 100; i++) {
      s.push(task("cheap"));
      s.push(task("dear", { cost: 2 }));
    }
    const first60 = order(s, 0, 60);
    const cheap = first60.filter((c) => c === "cheap").length;
    const dear = first60.filter((c) => c === "dear").length;
    expect(cheap).toBe(40);
    expect(dear).toBe(20);
  });

  it("removeWhere takes tasks out without reporting drops, and forgets idle cameras", () => {
    const s = new DrrScheduler<null>({ maxPerCamera: 10 });
    s.push(task("a", { id: "x1" }));
    s.push(task("b", { id: "x2" }));
    s.push(task("b", { id: "keep" }));
    const removed = s.removeWhere((t) => t.id.startsWith("x"));
    expect(removed.map((t) => t.id).sort()).toEqual(["x1", "x2"]);
    expect(s.size).toBe(1);
    expect(s.sizeOf("a")).toBe(0);
    expect(order(s)).toEqual(["b"]);
    expect(s.drain()).toEqual([]);
  });

  it("rejects a bound below 1", () => {
    expect(() => new DrrScheduler<null>({ maxPerCamera: 0 })).toThrow(/maxPerCamera/);
  });
});

describe("jainIndex", () => {
  it("is 1 for equal shares, 1/n for one taking all, and in between", () => {
    expect(jainIndex([5, 5, 5, 5])).toBe(1);
    expect(jainIndex([10, 0, 0, 0])).toBe(0.25);
    expect(jainIndex([2, 1])).toBeCloseTo(0.9, 10);
    expect(jainIndex([])).toBe(1);
    expect(jainIndex([0, 0])).toBe(1);
  });
});

describe("SlidingCounts", () => {
  it("counts over the window only and forgets what left it", () => {
    const c = new SlidingCounts(10_000, 1_000);
    c.add("a", 0);
    c.add("a", 500);
    c.add("b", 5_000);
    expect(Object.fromEntries(c.counts(9_999))).toEqual({ a: 2, b: 1 });
    expect(Object.fromEntries(c.counts(11_000))).toEqual({ b: 1 });
    expect(Object.fromEntries(c.counts(20_000))).toEqual({});
  });

  it("fairness counts a camera that asked and got nothing as 0", () => {
    const c = new SlidingCounts(60_000);
    for (let i = 0; i < 10; i++) c.add("a", i * 100);
    expect(c.fairness(1_000)).toBe(1);
    expect(c.fairness(1_000, ["a", "b"])).toBe(0.5);
  });
});
