import { describe, expect, it } from "vitest";
import { createOutbox } from "../../alarms/outbox.ts";

const ids = (o: ReturnType<typeof createOutbox<string>>) => o.unsent().map((e) => e.id);

describe("alarm outbox", () => {
  it("keeps arrival order and one entry per id", () => {
    const o = createOutbox<string>(10);
    expect(o.add("a", "A")).toBe("added");
    expect(o.add("b", "B")).toBe("added");
    expect(o.add("a", "A again")).toBe("duplicate");
    expect(o.add("c", "C")).toBe("added");
    expect(o.unsent()).toEqual([
      { id: "a", item: "A" },
      { id: "b", item: "B" },
      { id: "c", item: "C" },
    ]);
    expect(o.size).toBe(3);
  });

  it("removes an entry only on its confirm", () => {
    const o = createOutbox<string>(10);
    o.add("a", "A");
    o.add("b", "B");
    o.sent("a");
    o.sent("b");
    expect(o.unsent()).toEqual([]);
    expect(o.inFlight).toBe(2);
    expect(o.size).toBe(2);
    expect(o.confirm("b")).toBe(true);
    expect(o.size).toBe(1);
    expect(o.inFlight).toBe(1);
    expect(o.confirm("b")).toBe(false); // a second confirm (a re-send of it) settles nothing
    expect(o.confirm("a")).toBe(true);
    expect(o.size).toBe(0);
    expect(o.inFlight).toBe(0);
  });

  it("puts a nacked send back in line, in its place", () => {
    const o = createOutbox<string>(10);
    for (const id of ["a", "b", "c"]) o.add(id, id);
    const ta = o.sent("a");
    o.sent("b");
    o.sent("c");
    expect(o.retry("a", ta)).toBe(true);
    expect(ids(o)).toEqual(["a"]);
    expect(o.inFlight).toBe(2);
    o.add("d", "d");
    expect(ids(o)).toEqual(["a", "d"]); // the older alarm goes first
  });

  it("ignores a failure of an older send once a newer one is out", () => {
    const o = createOutbox<string>(10);
    o.add("a", "A");
    const first = o.sent("a");
    o.resendAll(); // the connection dropped and came back
    expect(ids(o)).toEqual(["a"]);
    const second = o.sent("a");
    // The first channel's close reports the first send as failed only now: the second is still awaited.
    expect(o.retry("a", first)).toBe(false);
    expect(ids(o)).toEqual([]);
    expect(o.inFlight).toBe(1);
    expect(o.retry("a", second)).toBe(true);
    expect(ids(o)).toEqual(["a"]);
    expect(o.inFlight).toBe(0);
  });

  it("a confirm of any send of an entry removes it", () => {
    const o = createOutbox<string>(10);
    o.add("a", "A");
    o.sent("a");
    o.resendAll();
    o.sent("a");
    expect(o.confirm("a")).toBe(true);
    expect(o.size).toBe(0);
    expect(o.inFlight).toBe(0);
    expect(o.retry("a", 2)).toBe(false);
  });

  it("resends everything on a new connection, oldest first", () => {
    const o = createOutbox<string>(10);
    for (const id of ["a", "b", "c", "d"]) o.add(id, id);
    o.sent("a");
    o.sent("c");
    o.resendAll();
    expect(ids(o)).toEqual(["a", "b", "c", "d"]);
    expect(o.inFlight).toBe(0);
  });

  it("refuses new alarms past its limit and counts them; confirmed ones make room", () => {
    const o = createOutbox<string>(3);
    for (const id of ["a", "b", "c"]) expect(o.add(id, id)).toBe("added");
    expect(o.add("d", "d")).toBe("overflow");
    expect(o.add("e", "e")).toBe("overflow");
    expect(o.overflowed).toBe(2);
    expect(o.add("a", "a")).toBe("duplicate"); // already queued: not lost, not counted
    expect(o.overflowed).toBe(2);
    expect(ids(o)).toEqual(["a", "b", "c"]);
    o.sent("a");
    o.confirm("a");
    expect(o.add("f", "f")).toBe("added");
    expect(ids(o)).toEqual(["b", "c", "f"]);
  });

  it("rejects a limit that is not a positive integer, and a send of an unknown id", () => {
    expect(() => createOutbox(0)).toThrow(/positive integer/);
    expect(() => createOutbox(1.5)).toThrow(/positive integer/);
    expect(() => createOutbox<string>(1).sent("x")).toThrow(/not queued/);
  });
});
