// The bus feed over Redis pub/sub. One subscriber connection takes hbd:stats and hbd:events, and video:{camera}
// only while someone watches that camera: workers encode frames only when PUBSUB NUMSUB shows a subscriber, so a
// pattern subscription (video:*) would be invisible to them. ioredis reconnects with backoff and resubscribes.
// Every message is validated against the workers' zod schemas; what does not parse is dropped and counted, and
// a handler that throws is logged, never allowed to take the feed down.
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import {
  CHANNELS,
  type EventMessage,
  eventMessage,
  parseMessage,
  type StatsMessage,
  statsMessage,
} from "../worker/publish/messages.ts";
import type { BusFeed, FeedHandlers } from "./feed.ts";

export type RedisFeedOptions = {
  registry: Registry;
  log?: Logger;
  /**
   * On every (re)connect, replay the hash hbd:stats:latest as stats messages, so a restarted gateway knows each
   * camera's last stats at once instead of after the next publish (default true).
   */
  replayLatestStats?: boolean;
};

const VIDEO_PREFIX = CHANNELS.video("");
const MALFORMED = "vigil_gateway_malformed_total";

export function createRedisFeed(url: string, opts: RedisFeedOptions): BusFeed {
  const { log } = opts;
  const handlers: FeedHandlers[] = [];
  // Another feed (the single-host IPC feed) may already have registered the counter in this registry: share it.
  const malformed =
    (opts.registry.getSingleMetric(MALFORMED) as Counter<"channel"> | undefined) ??
    new Counter({
      name: MALFORMED,
      help: "Bus messages dropped because they did not parse against the message schemas",
      labelNames: ["channel"],
      registers: [opts.registry],
    });
  for (const channel of [CHANNELS.stats, CHANNELS.events, "video"]) malformed.inc({ channel }, 0);

  const retryStrategy = (times: number) => Math.min(100 * 2 ** times, 5000);
  const sub = new Redis(url, { retryStrategy, maxRetriesPerRequest: null, autoResubscribe: true });
  // Plain commands (the latest-stats replay) need a connection outside subscriber mode.
  const cmd = new Redis(url, { retryStrategy, enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
  let lastError = "";
  const onError = (err: Error) => {
    if (err.message !== lastError) log?.warn({ err: err.message }, "redis unavailable; the feed reconnects");
    lastError = err.message;
  };
  sub.on("error", onError);
  cmd.on("error", onError);

  const dispatch = <K extends keyof FeedHandlers>(kind: K, ...args: Parameters<NonNullable<FeedHandlers[K]>>) => {
    for (const h of handlers) {
      const fn = h[kind] as ((...a: typeof args) => void) | undefined;
      if (!fn) continue;
      try {
        fn(...args);
      } catch (err) {
        log?.error({ err, kind }, "feed handler failed");
      }
    }
  };

  const onStats = (raw: string) => {
    const r = parseMessage(statsMessage, raw);
    if (!r.ok) {
      malformed.inc({ channel: CHANNELS.stats });
      return void log?.debug({ channel: CHANNELS.stats, error: r.error }, "malformed message dropped");
    }
    dispatch("stats", r.value as StatsMessage);
  };

  sub.on("messageBuffer", (channelBuf: Buffer, message: Buffer) => {
    const channel = channelBuf.toString();
    if (channel === CHANNELS.stats) return onStats(message.toString("utf8"));
    if (channel === CHANNELS.events) {
      const r = parseMessage(eventMessage, message.toString("utf8"));
      if (!r.ok) {
        malformed.inc({ channel: CHANNELS.events });
        return void log?.debug({ channel, error: r.error }, "malformed message dropped");
      }
      return dispatch("event", r.value as EventMessage);
    }
    if (channel.startsWith(VIDEO_PREFIX)) {
      // A JPEG starts with SOI (FF D8); anything else is not a frame.
      if (message.length < 4 || message[0] !== 0xff || message[1] !== 0xd8)
        return void malformed.inc({ channel: "video" });
      dispatch("frame", channel.slice(VIDEO_PREFIX.length), message);
    }
  });

  let connected = false;
  sub.on("ready", () => {
    connected = true;
    if (lastError) log?.info("redis reconnected");
    lastError = "";
    if (opts.replayLatestStats !== false) void replay();
  });
  sub.on("close", () => {
    connected = false;
  });

  async function replay(): Promise<void> {
    try {
      if (cmd.status === "wait") await cmd.connect();
      const latest = await cmd.hgetall(CHANNELS.latestStats);
      for (const raw of Object.values(latest)) onStats(raw);
    } catch (err) {
      log?.debug({ err: String(err) }, "latest stats not replayed");
    }
  }

  const watched = new Set<string>();
  sub.subscribe(CHANNELS.stats, CHANNELS.events).catch((err) => {
    log?.warn({ err: String(err) }, "subscribe failed");
  });

  return {
    on(h) {
      handlers.push(h);
    },
    watch(cameraId, watching) {
      const channel = CHANNELS.video(cameraId);
      if (watching === watched.has(cameraId)) return;
      if (watching) watched.add(cameraId);
      else watched.delete(cameraId);
      // Queued while disconnected; ioredis resubscribes what is subscribed on reconnect.
      const p = watching ? sub.subscribe(channel) : sub.unsubscribe(channel);
      p.catch((err: unknown) => log?.warn({ err: String(err), channel }, "video (un)subscribe failed"));
    },
    ready: () => connected,
    async close() {
      sub.disconnect();
      cmd.disconnect();
    },
  };
}
