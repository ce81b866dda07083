// Assessment results as `vigil assessor` stores them in Redis (assessor/messages.ts ASSESSMENT_REDIS): HSET of the
// camera's latest, LPUSH + LTRIM of the recent lists (all cameras, and the camera's), then PUBLISH on the channel;
// the same commands and order as the assessor's store script, in one MULTI. For the gateway's and dashboard's tests,
// which stand in the assessor's place.
import type { Redis } from "ioredis";
import { type AssessmentResult, assessmentResult, ASSESSMENT_REDIS as R } from "../../assessor/messages.ts";

/** A valid result (parsed by the schema, so a test cannot build an invalid one by mistake). */
export function resultFixture(
  o: {
    camera: string;
    risk: number;
    reason?: string;
    labels?: string[];
    /** The bus event's id that caused it; none: a periodic sample. */
    eventId?: string;
    rule?: string;
    completedMs?: number;
  },
  over: Partial<AssessmentResult> = {},
): AssessmentResult {
  const done = o.completedMs ?? Date.now();
  const id = o.eventId ?? `${o.camera}:sample:${done - 800}`;
  const [namespace] = o.camera.split("/") as [string];
  return assessmentResult.parse({
    v: 1,
    type: "assessment.result",
    id,
    camera_id: o.camera,
    pool: { namespace, name: "qwen" },
    trigger: o.eventId
      ? {
          kind: "event",
          event_id: o.eventId,
          rule: o.rule ?? "entered",
          rule_kind: "presence",
          severity: "warning",
          track_id: 1,
          zone: "floor",
          detail: "person entered floor",
        }
      : { kind: "sample" },
    priority: "normal",
    risk: o.risk,
    labels: o.labels ?? ["person"],
    reason: o.reason ?? `risk ${o.risk} reason`,
    model: "qwen-vl-max",
    key_fingerprint: "1a2b3c4d",
    scope: "A",
    usage: { prompt_tokens: 900, completion_tokens: 40, total_tokens: 940 },
    attempts: 1,
    created_at: new Date(done - 800).toISOString(),
    completed_at: new Date(done).toISOString(),
    latency_ms: 800,
    alarm_id: null,
    ...over,
  });
}

/** Stores and publishes one result (or a raw entry: a malformed one), as the assessor does. */
export async function storeResult(redis: Redis, r: AssessmentResult | { camera_id: string; raw: string }) {
  const json = "raw" in r ? r.raw : JSON.stringify(r);
  await redis
    .multi()
    .hset(R.latest, r.camera_id, json)
    .lpush(R.recent, json)
    .ltrim(R.recent, 0, R.recentMax - 1)
    .lpush(R.recentOf(r.camera_id), json)
    .ltrim(R.recentOf(r.camera_id), 0, R.recentPerCameraMax - 1)
    .publish(R.channel, json)
    .exec();
}
