import { describe, expect, it } from "vitest";
import { createConnectGate } from "../../worker/ingest/connect-gate.ts";

describe("connect gate", () => {
  it("grants up to its limit at once, then one per release, first come first served", async () => {
    const gate = createConnectGate(2);
    const a = await gate.acquire();
    const b = await gate.acquire();
    const order: string[] = [];
    const take = (name: string) =>
      gate.acquire().then((release) => {
        order.push(name);
        return release;
      });
    const c = take("c");
    const d = take("d");
    await Promise.resolve();
    expect([gate.active, gate.waiting, order]).toEqual([2, 2, []]);
    b();
    const releaseC = await c;
    expect([gate.active, gate.waiting, order]).toEqual([2, 1, ["c"]]);
    a();
    const releaseD = await d;
    expect(order).toEqual(["c", "d"]);
    releaseC();
    releaseD();
    expect([gate.active, gate.waiting]).toEqual([0, 0]);
  });

  it("counts a slot released twice once", async () => {
    const gate = createConnectGate(1);
    const a = await gate.acquire();
    const next = gate.acquire();
    a();
    a(); // a second release must not free the slot the waiter now holds
    const b = await next;
    expect(gate.active).toBe(1);
    let third = false;
    void gate.acquire().then(() => (third = true));
    await new Promise((r) => setTimeout(r, 10));
    expect(third).toBe(false);
    b();
    await new Promise((r) => setTimeout(r, 0));
    expect(third).toBe(true);
  });

  it("refuses a limit below 1", () => {
    expect(() => createConnectGate(0)).toThrow(/connect limit 0: must be an integer ≥ 1/);
    expect(() => createConnectGate(1.5)).toThrow(/connect limit 1.5/);
  });
});
