// The assessor's core loop, between the task queue (amqp/consumer.ts) and the key pools: every delivery is
// validated, checked against its done marker and put in its pool's scheduler (schedule/drr.ts); up to
// `concurrency` tasks per pool are with the key pool at once; each outcome settles its delivery:
//   ok       → the result published (confirmed) to `result.<camera>`, the alarm it raises published (confirmed) to
//              the alarm exchange, the result stored in Redis with its done marker (one atomic script), then the ack
//              — last, so a crash anywhere before leaves the task to be redelivered, and the marker absorbs a repeat
//   dead     → a copy in the DLQ with x-vigil-reason (confirmed), then the ack
//   stale, budget, dropped-overflow → counted, acked
//   aborted  → left unacked: the broker gives it to another replica (shutdown)
// The prefetch is large, so the queue drains into the scheduler: fairness, the per-camera bound and deadlines act
// here, where the cameras are visible, not in RabbitMQ's FIFO.
import type { Logger } from "pino";
import { ALARM_TOPOLOGY, type AlarmMessage, alarmRoutingKey } from "../alarms/messages.ts";
import type { TaskDelivery } from "./amqp/consumer.ts";
import {
  ASSESSMENT_MESSAGE_VERSION,
  ASSESSMENT_TOPOLOGY,
  type AssessmentResult,
  type AssessmentTask,
  assessmentResult,
  assessmentTask,
  resultRoutingKey,
} from "./messages.ts";
import type { AssessorMetrics } from "./metrics.ts";
import type { AssessOutcome, KeyPool } from "./pool/types.ts";
import type { ResultsStore } from "./results-store.ts";
import { type Dropped, DrrScheduler, type Scheduled } from "./schedule/drr.ts";
import { SlidingCounts } from "./schedule/fairness.ts";

/** The alarm a result raises, or null (assessor/raise-alarm.ts). */
export type AlarmOf = (task: AssessmentTask, result: AssessmentResult) => AlarmMessage | null;

export type PoolHandle = { pool: KeyPool; maxTasksPerCamera: number };

export type ServiceOptions = {
  log: Logger;
  metrics: AssessorMetrics;
  results: ResultsStore;
  /** The pool a task names, or undefined (its task is dead-lettered). */
  pool(namespace: string, name: string): PoolHandle | undefined;
  alarmOf?: AlarmOf;
  /** Tasks per pool with the key pool at once, per replica. */
  concurrency: number;
  /** Sliding window of the fairness gauge. */
  fairnessWindowMs?: number;
  /** Tries of the result's publish and store before the task is requeued (Redis or the broker away). */
  storeAttempts?: number;
  now?: () => number;
};

type Item = { task: AssessmentTask; d: TaskDelivery };

type PoolRun = {
  key: string;
  handle: PoolHandle;
  drr: DrrScheduler<Item>;
  inFlight: number;
  done: SlidingCounts;
  asked: SlidingCounts;
};

export type AssessorService = {
  onDelivery(d: TaskDelivery): void;
  onChannelLost(channel: number): void;
  /** A pool's config changed or went away: the bound follows; a removed pool's waiting tasks are requeued. */
  refreshPools(): void;
  /** Aborts nothing: waits up to `timeoutMs` for in-flight tasks, then aborts the rest (left unacked). */
  stop(timeoutMs: number): Promise<void>;
  /** Snapshot for tests and logs. */
  stats(): Record<string, { queued: number; inFlight: number; fairness: number }>;
};

const issuesOf = (err: { issues: { path: PropertyKey[]; message: string }[] }) =>
  err.issues
    .slice(0, 5)
    .map((i) => `${i.path.map(String).join(".") || "(root)"}: ${i.message}`)
    .join("; ");

