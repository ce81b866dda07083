import { describe, expect, it } from "vitest";
import { pickInstance, threadsPerInstance } from "../../worker/infer/instances.ts";
import { schedulerForModel } from "../../worker/infer/scheduler.ts";

describe("model instances", () => {
  it("shares the pool's threads out among the instances, at least one each", () => {
    expect(threadsPerInstance(2, 2, 2)).toBe(1);
    expect(threadsPerInstance(4, 2, 2)).toBe(2);
    expect(threadsPerInstance(5, 2, 8)).toBe(2);
    expect(threadsPerInstance(0, 2, 2)).toBe(1); // 0 = one per core
    expect(threadsPerInstance(0, 3, 2)).toBe(1);
    expect(threadsPerInstance(0, 1, 16)).toBe(16);
    expect(() => threadsPerInstance(1, 2, 2)).toThrow(/2 model instances need at least 2 threads, the pool gives 1/);
    expect(() => threadsPerInstance(2, 0, 2)).toThrow(/must be ≥ 1/);
  });

  it("sends a frame to the instance with the fewest in flight, the first on a tie", () => {
    expect(pickInstance([0])).toBe(0);
    expect(pickInstance([1, 0])).toBe(1);
    expect(pickInstance([1, 1])).toBe(0);
    expect(pickInstance([2, 1, 1])).toBe(1);
    expect(pickInstance([0, 2, 0])).toBe(0);
  });

  it("keeps one frame of a camera in flight when instances could finish its frames out of order", async () => {
    const order: string[] = [];
    const gates: (() => void)[] = [];
    const run = (name: string) => ({
      run: () =>
        new Promise<void>((r) => {
          order.push(name);
          gates.push(r);
        }),
      dropped: () => undefined,
    });
    const two = schedulerForModel(1, 2); // 4 in flight, 1 per camera
    for (const c of ["a", "b", "c"]) two.submit(c, run(`${c}1`));
    two.submit("a", run("a2"));
    expect(order).toEqual(["a1", "b1", "c1"]); // a2 waits for a1
    expect(two.pending("a")).toBe(true);
    gates.shift()?.();
    await new Promise((r) => setTimeout(r, 0));
    expect(order).toEqual(["a1", "b1", "c1", "a2"]);
    for (const g of gates.splice(0)) g();
    await two.idle();

    const one = schedulerForModel(1); // one instance answers in order: a camera's next frame queues at the model
    order.length = 0;
    one.submit("a", run("a1"));
    one.submit("a", run("a2"));
    expect(order).toEqual(["a1", "a2"]);
    for (const g of gates.splice(0)) g();
    await one.idle();
  });
});
