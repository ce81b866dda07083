import { describe, expect, it } from "vitest";
import { latestPerKey } from "../../worker/latest-per-key.ts";

/** A promise and its resolver: stands for an API read that answers when the test says so. */
function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

describe("latestPerKey", () => {
  it("runs one task per key at a time; of the values that arrived meanwhile only the newest runs", async () => {
    const read = deferred();
    const applied: string[] = [];
    const started: string[] = [];
    const q = latestPerKey<string>(async (key, value, superseded) => {
      started.push(`${key}:${value}`);
      if (value === "v1") await read.promise; // the first state's Secret read is slow
      if (!superseded()) applied.push(`${key}:${value}`);
    });
    q.submit("cam", "v1");
    q.submit("cam", "v2");
    q.submit("cam", "v3");
    q.submit("other", "x1"); // another key is not held up
    await new Promise((r) => setTimeout(r, 0));
    expect(started).toEqual(["cam:v1", "other:x1"]);
    read.resolve();
    await q.idle();
    // v1 learnt after its read that it was superseded; v2 never ran; v3, the latest, did.
    expect(started).toEqual(["cam:v1", "other:x1", "cam:v3"]);
    expect(applied).toEqual(["other:x1", "cam:v3"]);
  });

  it("a delete that arrives during a pending read wins over the add", async () => {
    const read = deferred();
    const streaming = new Set<string>();
    const q = latestPerKey<"add" | "delete">(async (key, op, superseded) => {
      if (op === "delete") return void streaming.delete(key);
      await read.promise;
      if (superseded()) return;
      streaming.add(key);
    });
    q.submit("cam", "add");
    q.submit("cam", "delete");
    read.resolve();
    await q.idle();
    expect(streaming.has("cam")).toBe(false);
  });

  it("reports a failing task and goes on with the key's next value", async () => {
    const errors: string[] = [];
    const ran: string[] = [];
    const gate = deferred();
    const q = latestPerKey<number>(
      async (_key, n) => {
        await gate.promise;
        if (n === 1) throw new Error("boom");
        ran.push(String(n));
      },
      (key, err) => errors.push(`${key}: ${(err as Error).message}`),
    );
    q.submit("k", 1);
    q.submit("k", 2);
    gate.resolve();
    await q.idle();
    expect(errors).toEqual(["k: boom"]);
    expect(ran).toEqual(["2"]);
  });
});
