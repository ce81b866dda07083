// The single-host supervisor's restart policy on a fake clock and fake processes: exponential backoff from 1 s,
// capped at 30 s, reset after a minute of uptime, and no restart once stopped.
import { describe, expect, it } from "vitest";
import { type Clock, type Spawner, Supervisor } from "../../single/supervisor.ts";

type Timer = { at: number; fn: () => void; id: number };

function fakeClock() {
  let now = 0;
  let seq = 0;
  let timers: Timer[] = [];
  const clock: Clock = {
    now: () => now,
    setTimeout: (fn, ms) => {
      const t = { at: now + ms, fn, id: ++seq };
      timers.push(t);
      return t.id;
    },
    clearTimeout: (id) => {
      timers = timers.filter((t) => t.id !== id);
    },
  };
  return {
    clock,
    /** Moves time forward, firing due timers in order. */
    advance(ms: number) {
      const end = now + ms;
      for (;;) {
        const next = timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.id - b.id)[0];
        if (!next) break;
        timers = timers.filter((t) => t !== next);
        now = next.at;
        next.fn();
      }
      now = end;
    },
    pending: () => timers.length,
  };
}

function fakeProcesses() {
  const procs: { pid: number; signals: string[]; exit: (code: number | null, signal?: NodeJS.Signals) => void }[] = [];
  const spawn: Spawner = (onExit) => {
    const p = {
      pid: 1000 + procs.length,
      signals: [] as string[],
      exit: (code: number | null, signal?: NodeJS.Signals) => onExit(code, signal ?? null),
      kill(signal: NodeJS.Signals) {
        p.signals.push(signal);
      },
    };
    procs.push(p);
    return p;
  };
  return { procs, spawn, last: () => procs.at(-1)! };
}

/** Crashes the current process at once and returns how long the supervisor waited before starting the next. */
function crashAndMeasure(t: ReturnType<typeof fakeClock>, p: ReturnType<typeof fakeProcesses>): number {
  const before = p.procs.length;
  p.last().exit(1);
  let waited = 0;
  while (p.procs.length === before) {
    t.advance(100);
    waited += 100;
    if (waited > 120_000) throw new Error("never restarted");
  }
  return waited;
}

describe("Supervisor", () => {
  it("restarts with exponential backoff from 1 s, capped at 30 s, counting restarts", () => {
    const t = fakeClock();
    const p = fakeProcesses();
    const s = new Supervisor({ spawn: p.spawn, clock: t.clock });
    s.start();
    expect(p.procs).toHaveLength(1);
    expect(s.state).toBe("starting");
    expect(s.pid).toBe(1000);
    const delays = Array.from({ length: 8 }, () => crashAndMeasure(t, p));
    expect(delays).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    expect(s.restarts).toBe(8);
    expect(s.pid).toBe(1008);
    expect(s.lastExit).toMatchObject({ code: 1, signal: null });
  });

  it("is in backoff between an exit and the restart, and running once marked", () => {
    const t = fakeClock();
    const p = fakeProcesses();
    const s = new Supervisor({ spawn: p.spawn, clock: t.clock });
    s.start();
    s.markRunning();
    expect(s.state).toBe("running");
    p.last().exit(null, "SIGKILL");
    expect(s.state).toBe("backoff");
    expect(s.pid).toBeUndefined();
    expect(s.lastExit).toMatchObject({ code: null, signal: "SIGKILL" });
    t.advance(999);
    expect(p.procs).toHaveLength(1);
    t.advance(1);
    expect(p.procs).toHaveLength(2);
    expect(s.state).toBe("starting");
    expect(s.restarts).toBe(1);
  });

  it("starts over at 1 s after a run that stayed up for a minute", () => {
    const t = fakeClock();
    const p = fakeProcesses();
    const s = new Supervisor({ spawn: p.spawn, clock: t.clock });
    s.start();
    expect([crashAndMeasure(t, p), crashAndMeasure(t, p), crashAndMeasure(t, p)]).toEqual([1000, 2000, 4000]);
    // Up for 59 s: not stable yet, the backoff keeps growing.
    t.advance(59_000);
    expect(crashAndMeasure(t, p)).toBe(8000);
    // Up for a minute: stable, the next crash waits the initial delay again and doubles from there.
    t.advance(60_000);
    expect(crashAndMeasure(t, p)).toBe(1000);
    expect(crashAndMeasure(t, p)).toBe(2000);
    expect(s.restarts).toBe(6);
  });

  it("takes its delays from the options", () => {
    const t = fakeClock();
    const p = fakeProcesses();
    const s = new Supervisor({ spawn: p.spawn, clock: t.clock, initialDelayMs: 200, maxDelayMs: 500 });
    s.start();
    expect([crashAndMeasure(t, p), crashAndMeasure(t, p), crashAndMeasure(t, p)]).toEqual([200, 400, 500]);
  });

  it("a process that cannot be started counts as an exit and is retried with backoff", () => {
    const t = fakeClock();
    let attempts = 0;
    const s = new Supervisor({
      clock: t.clock,
      spawn: () => {
        attempts++;
        throw new Error("ENOENT");
      },
    });
    s.start();
    expect(attempts).toBe(1);
    expect(s.state).toBe("backoff");
    t.advance(1000);
    expect(attempts).toBe(2);
    t.advance(2000);
    expect(attempts).toBe(3);
  });

  it("stop() ends the process with SIGTERM, SIGKILL after the grace period, and never restarts it", async () => {
    const t = fakeClock();
    const p = fakeProcesses();
    const s = new Supervisor({ spawn: p.spawn, clock: t.clock, stopGraceMs: 5000 });
    s.start();
    const stopped = s.stop();
    expect(p.last().signals).toEqual(["SIGTERM"]);
    t.advance(4999);
    expect(p.last().signals).toEqual(["SIGTERM"]);
    t.advance(1);
    expect(p.last().signals).toEqual(["SIGTERM", "SIGKILL"]);
    p.last().exit(null, "SIGKILL");
    await stopped;
    expect(s.state).toBe("stopped");
    t.advance(120_000);
    expect(p.procs).toHaveLength(1);
    expect(t.pending()).toBe(0);
    s.start(); // a stopped supervisor stays stopped
    expect(p.procs).toHaveLength(1);
  });

  it("stop() during a backoff cancels the pending restart", async () => {
    const t = fakeClock();
    const p = fakeProcesses();
    const s = new Supervisor({ spawn: p.spawn, clock: t.clock });
    s.start();
    p.last().exit(1);
    expect(s.state).toBe("backoff");
    await s.stop();
    expect(s.state).toBe("stopped");
    t.advance(60_000);
    expect(p.procs).toHaveLength(1);
    expect(s.restarts).toBe(0);
  });

  it("stop() of a process that exits on SIGTERM resolves without SIGKILL", async () => {
    const t = fakeClock();
    const p = fakeProcesses();
    const s = new Supervisor({ spawn: p.spawn, clock: t.clock });
    s.start();
    const stopped = s.stop();
    p.last().exit(0);
    await stopped;
    expect(p.last().signals).toEqual(["SIGTERM"]);
    expect(t.pending()).toBe(0);
    expect(s.restarts).toBe(0);
  });
});
