import { describe, expect, it } from "vitest";
import { createInferenceScheduler } from "../../worker/infer/scheduler.ts";

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("inference scheduler", () => {
  it("takes cameras in turn, one frame each, newest frame wins", async () => {
    const s = createInferenceScheduler(1);
    const ran: string[] = [];
    const dropped: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const job = (name: string, wait?: Promise<void>) => ({
      run: async () => {
        ran.push(name);
        await wait;
      },
      dropped: () => dropped.push(name),
    });
    s.submit("a", job("a1", gate)); // runs at once and holds the session
    s.submit("a", job("a2"));
    s.submit("b", job("b1"));
    s.submit("a", job("a3")); // replaces a2, keeps a's turn before b
    s.submit("c", job("c1"));
    expect(s.pending("a")).toBe(true);
    release();
    await s.idle();
    expect(ran).toEqual(["a1", "a3", "b1", "c1"]);
    expect(dropped).toEqual(["a2"]);
    expect(s.stats).toMatchObject({ ran: 4, dropped: 1, busy: 0 });
  });

  it("keeps going after a job fails", async () => {
    const s = createInferenceScheduler(1);
    const ran: string[] = [];
    s.submit("a", { run: async () => Promise.reject(new Error("boom")), dropped: () => undefined });
    s.submit("b", { run: async () => void ran.push("b"), dropped: () => undefined });
    await tick();
    await s.idle();
    expect(ran).toEqual(["b"]);
  });

  it("runs several cameras at once when the model batches, never two frames of one camera", async () => {
    const s = createInferenceScheduler(3);
    const active = new Set<string>();
    const log: string[] = [];
    let overlapSameCamera = false;
    let maxBusy = 0;
    const release: (() => void)[] = [];
    const job = (cam: string, name: string) => ({
      run: async () => {
        if (active.has(cam)) overlapSameCamera = true;
        active.add(cam);
        log.push(name);
        maxBusy = Math.max(maxBusy, s.stats.busy);
        await new Promise<void>((r) => release.push(r));
        active.delete(cam);
      },
      dropped: () => log.push(`drop ${name}`),
    });
    s.submit("a", job("a", "a1"));
    s.submit("a", job("a", "a2")); // waits: a1 is in flight
    s.submit("b", job("b", "b1"));
    s.submit("c", job("c", "c1"));
    s.submit("d", job("d", "d1")); // waits: three in flight
    expect(log).toEqual(["a1", "b1", "c1"]);
    expect(s.pending("a")).toBe(true);
    while (release.length) {
      for (const r of release.splice(0)) r();
      await tick();
    }
    await s.idle();
    expect(log).toEqual(["a1", "b1", "c1", "a2", "d1"]);
    expect(overlapSameCamera).toBe(false);
    expect(maxBusy).toBe(3);
  });

  it("keeps a second frame of a camera in flight behind the first, and no third", async () => {
    const s = createInferenceScheduler(4, 2);
    const started: string[] = [];
    const release: (() => void)[] = [];
    const job = (name: string) => ({
      run: async () => {
        started.push(name);
        await new Promise<void>((r) => release.push(r));
      },
      dropped: () => started.push(`drop ${name}`),
    });
    s.submit("a", job("a1"));
    s.submit("a", job("a2"));
    s.submit("a", job("a3")); // waits: two of a's frames are in flight
    s.submit("a", job("a4")); // replaces a3
    expect(started).toEqual(["a1", "a2", "drop a3"]);
    expect(s.stats.busy).toBe(2);
    release.shift()?.(); // a1 done: a4 goes in behind a2
    await tick();
    expect(started).toEqual(["a1", "a2", "drop a3", "a4"]);
    while (release.length) {
      for (const r of release.splice(0)) r();
      await tick();
    }
    await s.idle();
  });
});
