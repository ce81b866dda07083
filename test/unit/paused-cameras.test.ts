// A worker's paused cameras on an in-memory channel (the real forked worker is in
// test/integration/single-host-control.test.ts): which cameras the pipeline runs, the answers to the parent, and
// what a malformed message does. And the local catalog's reading of a camera stopped and started through the API.
import { EventEmitter } from "node:events";
import { describe, expect, it } from "vitest";
import { createIpcFeed } from "../../gateway/ipc-feed.ts";
import type { CameraDetectionSpec } from "../../operator/api/camera-detection.ts";
import { createLocalCatalog } from "../../single/catalog.ts";
import type { Placement } from "../../single/local-executor.ts";
import { createPausedCameras, listenForPauses } from "../../worker/paused-cameras.ts";
import type { CameraConfig } from "../../worker/pipeline.ts";

const spec = {
  source: { url: "file:///v.avi", transport: "tcp", hwaccel: "none" },
  poolRef: { name: "local" },
  detection: { targetFps: 5 },
  zones: [],
  rules: [],
  paused: false,
} as unknown as CameraDetectionSpec;
const cams: CameraConfig[] = ["default/a", "default/b", "default/c"].map((id) => ({ id, spec }));

describe("a worker's paused cameras", () => {
  it("runs the unpaused ones, applies pause messages in order and answers each", () => {
    const running = new Set<string>();
    const pipeline = {
      add: (c: CameraConfig) => void running.add(c.id),
      remove: (id: string) => void running.delete(id),
    };
    const paused = createPausedCameras(pipeline, cams, ["default/b", "default/nope"]);
    expect([...running].sort()).toEqual(["default/a", "default/c"]);
    expect(paused.paused()).toEqual(["default/b"]);

    const parent = new EventEmitter();
    const sent: unknown[] = [];
    const channel = {
      send: (m: unknown, cb: (err: Error | null) => void) => {
        sent.push(m);
        cb(null);
        return true;
      },
      on: (e: "message", l: (m: unknown) => void) => parent.on(e, l),
      off: (e: "message", l: (m: unknown) => void) => parent.off(e, l),
    };
    const stop = listenForPauses(paused, channel);
    // Announced at start: the cameras started paused.
    expect(sent).toEqual([{ t: "paused", camera: "default/b", paused: true, known: true }]);
    parent.emit("message", { t: "pause", camera: "default/a", paused: true });
    parent.emit("message", { t: "pause", camera: "default/a", paused: true }); // idempotent
    parent.emit("message", { t: "pause", camera: "default/b", paused: false });
    parent.emit("message", { t: "pause", camera: "default/zz", paused: true });
    parent.emit("message", { t: "watch", camera: "default/a", watching: true }); // the bus's, not ours
    parent.emit("message", { t: "pause", camera: "not an id", paused: true }); // malformed: dropped
    expect([...running].sort()).toEqual(["default/b", "default/c"]);
    expect(sent.slice(1)).toEqual([
      { t: "paused", camera: "default/a", paused: true, known: true },
      { t: "paused", camera: "default/a", paused: true, known: true },
      { t: "paused", camera: "default/b", paused: false, known: true },
      { t: "paused", camera: "default/zz", paused: true, known: false },
    ]);
    stop();
    parent.emit("message", { t: "pause", camera: "default/c", paused: true });
    expect(running.has("default/c")).toBe(true);
  });
});

describe("the local catalog of a camera stopped and started through the API", () => {
  it("reads Paused while stopped, then ignores the stats of the run before", async () => {
    const feed = createIpcFeed();
    let clock = 1_000_000;
    let placement: Placement = { pool: "local", worker: "local-0", reason: "Assigned", message: "assigned" };
    const catalog = createLocalCatalog({
      manifests: {
        pools: [],
        cameras: [{ id: "default/a", spec }],
      } as unknown as Parameters<typeof createLocalCatalog>[0]["manifests"],
      feed,
      placements: () => new Map([["default/a", placement]]),
      workers: () => [],
      now: () => clock,
    });
    // A stand-in worker process on the real IPC feed: its messages are what a worker sends.
    const stats = {
      v: 2,
      type: "stats",
      camera_id: "default/a",
      timestamp: new Date(clock).toISOString(),
      data: {
        fps: 5,
        persons: 1,
        inference_ms: 9,
        skipped_frames: 0,
        reconnects: 0,
        provider: "cpu",
        frames: 10,
        last_frame_age_ms: 3,
        stream: "streaming",
      },
    };
    const child = new EventEmitter() as unknown as Parameters<typeof feed.attach>[0];
    Object.assign(child, { connected: false });
    feed.attach(child);
    (child as unknown as EventEmitter).emit("message", { t: "stats", m: stats });
    expect(catalog.camera("default/a")).toMatchObject({ paused: false, status: { phase: "Running" } });

    clock += 500;
    placement = { pool: "local", reason: "Paused", message: "stopped through the API by token ops", since: clock };
    const paused = catalog.camera("default/a")!;
    expect(paused).toMatchObject({ paused: true, status: { phase: "Paused" } });
    expect(paused.status.worker).toBeUndefined();
    expect(paused.status.conditions).toContainEqual(
      expect.objectContaining({ type: "Scheduled", status: "False", reason: "Paused" }),
    );

    clock += 500;
    placement = { pool: "local", worker: "local-0", reason: "Assigned", message: "assigned", since: clock };
    // The last stats are from before the start: awaiting the new run's, not Degraded, not Running.
    expect(catalog.camera("default/a")).toMatchObject({ paused: false, status: { phase: "Scheduled" } });
    clock += 100;
    (child as unknown as EventEmitter).emit("message", { t: "stats", m: stats });
    expect(catalog.camera("default/a")).toMatchObject({ paused: false, status: { phase: "Running" } });
    await catalog.close();
    await feed.close();
  });
});
