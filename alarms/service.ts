// The alarm service's handler: one call per queue delivery, returning how to settle it. It parses the message,
// admits the alarm (idempotency and dedup, one transaction in the records), then runs the state machine
// (state.ts) step by step: each step is recorded before the next is asked for, so a redelivered message resumes
// where the last try stopped, and the message is acked only after the final commit.
//
// What waits, and for how long (all below RabbitMQ's 30 min consumer timeout, after which it takes the delivery
// back): a database that fails is retried with backoff, never acked meanwhile; a missing webhook Secret holds
// the alarm, re-read every few seconds; either hold ends in a requeue after `holdMs`. The clip is waited for
// until its window's end plus a grace, then the alarm is dead-lettered. A webhook is retried inside its budget
// (webhook/deliver.ts), then dead-lettered with the last error; a 410 disables the endpoint.
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { parseCameraId } from "../worker/publish/camera-id.ts";
import type { CameraEvents } from "./camera-events.ts";
import { type ClipStore, readClipMeta } from "./clips/store.ts";
import { ALARM_TOPOLOGY, type AlarmMessage, alarmMessage, type DeliveryType } from "./messages.ts";
import type { AlarmMetrics, DeadCategory } from "./metrics.ts";
import type { Delivery, Outcome } from "./queue.ts";
import type { AlarmRecord, AlarmRecords, AlarmStep } from "./records.ts";
import { isRepeat, nextAction } from "./state.ts";
import { backoffDelay, type RetryBudget } from "./webhook/backoff.ts";
import { type DeliverOptions, type DeliverResult, deliver as httpDeliver } from "./webhook/deliver.ts";
import { clipPayload, raisedPayload } from "./webhook/payload.ts";
import type { WebhookSecretSource, WebhookTarget } from "./webhook-secrets.ts";

/**
 * Where a test may make the service die as `kill -9` would (process.kill(pid, SIGKILL)), set by
 * VIGIL_ALARMS_TEST_CRASH_AT: right after the receiver accepted alarm.raised (nothing of it recorded yet), while
 * waiting for the clip, right after the receiver accepted alarm.clip (before its step and the final commit).
 * A signal from outside could not land at these exact points; nothing else in the service reads it.
 */
export const CRASH_POINTS = ["raised-sent", "clip-wait", "clip-sent"] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

export type AlarmServiceConfig = {
  /** How long past the clip window's end (event + post-roll) the clip may take to appear. */
  clipGraceMs: number;
  /** How often the store is asked for the clip while waiting. */
  clipPollMs: number;
  /** How often a missing webhook Secret is read again while its alarm waits. */
  secretRecheckMs: number;
  /** The longest one delivery is held (database down, Secret missing) before it is requeued. */
  holdMs: number;
  /** How long a replica's claim on an alarm lasts without renewal (a crashed replica's alarms wait this long). */
  claimMs: number;
  /** The queue's delivery limit: a held alarm on its last delivery is dead-lettered instead of requeued. */
  deliveryLimit: number;
  budget: Partial<RetryBudget>;
  crashAt?: CrashPoint;
};

export const DEFAULT_SERVICE_CONFIG: AlarmServiceConfig = {
  clipGraceMs: 90_000,
  clipPollMs: 500,
  secretRecheckMs: 5_000,
  holdMs: 20 * 60_000,
  claimMs: 15_000,
  deliveryLimit: ALARM_TOPOLOGY.deliveryLimit,
  budget: {},
};

export type AlarmServiceDeps = {
  records: AlarmRecords;
  store: ClipStore;
  secrets: WebhookSecretSource;
  events: CameraEvents;
  metrics: AlarmMetrics;
  log: Logger;
  config?: Partial<AlarmServiceConfig>;
  /** The webhook edge; webhook/deliver.ts unless a benchmark wraps it. */
  deliver?: (o: DeliverOptions) => Promise<DeliverResult>;
};

export type AlarmService = {
  handle(d: Delivery): Promise<Outcome>;
  /** Ends every wait at once: handlers in flight return `abandon` (unsettled) at their next step. */
  stop(): void;
  /** This replica's name in alarm claims. */
  readonly owner: string;
};

/** Unwinds a handler to how its delivery is settled. */
class Settle extends Error {
  readonly outcome: Outcome;
  constructor(outcome: Outcome) {
    super(outcome.kind);
    this.outcome = outcome;
  }
}
/** The alarm is dead: recorded so, then dead-lettered. */
class Dead extends Error {
  readonly category: DeadCategory;
  constructor(reason: string, category: DeadCategory) {
    super(reason);
    this.category = category;
  }
}

