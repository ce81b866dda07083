import { describe, expect, it } from "vitest";
import { foreignReporters, takeoverPatch, workerFieldManager } from "../../worker/status-takeover.ts";

const condition = { ".": {}, "f:type": {}, "f:status": {}, "f:message": {} };
// managedFields as the test apiserver wrote them after worker a applied, then worker b force-applied other values.
const observed = {
  metadata: {
    resourceVersion: "42",
    managedFields: [
      { manager: "vigil-operator", subresource: "status", fieldsV1: { "f:status": { "f:phase": {} } } },
      {
        manager: "vigil-worker-a",
        subresource: "status",
        fieldsV1: { "f:status": { "f:conditions": { 'k:{"type":"StreamHealthy"}': condition } } },
      },
      { manager: "kubectl", fieldsV1: { "f:spec": {} } },
      { manager: "vigil-worker-b", subresource: "status", fieldsV1: { "f:status": { "f:fps": {} } } },
      { manager: "vigil-worker-gone", subresource: "status", fieldsV1: { "f:status": {} } },
      { manager: "vigil-worker", subresource: "status", fieldsV1: { "f:status": { "f:reconnects": {} } } },
    ],
  },
  status: {
    phase: "Running",
    fps: 4,
    reconnects: 0,
    conditions: [{ type: "Ready" }, { type: "StreamHealthy" }],
  },
};

describe("status takeover", () => {
  it("names one field manager per worker pod", () => {
    expect(workerFieldManager("p-worker-1")).toBe("vigil-worker-p-worker-1");
  });

  it("finds the other workers that own part of the status, the shared manager of earlier workers included", () => {
    expect(foreignReporters(observed, "vigil-worker-b")).toEqual([
      { index: 1, manager: "vigil-worker-a" },
      { index: 5, manager: "vigil-worker" },
    ]);
    // An entry that owns nothing any more (a worker that let go) is no one's report.
    expect(foreignReporters(observed, "vigil-worker-b").map((f) => f.manager)).not.toContain("vigil-worker-gone");
  });

  it("removes their ownership and the report, guarded by what was observed, last index first", () => {
    expect(takeoverPatch(observed, "vigil-worker-b")).toEqual([
      { op: "test", path: "/metadata/resourceVersion", value: "42" },
      { op: "test", path: "/metadata/managedFields/5/manager", value: "vigil-worker" },
      { op: "remove", path: "/metadata/managedFields/5" },
      { op: "test", path: "/metadata/managedFields/1/manager", value: "vigil-worker-a" },
      { op: "remove", path: "/metadata/managedFields/1" },
      { op: "remove", path: "/status/conditions/1" },
      { op: "remove", path: "/status/fps" },
      { op: "remove", path: "/status/reconnects" },
    ]);
  });

  it("has nothing to do when this worker is the only one reporting", () => {
    const onlyB = {
      ...observed,
      metadata: { ...observed.metadata, managedFields: [observed.metadata.managedFields[3]!] },
    };
    expect(takeoverPatch(onlyB, "vigil-worker-b")).toBeUndefined();
  });
});
