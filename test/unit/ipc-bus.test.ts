// The worker's side of the IPC bus (single-host mode) on an in-memory channel: what it does when the channel is
// closed or backed up is pure bookkeeping. The real forked process is in test/integration/single-host.test.ts.
import { EventEmitter } from "node:events";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { createIpcBus } from "../../worker/publish/ipc-bus.ts";
import type { StatsMessage } from "../../worker/publish/messages.ts";
import { metricValue } from "../setup/operator-env.ts";

describe("IPC bus (the worker's side)", () => {
  const stats = {
    v: 2,
    type: "stats",
    camera_id: "default/a",
    timestamp: new Date().toISOString(),
    data: {
      fps: 1,
      persons: 0,
      inference_ms: 0,
      skipped_frames: 0,
      reconnects: 0,
      provider: "cpu",
      frames: 0,
      last_frame_age_ms: null,
      stream: "connecting",
    },
  } as const satisfies StatsMessage;

  it("drops and counts while the channel is closed or backed up, never blocking, and learns watches", async () => {
    const registry = new Registry();
    const parent = new EventEmitter();
    const sent: unknown[] = [];
    const callbacks: ((err: Error | null) => void)[] = [];
    let accept = true;
    const channel = {
      connected: true,
      send(m: unknown, cb: (err: Error | null) => void) {
        sent.push(m);
        callbacks.push(cb);
        return accept;
      },
      on: (e: "message", l: (m: unknown) => void) => parent.on(e, l),
      off: (e: "message", l: (m: unknown) => void) => parent.off(e, l),
    };
    const bus = createIpcBus(registry, undefined, channel);
    const count = async (name: string, kind: string) => metricValue(await registry.metrics(), name, `kind="${kind}"`);
    bus.publishStats({ ...stats });
    callbacks.shift()!(null);
    expect(await count("vigil_bus_published_total", "stats")).toBe(1);
    // Back-pressure: process.send said false; until that message is written everything is dropped.
    accept = false;
    bus.publishStats({ ...stats });
    accept = true;
    bus.publishStats({ ...stats });
    bus.publishFrame("default/a", Buffer.alloc(10));
    expect(sent).toHaveLength(2);
    expect(await count("vigil_bus_dropped_total", "stats")).toBe(1);
    expect(await count("vigil_bus_dropped_total", "frame")).toBe(1);
    callbacks.shift()!(null);
    bus.publishFrame("default/a", Buffer.alloc(10));
    expect(sent).toHaveLength(3);
    expect(sent[2]).toMatchObject({ t: "frame", camera: "default/a" });
    // Frames have a budget of bytes in flight: a big backlog of unwritten frames drops the next ones.
    bus.publishFrame("default/a", Buffer.alloc(5 << 20));
    expect(sent).toHaveLength(3);
    expect(await count("vigil_bus_dropped_total", "frame")).toBe(2);
    // Disconnected: dropped at once.
    channel.connected = false;
    bus.publishEvent({
      v: 2,
      type: "event",
      id: "x",
      camera_id: "default/a",
      timestamp: stats.timestamp,
      rule: "r",
      kind: "presence",
      severity: "info",
      track_id: 1,
      zone: null,
      box: null,
      snapshot_key: null,
      detail: "",
    });
    expect(sent).toHaveLength(3);
    expect(await count("vigil_bus_dropped_total", "event")).toBe(1);
    expect(metricValue(await registry.metrics(), "vigil_bus_connected")).toBe(0);
    // Watches from the parent.
    expect(bus.hasViewers("default/a")).toBe(false);
    parent.emit("message", { t: "watch", camera: "default/a", watching: true });
    parent.emit("message", { t: "watch", camera: 7, watching: true });
    parent.emit("message", { t: "watch", camera: "b", watching: true }); // not a camera id
    expect(bus.hasViewers("default/a")).toBe(true);
    expect(bus.hasViewers("b")).toBe(false);
    parent.emit("message", { t: "watch", camera: "default/a", watching: false });
    expect(bus.hasViewers("default/a")).toBe(false);
    await bus.close();
    expect(parent.listenerCount("message")).toBe(0);
  });
});
