import { describe, expect, it } from "vitest";
import { setCondition } from "../../operator/kube/conditions.ts";

const t1 = new Date("2026-01-01T00:00:00.123Z");
const t2 = new Date("2026-01-01T00:05:00Z");

describe("setCondition", () => {
  it("adds a condition with a second-precision transition time", () => {
    const list = setCondition([], { type: "Ready", status: "False", reason: "Waiting", message: "m" }, t1);
    expect(list).toEqual([
      { type: "Ready", status: "False", reason: "Waiting", message: "m", lastTransitionTime: "2026-01-01T00:00:00Z" },
    ]);
  });

  it("keeps lastTransitionTime when only reason or message change", () => {
    const a = setCondition([], { type: "Ready", status: "False", reason: "A", message: "a" }, t1);
    const b = setCondition(a, { type: "Ready", status: "False", reason: "B", message: "b" }, t2);
    expect(b[0]).toMatchObject({ reason: "B", message: "b", lastTransitionTime: "2026-01-01T00:00:00Z" });
  });

  it("moves lastTransitionTime when status changes, and leaves other types alone", () => {
    const a = setCondition([], { type: "Scheduled", status: "True", reason: "A", message: "" }, t1);
    const b = setCondition(a, { type: "Ready", status: "False", reason: "A", message: "" }, t1);
    const c = setCondition(b, { type: "Ready", status: "True", reason: "Up", message: "" }, t2);
    expect(c.map((x) => [x.type, x.status, x.lastTransitionTime])).toEqual([
      ["Scheduled", "True", "2026-01-01T00:00:00Z"],
      ["Ready", "True", "2026-01-01T00:05:00Z"],
    ]);
  });
});
