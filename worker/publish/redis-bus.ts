// Publishing to Redis without ever stalling detection: no offline queue (a command fails at once while Redis
// is down), every failure is a dropped message counted in a metric, and ioredis reconnects in the background.
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import { CHANNELS, type EventMessage, type StatsMessage } from "./messages.ts";

export type Bus = {
  publishStats(m: StatsMessage): void;
  publishEvent(m: EventMessage): void;
  publishFrame(cameraId: string, jpeg: Buffer): void;
  /** Whether anyone watches a camera's video (cached for a second; checked before encoding frames). */
  hasViewers(cameraId: string): boolean;
  close(): Promise<void>;
};

export function createRedisBus(url: string, registry: Registry, log?: Logger): Bus {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    lazyConnect: false,
    retryStrategy: (times) => Math.min(200 * 2 ** times, 5000),
  });
  let lastError = "";
  redis.on("error", (err) => {
    if (err.message !== lastError) log?.warn({ err: err.message }, "redis unavailable; dropping bus messages");
    lastError = err.message;
  });
  redis.on("ready", () => {
    if (lastError) log?.info("redis reconnected");
    lastError = "";
  });
  const published = new Counter({
    name: "vigil_bus_published_total",
    help: "Messages published to Redis",
    labelNames: ["kind"],
    registers: [registry],
  });
  const dropped = new Counter({
    name: "vigil_bus_dropped_total",
    help: "Messages dropped because Redis was unavailable",
    labelNames: ["kind"],
    registers: [registry],
  });
  const connected = new Gauge({
    name: "vigil_bus_connected",
    help: "1 while Redis is connected",
    registers: [registry],
  });
  connected.set(0);
  redis.on("ready", () => connected.set(1));
  redis.on("close", () => connected.set(0));

  const send = (kind: string, p: () => Promise<unknown>) => {
    if (redis.status !== "ready") return void dropped.inc({ kind });
    p().then(
      () => published.inc({ kind }),
      () => dropped.inc({ kind }),
    );
  };
  const viewers = new Map<string, { count: number; at: number }>();

  return {
    publishStats(m) {
      const json = JSON.stringify(m);
      send("stats", () =>
        redis.multi().publish(CHANNELS.stats, json).hset(CHANNELS.latestStats, m.camera_id, json).exec(),
      );
    },
    publishEvent(m) {
      send("event", () => redis.publish(CHANNELS.events, JSON.stringify(m)));
    },
    publishFrame(cameraId, jpeg) {
      send("frame", () => redis.publish(CHANNELS.video(cameraId), jpeg));
    },
    hasViewers(cameraId) {
      const now = Date.now();
      const cached = viewers.get(cameraId);
      if (!cached || now - cached.at > 1000) {
        viewers.set(cameraId, { count: cached?.count ?? 0, at: now });
        if (redis.status === "ready")
          redis.pubsub("NUMSUB", CHANNELS.video(cameraId)).then(
            (r) => viewers.set(cameraId, { count: Number((r as [string, number])[1] ?? 0), at: Date.now() }),
            () => undefined,
          );
      }
      return (viewers.get(cameraId)?.count ?? 0) > 0;
    },
    async close() {
      redis.disconnect();
    },
  };
}
