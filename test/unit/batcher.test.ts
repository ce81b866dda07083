import { describe, expect, it, vi } from "vitest";
import { createBatcher } from "../../worker/infer/batcher.ts";

describe("dynamic batcher", () => {
  it("runs a lone call at once, by itself", async () => {
    const runs: number[][] = [];
    const b = createBatcher(4, async (items: number[]) => {
      runs.push(items);
      return items.map((i) => i * 10);
    });
    expect(await b.submit(1)).toBe(10);
    expect(runs).toEqual([[1]]);
  });

  it("batches what arrives while the model is busy, up to maxBatch, in arrival order", async () => {
    const runs: number[][] = [];
    let release!: () => void;
    const busy = new Promise<void>((r) => {
      release = r;
    });
    const b = createBatcher(3, async (items: number[]) => {
      runs.push(items);
      if (runs.length === 1) await busy;
      return items.map((i) => i * 10);
    });
    const first = b.submit(0);
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    const rest = [1, 2, 3, 4, 5].map((i) => b.submit(i)); // all wait for the busy model
    release();
    expect(await Promise.all([first, ...rest])).toEqual([0, 10, 20, 30, 40, 50]);
    expect(runs).toEqual([[0], [1, 2, 3], [4, 5]]);
    expect(b.stats).toEqual({ runs: 3, items: 6 });
  });

  it("joins calls made in the same tick into one run", async () => {
    const runs: string[][] = [];
    const b = createBatcher(8, async (items: string[]) => {
      runs.push(items);
      return items;
    });
    await Promise.all(["a", "b", "c"].map((x) => b.submit(x)));
    expect(runs).toEqual([["a", "b", "c"]]);
  });

  it("fails every call of a failed run, and keeps going", async () => {
    let n = 0;
    const b = createBatcher(2, async (items: number[]) => {
      if (n++ === 0) throw new Error("model exploded");
      return items;
    });
    const failed = Promise.allSettled([b.submit(1), b.submit(2)]);
    expect((await failed).map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(await b.submit(3)).toBe(3);
  });

  it("rejects a bad maxBatch", () => {
    expect(() => createBatcher(0, async () => [])).toThrow(/maxBatch/);
  });
});

describe("dynamic batcher idle", () => {
  it("resolves idle once everything queued has run", async () => {
    const done: number[] = [];
    const b = createBatcher(1, async (items: number[]) => {
      await new Promise((r) => setTimeout(r, 5));
      done.push(...items);
      return items;
    });
    await b.idle(); // nothing yet
    void b.submit(1);
    void b.submit(2);
    await b.idle();
    expect(done).toEqual([1, 2]);
  });
});

describe("dynamic batcher with a batch window (maxDelayMs)", () => {
  const flush = async () => {
    for (let i = 0; i < 5; i++) await vi.advanceTimersByTimeAsync(0);
  };

  it("holds the first frame until the batch is full, then runs at once", async () => {
    vi.useFakeTimers();
    try {
      const runs: number[][] = [];
      const b = createBatcher(
        3,
        async (items: number[]) => {
          runs.push(items);
          return items;
        },
        { maxDelayMs: 50 },
      );
      const out = [b.submit(1)];
      await vi.advanceTimersByTimeAsync(10);
      out.push(b.submit(2));
      await vi.advanceTimersByTimeAsync(10);
      expect(runs).toEqual([]); // two of three, 20 ms of 50: still waiting
      out.push(b.submit(3));
      await flush();
      expect(runs).toEqual([[1, 2, 3]]);
      expect(await Promise.all(out)).toEqual([1, 2, 3]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("runs what it has once the oldest frame has waited maxDelayMs", async () => {
    vi.useFakeTimers();
    try {
      const runs: number[][] = [];
      const b = createBatcher(
        4,
        async (items: number[]) => {
          runs.push(items);
          return items;
        },
        { maxDelayMs: 50 },
      );
      const one = b.submit(1);
      await vi.advanceTimersByTimeAsync(30);
      const two = b.submit(2);
      await vi.advanceTimersByTimeAsync(19);
      expect(runs).toEqual([]);
      await vi.advanceTimersByTimeAsync(1); // 50 ms after the first, not after the second
      await flush();
      expect(runs).toEqual([[1, 2]]);
      expect(await Promise.all([one, two])).toEqual([1, 2]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("rejects a negative window", () => {
    expect(() => createBatcher(2, async () => [], { maxDelayMs: -1 })).toThrow(/maxDelayMs/);
  });
});
