import { describe, expect, it } from "vitest";
import {
  assignCameras,
  type CameraInput,
  desiredReplicas,
  type WorkerInput,
} from "../../operator/controllers/assignment.ts";

const cams = (n: number, current: (i: number) => string | undefined = () => undefined): CameraInput[] =>
  Array.from({ length: n }, (_, i) => ({
    key: `ns/cam-${String(i).padStart(3, "0")}`,
    createdAt: 1000 + i,
    current: current(i),
  }));
const workers = (n: number, capacity = 2, lost: number[] = []): WorkerInput[] =>
  Array.from({ length: n }, (_, i) => ({ name: `w-${i}`, capacity, assignable: !lost.includes(i) }));

describe("assignCameras", () => {
  it("spreads new cameras to the least-loaded worker", () => {
    const r = assignCameras(cams(4), workers(2, 4));
    expect([...r.load.values()]).toEqual([2, 2]);
    expect(r.unassigned).toEqual([]);
  });

  it("never exceeds a worker's capacity; the newest overflow stays unassigned", () => {
    const r = assignCameras(cams(7), workers(3, 2));
    expect(r.assigned.size).toBe(6);
    expect(r.unassigned).toEqual(["ns/cam-006"]);
    for (const l of r.load.values()) expect(l).toBeLessThanOrEqual(2);
  });

  it("is sticky: cameras stay on their worker while it is assignable", () => {
    const r = assignCameras(
      cams(3, () => "w-1"),
      workers(2, 4),
    );
    expect([...r.assigned.values()]).toEqual(["w-1", "w-1", "w-1"]);
  });

  it("an older camera keeps its slot; a newcomer does not evict it", () => {
    const existing = cams(2, () => "w-0");
    const newcomer: CameraInput = { key: "ns/new", createdAt: 5000 };
    const r = assignCameras([newcomer, ...existing], workers(1, 2));
    expect(r.assigned.get("ns/cam-000")).toBe("w-0");
    expect(r.assigned.get("ns/cam-001")).toBe("w-0");
    expect(r.unassigned).toEqual(["ns/new"]);
  });

  it("moves a lost worker's cameras to workers with room", () => {
    const r = assignCameras(
      cams(4, (i) => (i < 2 ? "w-0" : "w-1")),
      workers(3, 2, [0]),
    );
    expect(r.assigned.get("ns/cam-002")).toBe("w-1");
    expect(r.assigned.get("ns/cam-003")).toBe("w-1");
    expect(r.assigned.get("ns/cam-000")).toBe("w-2");
    expect(r.assigned.get("ns/cam-001")).toBe("w-2");
    expect(r.load.get("w-0")).toBe(0);
  });

  it("leaves a lost worker's cameras unassigned when nothing has room", () => {
    const r = assignCameras(
      cams(4, (i) => (i < 2 ? "w-0" : "w-1")),
      workers(2, 2, [0]),
    );
    expect(r.unassigned).toEqual(["ns/cam-000", "ns/cam-001"]);
  });

  it("moves the newest cameras off a worker whose capacity shrank", () => {
    const r = assignCameras(
      cams(3, () => "w-0"),
      workers(2, 2),
    );
    expect(r.assigned.get("ns/cam-000")).toBe("w-0");
    expect(r.assigned.get("ns/cam-001")).toBe("w-0");
    expect(r.assigned.get("ns/cam-002")).toBe("w-1");
  });

  it("forgets a worker that no longer exists (scale-down)", () => {
    const r = assignCameras(
      cams(2, () => "w-5"),
      workers(1, 4),
    );
    expect([...r.assigned.values()]).toEqual(["w-0", "w-0"]);
  });

  it("is deterministic whatever the input order", () => {
    const a = assignCameras(cams(9), workers(4, 3));
    const b = assignCameras([...cams(9)].reverse(), [...workers(4, 3)]);
    expect([...b.assigned.entries()].sort()).toEqual([...a.assigned.entries()].sort());
  });

  it("fills workers of different sizes by ratio", () => {
    const r = assignCameras(cams(6), [
      { name: "big", capacity: 4, assignable: true },
      { name: "small", capacity: 2, assignable: true },
    ]);
    expect(r.load.get("big")).toBe(4);
    expect(r.load.get("small")).toBe(2);
  });
});

describe("desiredReplicas", () => {
  it("is ceil(cameras / perWorker) clamped to [min, max]", () => {
    expect(desiredReplicas(0, 8, 0, 4)).toBe(0);
    expect(desiredReplicas(0, 8, 1, 4)).toBe(1);
    expect(desiredReplicas(9, 8, 0, 4)).toBe(2);
    expect(desiredReplicas(16, 8, 0, 4)).toBe(2);
    expect(desiredReplicas(100, 8, 0, 4)).toBe(4);
  });
});
