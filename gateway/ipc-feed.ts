// The parent side of the single-host bus: workers forked by `vigil up` (serialization "advanced") send stats,
// events and JPEG frames over their IPC channel; this validates each message like the Redis feed does (the
// shared zod schemas), drops what does not parse with a metric, and forwards viewers' watches to every worker.
import type { ChildProcess } from "node:child_process";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { cameraIdProblem } from "../worker/publish/camera-id.ts";
import { eventMessage, statsMessage } from "../worker/publish/messages.ts";
import type { BusFeed, FeedHandlers } from "./feed.ts";

export type IpcFeed = BusFeed & {
  /** Starts reading a forked worker's messages and sends it the current watches. */
  attach(child: ChildProcess): void;
  /** Stops reading it (also done on its own when the child exits). */
  detach(child: ChildProcess): void;
  /** Children attached now. */
  attached(): number;
};

export type IpcFeedOptions = {
  /** Where vigil_gateway_malformed_total{channel="ipc"} is registered. */
  registry?: Registry;
  log?: Logger;
  /** Whether any camera is expected at all; with none the feed is ready without a worker. */
  hasCameras?: () => boolean;
};

const MALFORMED = "vigil_gateway_malformed_total";

export function createIpcFeed(opts: IpcFeedOptions = {}): IpcFeed {
  const { log } = opts;
  // The gateway may register the same counter for its Redis channels: share it then.
  const existing = opts.registry?.getSingleMetric(MALFORMED);
  const malformed =
    (existing as Counter<"channel"> | undefined) ??
    new Counter({
      name: MALFORMED,
      help: "Bus messages the gateway dropped because they did not parse",
      labelNames: ["channel"],
      registers: opts.registry ? [opts.registry] : [],
    });
  const handlers: FeedHandlers[] = [];
  const children = new Map<ChildProcess, { message: (m: unknown) => void; gone: () => void }>();
  const watched = new Set<string>();
  let closed = false;

  const reject = (why: string) => {
    malformed.inc({ channel: "ipc" });
    log?.warn({ channel: "ipc", why }, "malformed bus message dropped");
  };
  const each = (fn: (h: FeedHandlers) => void) => {
    for (const h of handlers)
      try {
        fn(h);
      } catch (err) {
        log?.error({ err: (err as Error).message }, "bus feed handler failed");
      }
  };

  function onMessage(raw: unknown): void {
    if (closed) return;
    const m = raw as { t?: unknown; m?: unknown; camera?: unknown; jpeg?: unknown } | null;
    if (typeof m !== "object" || m === null) return void reject("not an object");
    if (m.t === "stats") {
      const r = statsMessage.safeParse(m.m);
      if (!r.success) return void reject(`stats: ${r.error.issues[0]?.path.join(".")}: ${r.error.issues[0]?.message}`);
      return void each((h) => h.stats?.(r.data));
    }
    if (m.t === "event") {
      const r = eventMessage.safeParse(m.m);
      if (!r.success) return void reject(`event: ${r.error.issues[0]?.path.join(".")}: ${r.error.issues[0]?.message}`);
      return void each((h) => h.event?.(r.data));
    }
    if (m.t === "frame") {
      if (typeof m.camera !== "string") return void reject("frame: no camera id");
      const problem = cameraIdProblem(m.camera);
      if (problem) return void reject(`frame: ${problem}`);
      if (!(m.jpeg instanceof Uint8Array) || m.jpeg.length === 0) return void reject("frame: no JPEG bytes");
      const jpeg = Buffer.isBuffer(m.jpeg) ? m.jpeg : Buffer.from(m.jpeg.buffer, m.jpeg.byteOffset, m.jpeg.length);
      const camera = m.camera;
      return void each((h) => h.frame?.(camera, jpeg));
    }
    // A worker's answer to a pause (worker/paused-cameras.ts): read by the local executor, not a bus message.
    if (m.t === "paused") return;
    reject(`unknown type ${String(m.t)}`);
  }

  function sendWatch(child: ChildProcess, camera: string, watching: boolean): void {
    if (!child.connected) return;
    try {
      // With a callback a failed send is reported there instead of as an 'error' event on the child.
      child.send({ t: "watch", camera, watching }, (err) => {
        if (err) log?.debug({ pid: child.pid, err: err.message }, "watch not delivered");
      });
    } catch {
      // The channel closed in between; the child's exit detaches it.
    }
  }

  const detach = (child: ChildProcess) => {
    const entry = children.get(child);
    if (!entry) return;
    children.delete(child);
    child.off("message", entry.message);
    child.off("exit", entry.gone);
    child.off("disconnect", entry.gone);
  };

  return {
    on(h) {
      handlers.push(h);
    },
    // Like the Redis feed's subscription: a state per camera (the gateway counts its viewers), not a counter.
    watch(camera, watching) {
      if (watching === watched.has(camera)) return;
      if (watching) watched.add(camera);
      else watched.delete(camera);
      for (const child of children.keys()) sendWatch(child, camera, watching);
    },
    ready() {
      return !closed && (children.size > 0 || !(opts.hasCameras?.() ?? true));
    },
    attach(child) {
      if (closed || children.has(child)) return;
      const entry = { message: onMessage, gone: () => detach(child) };
      children.set(child, entry);
      child.on("message", entry.message);
      child.once("exit", entry.gone);
      child.once("disconnect", entry.gone);
      // Messages sent before the worker listens are queued by Node until it does.
      for (const camera of watched) sendWatch(child, camera, true);
    },
    detach,
    attached: () => children.size,
    async close() {
      closed = true;
      for (const child of [...children.keys()]) detach(child);
      handlers.length = 0;
    },
  };
}
