// The single-host bus: a worker forked by `vigil up` publishes to its parent over Node's IPC channel instead of
// Redis. The parent forks with `serialization: "advanced"`, so JPEG Buffers cross as Buffers (no base64). Like the
// Redis bus it never stalls detection: while the channel is gone or backed up, messages are dropped and counted.
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import { z } from "zod";
import { cameraIdSchema } from "./camera-id.ts";
import type { EventMessage, StatsMessage } from "./messages.ts";
import type { Bus } from "./redis-bus.ts";

/** Worker → parent. */
export type IpcUpMessage =
  | { t: "stats"; m: StatsMessage }
  | { t: "event"; m: EventMessage }
  | { t: "frame"; camera: string; jpeg: Buffer }
  | IpcPausedMessage;

/** Parent → worker: someone started or stopped watching a camera's video. */
export const ipcDownMessage = z.object({ t: z.literal("watch"), camera: cameraIdSchema, watching: z.boolean() });
export type IpcDownMessage = z.infer<typeof ipcDownMessage>;

/** Parent → worker: stop (paused) or start again one camera's pipeline (POST /cameras/{id}/stop|start). */
export const ipcPauseMessage = z.object({ t: z.literal("pause"), camera: cameraIdSchema, paused: z.boolean() });
export type IpcPauseMessage = z.infer<typeof ipcPauseMessage>;

/** Worker → parent: a camera's pipeline is now stopped (paused) or running; also sent at start for each camera the
 * worker was started with paused (`--paused`). `known: false`: the worker has no such camera. */
export const ipcPausedMessage = z.object({
  t: z.literal("paused"),
  camera: cameraIdSchema,
  paused: z.boolean(),
  known: z.boolean(),
});
export type IpcPausedMessage = z.infer<typeof ipcPausedMessage>;

/** The part of `process` the bus uses (injectable for tests). */
export type IpcChannel = {
  readonly connected: boolean;
  send?: ((message: unknown, callback: (err: Error | null) => void) => boolean) | undefined;
  on(event: "message", listener: (m: unknown) => void): unknown;
  off(event: "message", listener: (m: unknown) => void): unknown;
};

/** Frames waiting in the channel beyond this are dropped (about a second of video from a few cameras). */
const MAX_FRAME_BYTES_IN_FLIGHT = 4 << 20;

export function createIpcBus(registry: Registry, log?: Logger, channel: IpcChannel = defaultChannel()): Bus {
  const published = new Counter({
    name: "vigil_bus_published_total",
    help: "Messages published to the bus",
    labelNames: ["kind"],
    registers: [registry],
  });
  const dropped = new Counter({
    name: "vigil_bus_dropped_total",
    help: "Messages dropped because the bus was unavailable or backed up",
    labelNames: ["kind"],
    registers: [registry],
  });
  const connected = new Gauge({
    name: "vigil_bus_connected",
    help: "1 while the bus is connected",
    registers: [registry],
    collect() {
      this.set(channel.connected ? 1 : 0);
    },
  });
  connected.set(channel.connected ? 1 : 0);

  const watching = new Map<string, boolean>();
  const onMessage = (raw: unknown) => {
    const r = ipcDownMessage.safeParse(raw);
    if (!r.success) return;
    if (r.data.watching) watching.set(r.data.camera, true);
    else watching.delete(r.data.camera);
  };
  channel.on("message", onMessage);

  // process.send returns false once Node's backlog of unsent messages is too large; from then until that message's
  // callback (written to the pipe), everything is dropped. Frames also have their own budget of bytes in flight.
  let congested = false;
  let frameBytes = 0;
  let warned = false;
  const send = (kind: string, message: IpcUpMessage, bytes = 0): void => {
    const sendFn = channel.send;
    if (!sendFn || !channel.connected || congested || (bytes && frameBytes + bytes > MAX_FRAME_BYTES_IN_FLIGHT)) {
      if (!warned && !channel.connected) log?.warn("IPC channel to the parent is closed; dropping bus messages");
      warned ||= !channel.connected;
      return void dropped.inc({ kind });
    }
    frameBytes += bytes;
    let ok = true;
    const done = (err: Error | null) => {
      frameBytes -= bytes;
      if (!ok) congested = false;
      if (err) dropped.inc({ kind });
      else published.inc({ kind });
    };
    try {
      ok = sendFn.call(channel, message, done);
    } catch {
      // Only when the channel closed in between; the callback does not run then.
      frameBytes -= bytes;
      return void dropped.inc({ kind });
    }
    if (!ok) congested = true;
  };

  return {
    publishStats(m) {
      send("stats", { t: "stats", m });
    },
    publishEvent(m) {
      send("event", { t: "event", m });
    },
    publishFrame(camera, jpeg) {
      send("frame", { t: "frame", camera, jpeg }, jpeg.length);
    },
    hasViewers(cameraId) {
      return watching.get(cameraId) === true;
    },
    async close() {
      channel.off("message", onMessage);
      // Without message listeners the channel no longer holds the event loop open.
      if ((channel as unknown) === process) process.channel?.unref();
    },
  };
}

function defaultChannel(): IpcChannel {
  if (!process.send) throw new Error("the IPC bus needs an IPC channel: start the worker with child_process.fork");
  return process as unknown as IpcChannel;
}
