// Assessment results from Redis, as `vigil assessor` stores them (assessor/messages.ts ASSESSMENT_REDIS): the
// hash of each camera's latest, the recent lists (all cameras, and one per camera; newest first, capped), and the
// pub/sub channel each result is published on once stored. Every entry is validated with the result schema;
// what does not parse is dropped and counted (vigil_gateway_malformed_total, by the key family it came from),
// never served and never a crash. Two connections of its own: a subscriber, and one for commands, which fail
// fast while Redis is down (the routes answer 503 then) instead of queueing behind the reconnect.
import { Redis } from "ioredis";
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import { ASSESSMENT_REDIS, type AssessmentResult, assessmentResult } from "../assessor/messages.ts";
import { parseMessage } from "../worker/publish/messages.ts";
import { type AssessmentSource, matches } from "./assessments.ts";

export type RedisAssessmentsOptions = { registry: Registry; log?: Logger };

const MALFORMED = "vigil_gateway_malformed_total";
const FROM = { channel: ASSESSMENT_REDIS.channel, recent: ASSESSMENT_REDIS.recent, latest: ASSESSMENT_REDIS.latest };
/** Result ids remembered to push each once: a result republished (a redelivered task) is not pushed twice. */
const PUSHED_IDS = 2000;

export function createRedisAssessments(url: string, opts: RedisAssessmentsOptions): AssessmentSource {
  const { log } = opts;
  // The bus feed registers the same counter for its channels: share it.
  const malformed =
    (opts.registry.getSingleMetric(MALFORMED) as Counter<"channel"> | undefined) ??
    new Counter({
      name: MALFORMED,
      help: "Bus messages dropped because they did not parse against the message schemas",
      labelNames: ["channel"],
      registers: [opts.registry],
    });
  for (const channel of Object.values(FROM)) malformed.inc({ channel }, 0);

  const retryStrategy = (times: number) => Math.min(100 * 2 ** times, 5000);
  const sub = new Redis(url, { retryStrategy, maxRetriesPerRequest: null, autoResubscribe: true });
  const cmd = new Redis(url, { retryStrategy, maxRetriesPerRequest: 0, commandTimeout: 3000 });
  let lastError = "";
  const onError = (err: Error) => {
    if (err.message !== lastError) log?.warn({ err: err.message }, "redis unavailable; assessments reconnect");
    lastError = err.message;
  };
  sub.on("error", onError);
  cmd.on("error", onError);

  const parse = (raw: string, from: keyof typeof FROM): AssessmentResult | undefined => {
    const r = parseMessage(assessmentResult, raw);
    if (r.ok) return r.value;
    malformed.inc({ channel: FROM[from] });
    log?.debug({ from: FROM[from], error: r.error }, "malformed assessment dropped");
    return undefined;
  };

  const listeners = new Set<(r: AssessmentResult) => void>();
  const pushed = new Set<string>();
  sub.on("message", (channel: string, raw: string) => {
    if (channel !== ASSESSMENT_REDIS.channel) return;
    const r = parse(raw, "channel");
    if (!r || pushed.has(r.id)) return;
    pushed.add(r.id);
    if (pushed.size > PUSHED_IDS) pushed.delete(pushed.values().next().value as string);
    for (const fn of listeners)
      try {
        fn(r);
      } catch (err) {
        log?.error({ err: String(err) }, "assessment listener failed");
      }
  });
  let connected = false;
  sub.on("ready", () => {
    connected = true;
    lastError = "";
  });
  sub.on("close", () => {
    connected = false;
  });
  sub.subscribe(ASSESSMENT_REDIS.channel).catch((err) => log?.warn({ err: String(err) }, "subscribe failed"));

  return {
    async recent(q) {
      const key = q.camera === undefined ? ASSESSMENT_REDIS.recent : ASSESSMENT_REDIS.recentOf(q.camera);
      const cap = q.camera === undefined ? ASSESSMENT_REDIS.recentMax : ASSESSMENT_REDIS.recentPerCameraMax;
      // Filters (minRisk, the served cameras) may skip entries: read pages until `limit` pass or the list ends.
      const page = Math.max(q.limit, 100);
      const out: AssessmentResult[] = [];
      const ids = new Set<string>();
      for (let start = 0; start < cap && out.length < q.limit; start += page) {
        const raws = await cmd.lrange(key, start, Math.min(cap, start + page) - 1);
        for (const raw of raws) {
          const r = parse(raw, "recent");
          // A result pushed between two pages shifts the list: its entries are seen twice then.
          if (!r || ids.has(r.id) || !matches(r, q)) continue;
          ids.add(r.id);
          out.push(r);
          if (out.length === q.limit) break;
        }
        if (raws.length < page) break;
      }
      return out;
    },
    async latest(cameraId) {
      const raw = await cmd.hget(ASSESSMENT_REDIS.latest, cameraId);
      if (raw === null) return null;
      const r = parse(raw, "latest");
      return r && r.camera_id === cameraId ? r : null;
    },
    onResult(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    ready: () => connected,
    async close() {
      listeners.clear();
      sub.disconnect();
      cmd.disconnect();
    },
  };
}