/** The message, or why it is not one: the field and what is wrong with it. */
export function parseAlarm(body: Buffer): { ok: true; value: AlarmMessage } | { ok: false; reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(body.toString("utf8"));
  } catch {
    return { ok: false, reason: "malformed alarm message: not JSON" };
  }
  const r = alarmMessage.safeParse(json);
  if (r.success) return { ok: true, value: r.data };
  const issues = r.error.issues.slice(0, 5).map((i) => `${i.path.join(".") || "(message)"}: ${i.message}`);
  return { ok: false, reason: `malformed alarm message: ${issues.join("; ")}` };
}

const STEP_OF: Record<DeliveryType, AlarmStep> = { "alarm.raised": "raised_delivered", "alarm.clip": "clip_delivered" };
const STEP_FIELD = {
  raised_delivered: "raised_delivered_ms",
  clip_ready: "clip_ready_ms",
  clip_delivered: "clip_delivered_ms",
  completed: "completed_ms",
} as const satisfies Record<AlarmStep, keyof AlarmRecord>;

const errText = (err: unknown) => (err instanceof Error ? err.message : String(err));

export function createAlarmService(deps: AlarmServiceDeps): AlarmService {
  const cfg: AlarmServiceConfig = { ...DEFAULT_SERVICE_CONFIG, ...deps.config };
  const { records, store, secrets, events, metrics, log } = deps;
  const send = deps.deliver ?? httpDeliver;
  const owner = `${process.pid}-${randomUUID().slice(0, 8)}`;
  const stopping = new AbortController();
  /** One handler per alarm id in this process: a redelivery waits for the copy already being handled. */
  const running = new Map<string, Promise<unknown>>();

  type Ctx = { m: AlarmMessage; d: Delivery; holdUntil: number };

  const crash = (at: CrashPoint) => {
    if (cfg.crashAt !== at) return;
    log.fatal({ at }, "VIGIL_ALARMS_TEST_CRASH_AT: killing this process (fault injection)");
    process.kill(process.pid, "SIGKILL");
  };

  /** Waits `ms`, or unwinds to `abandon` when the service stops. */
  const pause = async (ms: number) => {
    try {
      await sleep(ms, undefined, { signal: stopping.signal });
    } catch {
      throw new Settle({ kind: "abandon" });
    }
  };

  /**
   * A held delivery past its hold goes back to the queue, or, given a category, to the DLQ on its last allowed
   * delivery (a database that is down cannot record that: its alarms are requeued, and the queue's own limit
   * dead-letters them).
   */
  const holdExpired = (ctx: Ctx, why: string, category?: DeadCategory) => {
    if (Date.now() < ctx.holdUntil) return;
    if (category && ctx.d.deliveryCount + 1 >= cfg.deliveryLimit)
      throw new Dead(`${why}, through ${cfg.deliveryLimit} deliveries`, category);
    log.warn({ alarm: ctx.m.id, why }, "alarm held too long; requeued");
    metrics.requeued.inc();
    throw new Settle({ kind: "requeue" });
  };

  /** A records call, retried with backoff while the database fails; never given up on while held. */
  async function db<T>(ctx: Ctx, what: string, fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      if (stopping.signal.aborted) throw new Settle({ kind: "abandon" });
      try {
        return await fn();
      } catch (err) {
        if ((err as { retryable?: unknown }).retryable === false) throw err;
        metrics.dbRetries.inc();
        if (attempt === 1 || attempt % 10 === 0)
          log.warn({ alarm: ctx.m.id, what, attempt, err: errText(err) }, "alarm records unavailable; retrying");
        holdExpired(ctx, `records unavailable (${errText(err)})`);
        await pause(backoffDelay(attempt, { initialDelayMs: 250, maxDelayMs: 5_000, jitter: "equal" }, Math.random));
      }
    }
  }

  /** The webhook target of the alarm's camera, waiting while its Secret is missing. */
  async function target(ctx: Ctx, secretName: string): Promise<WebhookTarget> {
    const { namespace } = parseCameraId(ctx.m.camera_id);
    let held = false;
    try {
      for (;;) {
        const t = await secrets.get(namespace, secretName).catch((err) => ({ missing: errText(err) }));
        if (!("missing" in t)) return t;
        events.warn(
          ctx.m.camera_id,
          "WebhookSecretMissing",
          `webhook Secret ${namespace}/${secretName}: ${t.missing}; alarms of this camera wait until it is there`,
        );
        if (!held) {
          held = true;
          metrics.waitingSecret.inc();
          log.warn({ alarm: ctx.m.id, secret: `${namespace}/${secretName}`, why: t.missing }, "alarm waits for Secret");
        }
        holdExpired(ctx, `webhook Secret ${namespace}/${secretName} missing`, "secret_missing");
        await pause(cfg.secretRecheckMs);
      }
    } finally {
      if (held) metrics.waitingSecret.dec();
    }
  }

  /** Sends one delivery type until it lands; throws Dead or Settle otherwise. */
  async function deliverType(ctx: Ctx, rec: AlarmRecord, type: DeliveryType): Promise<void> {
    const { m } = ctx;
    if (!m.webhook_secret) {
      // A camera with spec.alarm and no webhook: alarms are recorded (the dashboard shows them), not pushed.
      metrics.deliveries.inc({ type, result: "skipped" });
      return;
    }
    const t = await target(ctx, m.webhook_secret);
    const disabled = await db(ctx, "endpointDisabled", () => records.endpointDisabled(t.endpoint));
    if (disabled !== undefined)
      throw new Dead(`endpoint disabled (410): ${m.webhook_secret} answered 410 Gone earlier`, "endpoint_disabled");
    const earlier = (await db(ctx, "attempts", () => records.attempts(m.id))).filter((a) => a.type === type);
    if (isRepeat(earlier)) {
      metrics.repeats.inc({ type });
      log.info({ alarm: m.id, type }, "sending again what the receiver may have (same webhook-id)");
    }
    // The clip's real start and length, as the worker measured them (ClipMeta); the nominal window otherwise.
    const meta = type === "alarm.clip" ? await readClipMeta(store, rec.clip_key) : undefined;
    const body =
      type === "alarm.raised"
        ? raisedPayload(m)
        : clipPayload(m, {
            readyMs: rec.clip_ready_ms ?? Date.now(),
            startMs: meta?.start_ms ?? rec.event_ms - rec.pre_seconds * 1000,
            durationSeconds: meta?.duration_s ?? Math.max(0.001, rec.pre_seconds + rec.post_seconds),
          });
    const r = await send({
      url: t.url,
      secret: t.secret,
      type,
      alarmId: m.id,
      body,
      budget: cfg.budget,
      signal: stopping.signal,
      hooks: {
        onAttemptStart: async (a) => {
          if (a.attempt > 1) metrics.retries.inc({ type });
          return db(ctx, "startAttempt", () =>
            records.startAttempt({ alarm_id: m.id, type, webhook_id: a.webhook_id, started_ms: a.started_ms }),
          );
        },
        onAttemptEnd: async (id, e) => {
          const cls = e.status_code === null ? "error" : `${Math.floor(e.status_code / 100)}xx`;
          metrics.attempts.inc({ type, status: cls });
          if (e.status_code !== null && e.status_code >= 200 && e.status_code < 300)
            crash(type === "alarm.raised" ? "raised-sent" : "clip-sent");
          // Aborted mid-request (stopping): left unfinished on purpose, the next send counts as a repeat.
          if (e.error === "aborted") return;
          await db(ctx, "finishAttempt", () => records.finishAttempt(id, e));
        },
      },
    });
    if (r.result === "aborted") throw new Settle({ kind: "abandon" });
    metrics.deliveries.inc({ type, result: r.result });
    if (r.result === "delivered") {
      metrics.latency[type].observe(Math.max(0, Date.now() - rec.event_ms) / 1000);
      return;
    }
    if (r.result === "gone") {
      await db(ctx, "disableEndpoint", () =>
        records.disableEndpoint(t.endpoint, `410 Gone to ${type} of ${m.id}`, Date.now()),
      );
      const { namespace } = parseCameraId(m.camera_id);
      events.warn(
        m.camera_id,
        "WebhookEndpointDisabled",
        `the webhook of Secret ${namespace}/${m.webhook_secret} answered 410 Gone: disabled until its url changes; alarms are dead-lettered meanwhile`,
      );
      throw new Dead("endpoint disabled (410)", "endpoint_disabled");
    }
    throw new Dead(
      `${type} not delivered (${r.exhaustedBy ?? `${r.attempts} attempts`}): ${r.lastError ?? "no answer"}`,
      "delivery_failed",
    );
  }

  /** Polls the store until the clip is there or `untilMs`. */
  async function waitClip(until: number, key: string): Promise<void> {
    for (;;) {
      crash("clip-wait");
      await pause(Math.max(0, Math.min(cfg.clipPollMs, until - Date.now())));
      if (await clipPresent(key)) return;
      if (Date.now() >= until) return;
    }
  }

  const clipPresent = async (key: string) => (await store.stat(key).catch(() => undefined)) !== undefined;

  async function step(ctx: Ctx, rec: AlarmRecord, s: AlarmStep): Promise<AlarmRecord> {
    const at = Date.now();
    await db(ctx, `markStep ${s}`, () => records.markStep(rec.id, s, at));
    return { ...rec, [STEP_FIELD[s]]: at, ...(s === "completed" ? { status: "delivered" as const } : {}) };
  }

  /** Holds this replica's claim on the alarm, renewed while it works; another replica's live claim waits. */
  async function claim(ctx: Ctx): Promise<() => void> {
    const { claim: take, release } = records;
    if (!take) return () => {};
    const id = ctx.m.id;
    for (;;) {
      if (await db(ctx, "claim", () => take.call(records, id, owner, Date.now(), cfg.claimMs))) break;
      // Another replica has a copy of this alarm (published twice): it delivers; this copy is acked once the
      // record says it is complete, or taken over if that replica dies and its claim runs out.
      const rec = await db(ctx, "get", () => records.get(id));
      if (rec && (rec.completed_ms !== null || rec.status === "dead")) return () => {};
      holdExpired(ctx, "claimed by another replica", "delivery_failed");
      await pause(Math.min(1_000, cfg.claimMs / 3));
    }
    const timer = setInterval(
      () => {
        take.call(records, id, owner, Date.now(), cfg.claimMs).catch(() => {});
      },
      Math.max(100, Math.floor(cfg.claimMs / 3)),
    );
    return () => {
      clearInterval(timer);
      release?.call(records, id, owner).catch(() => {});
    };
  }

  async function run(ctx: Ctx): Promise<Outcome> {
    const { m } = ctx;
    const admitted = await db(ctx, "admit", () => records.admit(m, Date.now()));
    if (admitted.kind === "duplicate") {
      metrics.deduplicated.inc();
      log.info({ alarm: m.id, of: admitted.of }, "deduplicated");
      return { kind: "ack" };
    }
    const unclaim = await claim(ctx);
    try {
      // After a wait for another replica's claim, the record may have moved on: read it fresh.
      let rec = (await db(ctx, "get", () => records.get(m.id))) ?? admitted.record;
      for (;;) {
        const waiting = rec.raised_delivered_ms !== null && rec.clip_ready_ms === null;
        const a = nextAction(rec, {
          nowMs: Date.now(),
          clipPresent: waiting && (await clipPresent(rec.clip_key)),
          clipGraceMs: cfg.clipGraceMs,
        });
        try {
          switch (a.kind) {
            case "deliver-raised":
              await deliverType(ctx, rec, "alarm.raised");
              rec = await step(ctx, rec, STEP_OF["alarm.raised"]);
              break;
            case "wait-clip":
              await waitClip(a.untilMs, rec.clip_key);
              break;
            case "clip-ready":
              rec = await step(ctx, rec, "clip_ready");
              break;
            case "deliver-clip":
              await deliverType(ctx, rec, "alarm.clip");
              rec = await step(ctx, rec, STEP_OF["alarm.clip"]);
              break;
            case "complete":
              rec = await step(ctx, rec, "completed");
              log.info({ alarm: m.id, ms: Date.now() - rec.event_ms }, "alarm delivered");
              break;
            case "ack":
              return { kind: "ack" };
            case "dead":
              throw new Dead(a.reason, rec.status === "dead" ? "recorded_dead" : "clip_never_ready");
          }
        } catch (err) {
          if (!(err instanceof Dead)) throw err;
          if (rec.status !== "dead") await db(ctx, "markDead", () => records.markDead(m.id, err.message, Date.now()));
          metrics.deadLettered.inc({ reason: err.category });
          log.warn({ alarm: m.id, reason: err.message }, "alarm dead-lettered");
          return { kind: "dead", reason: err.message };
        }
      }
    } finally {
      unclaim();
    }
  }

  async function handle(d: Delivery): Promise<Outcome> {
    metrics.received.inc();
    const parsed = parseAlarm(d.body);
    if (!parsed.ok) {
      metrics.deadLettered.inc({ reason: "malformed" });
      log.warn({ reason: parsed.reason, bytes: d.body.length }, "alarm message dead-lettered");
      return { kind: "dead", reason: parsed.reason };
    }
    const m = parsed.value;
    const ctx: Ctx = { m, d, holdUntil: Date.now() + cfg.holdMs };
    const before = running.get(m.id);
    const mine = (before ?? Promise.resolve())
      .catch(() => {})
      .then(() => {
        ctx.holdUntil = Date.now() + cfg.holdMs;
        return run(ctx);
      });
    running.set(m.id, mine);
    metrics.inflight.inc();
    try {
      return await mine;
    } catch (err) {
      if (err instanceof Settle) return err.outcome;
      if (err instanceof Dead) return { kind: "dead", reason: err.message };
      log.error({ alarm: m.id, err: errText(err) }, "alarm handling failed; requeued");
      return stopping.signal.aborted ? { kind: "abandon" } : { kind: "requeue" };
    } finally {
      metrics.inflight.dec();
      if (running.get(m.id) === mine) running.delete(m.id);
    }
  }

  return { handle, stop: () => stopping.abort(), owner };
}