export function createAssessorService(opts: ServiceOptions): AssessorService {
  const { log, metrics, results } = opts;
  const now = opts.now ?? Date.now;
  const windowMs = opts.fairnessWindowMs ?? 60_000;
  const storeAttempts = opts.storeAttempts ?? 5;
  const runs = new Map<string, PoolRun>();
  const running = new Set<Promise<void>>();
  const abort = new AbortController();
  let stopping = false;

  const sweep = setInterval(() => {
    for (const r of runs.values()) {
      settleDropped(r, r.drr.expire(now()));
      pump(r);
    }
  }, 500);
  sweep.unref();

  function runOf(ns: string, name: string): PoolRun | undefined {
    const key = `${ns}/${name}`;
    const handle = opts.pool(ns, name);
    if (!handle) return undefined;
    let r = runs.get(key);
    if (!r) {
      const run: PoolRun = {
        key,
        handle,
        drr: new DrrScheduler<Item>({ maxPerCamera: handle.maxTasksPerCamera }),
        inFlight: 0,
        done: new SlidingCounts(windowMs),
        asked: new SlidingCounts(windowMs),
      };
      r = run;
      runs.set(key, run);
      metrics.watchPool(key, {
        queueDepth: () => run.drr.size,
        inFlight: () => run.inFlight,
        fairness: () => run.done.fairness(now(), run.asked.counts(now()).keys()),
        throughput: () => {
          let n = 0;
          for (const c of run.done.counts(now()).values()) n += c;
          return n / (windowMs / 1000);
        },
      });
    } else if (r.handle !== handle) {
      r.handle = handle;
      r.drr.setMaxPerCamera(handle.maxTasksPerCamera);
    }
    return r;
  }

  function settleDropped(r: PoolRun, dropped: Dropped<Item>[]): void {
    for (const { reason, task } of dropped) {
      metrics.task(r.key, reason);
      log.debug({ task: task.id, camera: task.cameraId, reason }, "task dropped");
      task.item.d.ack();
    }
  }

  async function reject(d: TaskDelivery, reason: "malformed" | "unknown-pool", detail: string): Promise<void> {
    metrics.rejected(reason);
    log.warn({ reason, detail, routingKey: d.routingKey }, "task dead-lettered");
    try {
      await d.dead(`${reason}: ${detail}`);
    } catch (err) {
      // Not confirmed: the task stays unacked and returns when the channel closes (never acked without the copy).
      log.warn({ err: String(err) }, "dead-letter copy not confirmed");
    }
  }

  async function admit(d: TaskDelivery): Promise<void> {
    let raw: unknown;
    try {
      raw = JSON.parse(d.body.toString("utf8"));
    } catch {
      return reject(d, "malformed", "body is not JSON");
    }
    const parsed = assessmentTask.safeParse(raw);
    if (!parsed.success) return reject(d, "malformed", issuesOf(parsed.error));
    const task = parsed.data;
    const r = runOf(task.pool.namespace, task.pool.name);
    if (!r) return reject(d, "unknown-pool", `${task.pool.namespace}/${task.pool.name}`);
    try {
      if (await results.isDone(task.id)) {
        metrics.task(r.key, "duplicate");
        d.ack();
        return;
      }
    } catch (err) {
      // Redis away: schedule it anyway; the store's own marker check keeps a repeat from being stored twice.
      log.warn({ err: String(err) }, "done marker not readable");
    }
    if (!d.live()) return;
    if (stopping) return; // left unacked: returns to the queue when the channel closes
    const s: Scheduled<Item> = {
      id: task.id,
      cameraId: task.camera_id,
      priority: task.priority,
      deadline: Date.parse(task.deadline),
      item: { task, d },
    };
    r.asked.add(task.camera_id, now());
    settleDropped(r, r.drr.push(s));
    pump(r);
  }

  function pump(r: PoolRun): void {
    while (!stopping && r.inFlight < opts.concurrency) {
      const { task, dropped } = r.drr.next(now());
      settleDropped(r, dropped);
      if (!task) return;
      if (!task.item.d.live()) continue; // its channel closed: the broker redelivers it
      r.inFlight++;
      const { d } = task.item;
      const p = execute(r, task.item)
        .catch((err) => {
          // A bug, not an outcome: the task goes back rather than being lost, and the process keeps running.
          log.error({ task: task.id, err: String(err) }, "task failed unexpectedly; requeued");
          d.requeue();
        })
        .finally(() => {
          r.inFlight--;
          running.delete(p);
          pump(r);
        });
      running.add(p);
    }
  }

  async function execute(r: PoolRun, { task, d }: Item): Promise<void> {
    let outcome: AssessOutcome;
    try {
      outcome = await r.handle.pool.assess(task, abort.signal);
    } catch (err) {
      // The contract says assess never throws; if it does, the task goes back rather than being lost.
      log.error({ task: task.id, err: String(err) }, "key pool threw; task requeued");
      d.requeue();
      return;
    }
    switch (outcome.kind) {
      case "ok":
        return complete(r, task, d, outcome);
      case "dead":
        metrics.task(r.key, "dead");
        log.warn({ task: task.id, reason: outcome.reason, attempts: outcome.attempts }, "task to the DLQ");
        try {
          await d.dead(outcome.reason);
        } catch (err) {
          log.warn({ task: task.id, err: String(err) }, "dead-letter copy not confirmed; the task returns");
        }
        return;
      case "stale":
        metrics.task(r.key, "dropped-stale");
        d.ack();
        return;
      case "budget":
        metrics.task(r.key, "budget");
        d.ack();
        return;
      case "aborted":
        return; // unacked on purpose
    }
  }

  async function complete(
    r: PoolRun,
    task: AssessmentTask,
    d: TaskDelivery,
    o: Extract<AssessOutcome, { kind: "ok" }>,
  ): Promise<void> {
    const done = now();
    const created = Date.parse(task.created_at);
    const result: AssessmentResult = {
      v: ASSESSMENT_MESSAGE_VERSION,
      type: "assessment.result",
      id: task.id,
      camera_id: task.camera_id,
      pool: task.pool,
      trigger: task.trigger,
      priority: task.priority,
      risk: o.answer.risk,
      labels: o.answer.labels,
      reason: o.answer.reason,
      model: o.model,
      key_fingerprint: o.fingerprint,
      scope: o.scope,
      usage: o.usage,
      attempts: o.attempts,
      created_at: task.created_at,
      completed_at: new Date(done).toISOString(),
      latency_ms: Math.max(0, done - created),
      alarm_id: null,
    };
    // TODO(h11-results): the call site of assessor/raise-alarm.ts `alarmOfResult`, injected by main.ts.
    const alarm = opts.alarmOf?.(task, result) ?? null;
    result.alarm_id = alarm?.id ?? null;
    const checked = assessmentResult.safeParse(result);
    if (!checked.success) {
      metrics.task(r.key, "dead");
      await d.dead(`result failed its schema: ${issuesOf(checked.error)}`).catch(() => {});
      return;
    }
    const body = Buffer.from(JSON.stringify(checked.data));
    for (let attempt = 1; ; attempt++) {
      try {
        await d.publish(ASSESSMENT_TOPOLOGY.exchange, resultRoutingKey(task.camera_id), body, {
          messageId: task.id,
          type: "assessment.result",
        });
        if (alarm)
          await d.publish(
            ALARM_TOPOLOGY.exchange,
            alarmRoutingKey(alarm.camera_id),
            Buffer.from(JSON.stringify(alarm)),
            {
              messageId: alarm.id,
              type: "alarm",
            },
          );
        const fresh = await results.store(checked.data);
        metrics.task(r.key, fresh ? "ok" : "duplicate");
        if (fresh) {
          r.done.add(task.camera_id, done);
          metrics.latency(r.key, result.latency_ms / 1000);
        }
        d.ack();
        return;
      } catch (err) {
        if (!d.live()) return; // the channel went: redelivered, and the marker (if set) acks the repeat
        if (attempt >= storeAttempts || stopping) {
          log.warn({ task: task.id, err: String(err) }, "result not published or stored; task requeued");
          d.requeue();
          return;
        }
        await new Promise((res) => setTimeout(res, Math.min(5_000, 250 * 2 ** attempt)));
      }
    }
  }

  return {
    onDelivery(d) {
      const p = admit(d).catch((err) => log.error({ err: String(err) }, "task not admitted"));
      running.add(p);
      p.finally(() => running.delete(p));
    },
    onChannelLost(channel) {
      for (const r of runs.values()) r.drr.removeWhere((t) => t.item.d.channel === channel);
    },
    refreshPools() {
      for (const [key, r] of runs) {
        const [ns, name] = key.split("/") as [string, string];
        const handle = opts.pool(ns, name);
        if (handle) {
          if (handle !== r.handle) {
            r.handle = handle;
            r.drr.setMaxPerCamera(handle.maxTasksPerCamera);
          }
          continue;
        }
        // The pool is gone: its waiting tasks go back to the queue (for a replica that still has it, or the DLQ
        // once the delivery limit is spent); in-flight ones finish on the pool object they hold.
        for (const t of r.drr.drain()) t.item.d.requeue();
        if (r.inFlight === 0) {
          runs.delete(key);
          metrics.forgetPool(key);
        }
      }
    },
    async stop(timeoutMs) {
      stopping = true;
      clearInterval(sweep);
      // What waits in the schedulers was never sent: it stays unacked and returns when the channel closes.
      for (const r of runs.values()) r.drr.drain();
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<void>((res) => {
        timer = setTimeout(res, timeoutMs);
      });
      await Promise.race([Promise.allSettled([...running]), timedOut]);
      clearTimeout(timer);
      if (running.size > 0) {
        log.warn({ inFlight: running.size }, "shutdown: aborting tasks still in flight (left unacked)");
        abort.abort();
        await Promise.race([Promise.allSettled([...running]), new Promise((res) => setTimeout(res, 2_000))]);
      }
    },
    stats() {
      const out: Record<string, { queued: number; inFlight: number; fairness: number }> = {};
      for (const [key, r] of runs)
        out[key] = {
          queued: r.drr.size,
          inFlight: r.inFlight,
          fairness: r.done.fairness(now(), r.asked.counts(now()).keys()),
        };
      return out;
    },
  };
}
