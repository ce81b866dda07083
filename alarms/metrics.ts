// The alarm service's metrics (issue 9 §7, the part that lives in `vigil alarms`). Labels are bounded: delivery
// type, a result from a fixed set, and a dead-letter reason *category*; the full reason text goes only into the
// dead-lettered copy's x-vigil-reason header and the record, never into a label.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { DeliveryType } from "./messages.ts";

export type DeliveryResult = "delivered" | "gone" | "exhausted" | "skipped";
export type DeadCategory =
  | "malformed"
  | "clip_never_ready"
  | "endpoint_disabled"
  | "delivery_failed"
  | "secret_missing"
  | "recorded_dead";

// Event → delivered: 50 ms to 5 min (the clip's includes the post-roll and the cut, so it starts at seconds).
const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 45, 60, 90, 120, 300];

export type AlarmMetrics = ReturnType<typeof createAlarmMetrics>;

export function createAlarmMetrics(registry: Registry, depth?: () => Promise<{ ready: number; dead: number }>) {
  const registers = [registry];
  let lastDepth: { ready: number; dead: number } | undefined;
  /** One queue look-up per scrape serves both depth gauges; a broker that does not answer leaves the last value. */
  let pending: Promise<void> | undefined;
  const refresh = () =>
    (pending ??= (async () => {
      try {
        if (depth) lastDepth = await Promise.race([depth(), timeout(2_000)]);
      } catch {
        // keep the last value
      } finally {
        setTimeout(() => {
          pending = undefined;
        }, 0);
      }
    })());

  return {
    received: new Counter({ name: "vigil_alarms_received_total", help: "Alarm deliveries handled", registers }),
    deduplicated: new Counter({
      name: "vigil_alarms_deduplicated_total",
      help: "Alarms folded into an earlier alarm of the same camera, rule and track within its dedup window",
      registers,
    }),
    deliveries: new Counter({
      name: "vigil_alarm_deliveries_total",
      help: "Webhook deliveries by type and result (delivered, gone: 410, exhausted: retry budget spent, skipped: no webhook)",
      labelNames: ["type", "result"] as const,
      registers,
    }),
    repeats: new Counter({
      name: "vigil_alarm_webhook_repeats_total",
      help: "Webhook sends that may repeat one the receiver already got (same webhook-id): after a crash mid-request or before the step was recorded",
      labelNames: ["type"] as const,
      registers,
    }),
    retries: new Counter({
      name: "vigil_alarm_webhook_retries_total",
      help: "Webhook attempts after the first of a send",
      labelNames: ["type"] as const,
      registers,
    }),
    attempts: new Counter({
      name: "vigil_alarm_webhook_attempts_total",
      help: "Webhook HTTP attempts by type and status class (2xx, 4xx, 5xx, error)",
      labelNames: ["type", "status"] as const,
      registers,
    }),
    latency: {
      "alarm.raised": new Histogram({
        name: "vigil_alarm_raised_latency_seconds",
        help: "From the event to alarm.raised delivered",
        buckets: LATENCY_BUCKETS,
        registers,
      }),
      "alarm.clip": new Histogram({
        name: "vigil_alarm_clip_latency_seconds",
        help: "From the event to alarm.clip delivered",
        buckets: LATENCY_BUCKETS,
        registers,
      }),
    } satisfies Record<DeliveryType, Histogram>,
    deadLettered: new Counter({
      name: "vigil_alarms_dead_lettered_total",
      help: "Alarms sent to the dead-letter queue, by reason category",
      labelNames: ["reason"] as const,
      registers,
    }),
    requeued: new Counter({
      name: "vigil_alarms_requeued_total",
      help: "Deliveries handed back to the queue after a long hold (database down, webhook Secret missing)",
      registers,
    }),
    dbRetries: new Counter({
      name: "vigil_alarms_record_retries_total",
      help: "Record operations tried again after a database error",
      registers,
    }),
    inflight: new Gauge({ name: "vigil_alarms_in_flight", help: "Alarm deliveries being handled", registers }),
    waitingSecret: new Gauge({
      name: "vigil_alarms_waiting_for_secret",
      help: "Alarms held because their webhook Secret is missing",
      registers,
    }),
    dlqDepth: new Gauge({
      name: "vigil_alarms_dlq_depth",
      help: "Messages in the dead-letter queue",
      registers,
      async collect() {
        await refresh();
        if (lastDepth) this.set(lastDepth.dead);
      },
    }),
    queueDepth: new Gauge({
      name: "vigil_alarms_queue_ready",
      help: "Alarm messages ready in the queue (not yet delivered to a consumer)",
      registers,
      async collect() {
        await refresh();
        if (lastDepth) this.set(lastDepth.ready);
      },
    }),
  };
}

function timeout(ms: number): Promise<never> {
  return new Promise((_, reject) => setTimeout(() => reject(new Error("timed out")), ms).unref());
}
