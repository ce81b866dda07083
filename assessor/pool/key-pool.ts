// The key pool at run time: one `assess(task)` per task, from waiting for a key to the validated answer.
//
// Tasks wait in one queue per pool (alarm-priority first, then in arrival order; a retry keeps its place). One
// dispatcher loop serves the queue's head: pick a key (keys/pick.ts, with the pool's strategy; a scope has room when
// its last refused reservation said so), take the half-open probe gate when the pick is a probe (shared-state.ts),
// reserve one request and the estimated tokens on the scope's GCRA in Redis (quota/redis-quota.ts, limits × the
// scope's AIMD rate × `headroom`), then `begin` and hand the key to the task, whose own coroutine calls the model
// and settles. One loop, not one per task: at 2× overload hundreds of tasks wait, and a loop per task would wake
// them all at every free slot to race for it in Redis; here a slot costs one or two reservations.
//
// A task never goes out after its deadline (`stale`), waits while every scope cools (bounded by that deadline), is
// `dead` when every key is DISABLED, after `maxAttempts` failed calls, on a 400 or on output that stays invalid after
// one repair turn; `budget` for a periodic sample when every scope it could use is past its daily token budget.
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import type OpenAI from "openai";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { AssessmentKeyStatus } from "../../operator/api/assessment-pool.ts";
import { answerStep, repairTurn } from "../client/answer.ts";
import { type ChatMessage, callModel, clientFor, estimateTokens, taskMessages } from "../client/call.ts";
import type { Classification } from "../keys/classify.ts";
import { fingerprints, scrubKeys } from "../keys/fingerprint.ts";
import {
  begin,
  type KeyPolicy,
  keyPhase,
  keyPolicy,
  keyView,
  type Outcome,
  settle,
  type Ticket,
} from "../keys/key-state.ts";
import { freshMemory, type KeyConfig, pick } from "../keys/pick.ts";
import { ASSESSMENT_REDIS, type AssessmentTask } from "../messages.ts";
import type { Cost, Limit, Limits } from "../quota/gcra.ts";
import { RedisQuota } from "../quota/redis-quota.ts";
import { Ledger } from "./ledger.ts";
import { type PoolView, poolMetrics } from "./metrics.ts";
import { SendGuard, windowsFor } from "./send-guard.ts";
import { SharedState } from "./shared-state.ts";
import type { AssessOutcome, AssessUsage, KeyPool, PoolConfig } from "./types.ts";

export type KeyPoolOptions = {
  config: PoolConfig;
  /** Commands; the pool makes its own subscriber with `duplicate()`. Not closed by `close()`. */
  redis: Redis;
  registry: Registry;
  log: Logger;
  now?: () => number;
  random?: () => number;
  /**
   * The share of each configured limit the GCRA admits. A call reaches the provider a few ms after its
   * reservation, and not always the same few: at exactly the limit, a late call 10 places back lets the provider's
   * sliding second see 11. 0.97 leaves ~30 ms of such jitter at 10 rps.
   */
  headroom?: number;
  policy?: Partial<KeyPolicy>;
  /** How often the shared state is re-read (a missed message). */
  resyncMs?: number;
  /** Each model call once it ended (for benches and tests: the order of outcomes per scope). */
  onCall?: (c: CallRecord) => void;
};

export type CallRecord = {
  fingerprint: string;
  scope: string;
  /** ok, invalid, or the error's class (rate_limited, disabled, transient, rejected, aborted). */
  outcome: string;
  /** `now()` when the call went out, and when it ended. */
  startedAt: number;
  endedAt: number;
  taskId: string;
};

type Entry = { name: string; fingerprint: string; scope: string; apiKey: string; cfg: KeyConfig };
type ScopeLimits = { rps?: number; rpm?: number; tpm?: number };

type Grant =
  | { kind: "go"; ticket: Ticket; entry: Entry; limits: Limits /** Hold the call until then. */; sendAt: number }
  | { kind: "none"; reason: string }
  | { kind: "budget"; reason: string }
  | { kind: "stale"; waitedMs: number }
  | { kind: "aborted" };

type Waiter = {
  seq: number;
  alarm: boolean;
  avoid: readonly string[];
  /** Scopes this task may use (a sample: those under budget); undefined: all. */
  scopes: ReadonlySet<string> | undefined;
  cost: Cost;
  deadline: number;
  since: number;
  done: boolean;
  finish(g: Grant): void;
};

const DAY_MS = 86_400_000;

/**
 * How early a reservation may conform (GCRA burst 1 + EARLY_MS / T on the request dimensions), and how long a task
 * then holds its call to keep the schedule. The dispatcher reaches each slot a few ms late (a timer tick, another
 * scope's reservation ahead of it, the CPU shared with the provider in tests) and at burst 1 each delay is lost for
 * good: measured 92 % of capacity at 2× overload. Reserving up to EARLY_MS ahead and sending at the slot the
 * refusal named keeps the TAT on its schedule, so the calls go out at the limit × headroom, no slower and no faster.
 */
const EARLY_MS = 15;

export function createKeyPool(o: KeyPoolOptions): KeyPool {
  const now = o.now ?? Date.now;
  const random = o.random ?? Math.random;
  const headroom = o.headroom ?? 0.97;
  const log = o.log;
  const metrics = poolMetrics(o.registry);
  let config = o.config;
  const poolName = `${config.namespace}/${config.name}`;
  const prefix = ASSESSMENT_REDIS.poolPrefix(config.namespace, config.name);
  const quota = new RedisQuota(o.redis, { prefix: `${prefix}quota:` });
  const ledger = new Ledger(o.redis, now);

  let policy: KeyPolicy = keyPolicy(o.policy);
  let entries: Entry[] = [];
  let byFp = new Map<string, Entry>();
  let keyCfgs: KeyConfig[] = [];
  let limitsOf = new Map<string, ScopeLimits>();
  let budgets = new Map<string, number>();
  let allKeys: string[] = [];
  const clients = new Map<string, { client: OpenAI; baseURL: string; timeoutMs: number; apiKey: string }>();

  function configure(c: PoolConfig) {
    // The probe gate must outlive the probe: a call ends by its timeout at the latest.
    policy = keyPolicy({
      cooldownMaxMs: c.spec.cooldownSeconds * 1000,
      probeStaleMs: c.spec.timeoutSeconds * 1000 + 2000,
      ...o.policy,
    });
    const fps = fingerprints(c.keys.map((k) => k.key));
    entries = c.keys.map((k, i) => ({
      name: k.name,
      fingerprint: fps[i] as string,
      scope: k.scope ?? k.name,
      apiKey: k.key,
      cfg: { fingerprint: fps[i] as string, priority: k.priority, weight: k.weight },
    }));
    byFp = new Map(entries.map((e) => [e.fingerprint, e]));
    keyCfgs = entries.map((e) => e.cfg);
    allKeys = entries.map((e) => e.apiKey);
    // Every key of a scope gives the scope's limits; where they disagree, the lowest (the cautious reading).
    limitsOf = new Map();
    for (const k of c.keys) {
      const s = k.scope ?? k.name;
      const l = limitsOf.get(s) ?? {};
      const low = (a: number | undefined, b: number | undefined) =>
        a === undefined ? b : b === undefined ? a : Math.min(a, b);
      const rps = low(l.rps, k.rps);
      const rpm = low(l.rpm, k.rpm);
      const tpm = low(l.tpm, k.tpm);
      limitsOf.set(s, {
        ...(rps !== undefined ? { rps } : {}),
        ...(rpm !== undefined ? { rpm } : {}),
        ...(tpm !== undefined ? { tpm } : {}),
      });
    }
    budgets = new Map(c.spec.budgets.map((b) => [b.scope, b.dailyTokens]));
    for (const fp of [...clients.keys()]) if (!byFp.has(fp)) clients.delete(fp);
    config = c;
  }
  configure(config);

  const shared = new SharedState({
    redis: o.redis,
    prefix,
    log,
    policy: () => policy,
    now,
    keys: entries,
    onChange: () => kick(),
    ...(o.resyncMs !== undefined ? { resyncMs: o.resyncMs } : {}),
  });
  const ready = shared.start().catch((err) => {
    log.error({ pool: poolName, err: (err as Error).message }, "assessor pool: shared state did not start");
  });

  function clientOf(e: Entry): OpenAI {
    const baseURL = config.spec.provider.baseURL;
    const timeoutMs = config.spec.timeoutSeconds * 1000;
    const had = clients.get(e.fingerprint);
    if (had && had.baseURL === baseURL && had.timeoutMs === timeoutMs && had.apiKey === e.apiKey) return had.client;
    const client = clientFor({ apiKey: e.apiKey, baseURL, timeoutMs });
    clients.set(e.fingerprint, { client, baseURL, timeoutMs, apiKey: e.apiKey });
    return client;
  }

  /** The scope's limits for the GCRA: configured × AIMD rate × headroom. rps defaults to rpm/60 (FACTS: DashScope
   * may enforce per second). */
  function limits(scope: string): Limits {
    const l = limitsOf.get(scope) ?? {};
    const f = (shared.pool.scopes[scope]?.rate ?? 1) * headroom;
    const rps = l.rps ?? (l.rpm !== undefined ? l.rpm / 60 : undefined);
    const out: { rps?: Limit; rpm?: Limit; tpm?: Limit } = {};
    const burst = (r: number, periodMs: number) => 1 + Math.min(0.5, (EARLY_MS * r) / periodMs);
    if (rps !== undefined) out.rps = { rate: rps * f, burst: burst(rps * f, 1000) };
    if (l.rpm !== undefined) out.rpm = { rate: l.rpm * f, burst: burst(l.rpm * f, 60_000) };
    if (l.tpm !== undefined) out.tpm = { rate: l.tpm * f };
    return out;
  }

  // ---- the queue and its dispatcher -------------------------------------------------------------------------------
  const queue: Waiter[] = [];
  let seq = 0;
  let pumping = false;
  let closed = false;
  let wake: (() => void) | undefined;
  const roomAt = new Map<string, number>();
  const guard = new SendGuard();

  function kick() {
    if (wake) {
      const w = wake;
      wake = undefined;
      w();
    } else if (!pumping && queue.length > 0 && !closed) void pump();
  }

  function sleepOrWake(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        wake = undefined;
        resolve();
      }, ms);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  function enqueue(w: Omit<Waiter, "done" | "finish">, signal: AbortSignal | undefined): Promise<Grant> {
    return new Promise<Grant>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => waiter.finish({ kind: "aborted" });
      const waiter: Waiter = {
        ...w,
        done: false,
        finish(g) {
          if (waiter.done) return;
          waiter.done = true;
          if (timer) clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          const i = queue.indexOf(waiter);
          if (i >= 0) queue.splice(i, 1);
          resolve(g);
        },
      };
      if (signal?.aborted) return resolve({ kind: "aborted" });
      signal?.addEventListener("abort", onAbort, { once: true });
      const left = w.deadline - now();
      if (left <= 0) return waiter.finish({ kind: "stale", waitedMs: now() - w.since });
      timer = setTimeout(() => waiter.finish({ kind: "stale", waitedMs: now() - w.since }), Math.min(left, DAY_MS));
      // Alarm tasks first, then by first arrival (a retry keeps the place its task had).
      const at = queue.findIndex((q) => (q.alarm === w.alarm ? q.seq > w.seq : w.alarm));
      if (at < 0) queue.push(waiter);
      else queue.splice(at, 0, waiter);
      kick();
    });
  }

  let lastPumpError = 0;
  async function pump(): Promise<void> {
    pumping = true;
    try {
      while (queue.length > 0 && !closed) {
        const w = queue[0] as Waiter;
        const t = now();
        const keys = w.scopes ? keyCfgs.filter((k) => w.scopes?.has(byFp.get(k.fingerprint)?.scope ?? "")) : keyCfgs;
        const p = pick({
          pool: shared.pool,
          keys,
          strategy: config.spec.strategy,
          now: t,
          roomIn: (s) => Math.max(0, (roomAt.get(s) ?? 0) - t),
          avoid: w.avoid,
          memory,
          policy,
        });
        memory = p.memory;
        if (log.isLevelEnabled("trace"))
          log.trace({ pool: poolName, pick: { ...p, memory: undefined }, waiting: queue.length }, "pick");
        if (p.kind === "none") {
          w.finish(w.scopes ? { kind: "budget", reason: "every scope it may use is over its daily token budget" } : p);
          continue;
        }
        if (p.kind === "wait") {
          await sleepOrWake(Math.min(Math.max(1, Math.ceil(p.ms)), 1000));
          continue;
        }
        const entry = byFp.get(p.fingerprint);
        if (!entry) continue;
        const probing = p.probe.key || p.probe.scope;
        try {
          if (probing && !(await shared.tryProbe(p))) continue;
          const lim = limits(p.scope);
          const d = await quota.reserve(p.scope, w.cost, lim);
          if (!d.ok) {
            if (probing) await shared.releaseProbe({ ...p, startedAt: t });
            if (!Number.isFinite(d.retryAfterMs)) {
              w.finish({
                kind: "none",
                reason: `the task's ~${w.cost.tokens} tokens exceed scope ${p.scope}'s token burst (tpm/60)`,
              });
              continue;
            }
            roomAt.set(p.scope, now() + d.retryAfterMs);
            continue;
          }
          if (w.done || now() >= w.deadline) {
            // Gone while we reserved (deadline, abort): the slot is lost, the probe gate is not.
            if (probing) await shared.releaseProbe({ ...p, startedAt: t });
            if (!w.done) w.finish({ kind: "stale", waitedMs: now() - w.since });
            continue;
          }
          const b = begin(shared.pool, p.fingerprint, now(), policy);
          if (!b.ok) {
            if (probing) await shared.releaseProbe({ ...p, startedAt: t });
            continue;
          }
          shared.pool = b.pool;
          // The slot a refusal named for this scope, when this admission is the one it was for: send at its TAT.
          const slot = roomAt.get(p.scope);
          const t2 = now();
          const sendAt = slot !== undefined && slot + EARLY_MS > t2 ? slot + EARLY_MS : t2;
          w.finish({ kind: "go", ticket: b.ticket, entry, limits: lim, sendAt });
        } catch (err) {
          // Redis away: the tasks wait (their deadlines still run); say so at most every 10 s.
          if (now() - lastPumpError > 10_000) {
            lastPumpError = now();
            log.warn({ pool: poolName, err: (err as Error).message }, "assessor pool: quota or state unreachable");
          }
          await sleepOrWake(200);
        }
      }
    } finally {
      pumping = false;
    }
  }
  let memory = freshMemory();

  // ---- one task ---------------------------------------------------------------------------------------------------
  const recentCalls = new Map<string, number[]>();
  function noteCall(fp: string, at: number) {
    const a = recentCalls.get(fp) ?? [];
    recentCalls.set(fp, a);
    a.push(at);
    while (a.length > 0 && (a[0] as number) < at - 60_000) a.shift();
  }

  const scrub = (s: string) => scrubKeys(s, allKeys);

  async function settleCall(ticket: Ticket, outcome: Outcome, attempt: number) {
    const before = shared.pool;
    const r = settle(before, ticket, outcome, { now: now(), random, attempt, policy });
    shared.pool = r.pool;
    const labels = { pool: poolName, scope: ticket.scope, key: ticket.fingerprint };
    const kb = before.keys[ticket.fingerprint];
    const ka = r.pool.keys[ticket.fingerprint];
    const sb = before.scopes[ticket.scope];
    const sa = r.pool.scopes[ticket.scope];
    if (ka && kb && ka.counters.cooldowns > kb.counters.cooldowns) metrics.cooldowns.inc({ ...labels, level: "key" });
    if (sa && sb && sa.counters.cooldowns > sb.counters.cooldowns) metrics.cooldowns.inc({ ...labels, level: "scope" });
    if ((ka?.disabled && !kb?.disabled) || (sa?.disabled && !sb?.disabled))
      log.warn(
        {
          pool: poolName,
          key: ticket.fingerprint,
          scope: ticket.scope,
          reason: (ka?.disabled ?? sa?.disabled)?.reason,
        },
        "assessor pool: key disabled",
      );
    kick();
    try {
      await shared.push(before, r.pool, ticket);
      if (ticket.probe.key || ticket.probe.scope) await shared.releaseProbe(ticket);
    } catch (err) {
      log.warn({ pool: poolName, err: (err as Error).message }, "assessor pool: shared state write failed");
    }
    return r.next;
  }

  async function run(task: AssessmentTask, signal: AbortSignal | undefined): Promise<AssessOutcome> {
    await ready;
    const deadline = Date.parse(task.deadline);
    const since = now();
    if (!(since < deadline)) return { kind: "stale", reason: "the deadline had passed when it came", attempts: 0 };
    let scopes: Set<string> | undefined;
    if (task.trigger.kind === "sample" && budgets.size > 0) {
      const usable = new Set(
        entries.filter((e) => keyPhase(shared.pool, e.fingerprint, since, policy) !== "DISABLED").map((e) => e.scope),
      );
      const over = await ledger.overBudget(budgets, usable);
      if (over.size > 0) {
        scopes = new Set([...usable].filter((s) => !over.has(s)));
        if (scopes.size === 0)
          return { kind: "budget", reason: `scopes ${[...over].sort().join(", ")} are over their daily token budget` };
      }
    }
    const base = taskMessages(task);
    let messages: ChatMessage[] = base;
    const estimate = estimateTokens(task);
    const order = seq++;
    const avoid: string[] = [];
    let attempts = 0;
    let tries = 0;
    let repaired = false;
    const usage: AssessUsage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
    let lastReason = "";
    for (;;) {
      const g = await enqueue(
        {
          seq: order,
          alarm: task.priority === "alarm",
          avoid: [...avoid],
          scopes,
          cost: { requests: 1, tokens: estimate },
          deadline,
          since,
        },
        signal,
      );
      if (g.kind === "aborted") return { kind: "aborted" };
      if (g.kind === "stale")
        return {
          kind: "stale",
          reason: `the deadline passed ${attempts ? `while it retried (${lastReason})` : `before a key could take it (waited ${Math.round(g.waitedMs)} ms)`}`,
          attempts,
        };
      if (g.kind === "budget") return { kind: "budget", reason: g.reason };
      if (g.kind === "none") return { kind: "dead", reason: g.reason, attempts };

      const { ticket, entry } = g;
      const hold = g.sendAt - now();
      if (hold > 0) await sleep(hold);
      const windows = windowsFor(limitsOf.get(ticket.scope) ?? {});
      let claimed = false;
      for (;;) {
        const w = guard.tryClaim(ticket.scope, now(), windows);
        if (w === 0) claimed = true;
        if (w === 0 || now() + w >= deadline || signal?.aborted) break;
        await sleep(Math.ceil(w));
      }
      if (!claimed || now() >= deadline || signal?.aborted) {
        await settleCall(ticket, { kind: "aborted", reason: "not sent" }, tries + 1);
        if (signal?.aborted) return { kind: "aborted" };
        return { kind: "stale", reason: "the deadline passed before a key could take it", attempts };
      }
      attempts++;
      const labels = { pool: poolName, scope: ticket.scope, key: ticket.fingerprint };
      const startedAt = now();
      noteCall(ticket.fingerprint, startedAt);
      const res = await callModel({
        client: clientOf(entry),
        model: config.spec.provider.model,
        messages,
        signal,
        now,
      });
      metrics.latency.observe(labels, res.latencyMs / 1000);
      const record = (outcome: string) =>
        o.onCall?.({
          fingerprint: ticket.fingerprint,
          scope: ticket.scope,
          outcome,
          startedAt,
          endedAt: now(),
          taskId: task.id,
        });

      if (res.kind === "answer") {
        const step = answerStep(res.content, repaired);
        metrics.calls.inc({ ...labels, outcome: step.kind === "ok" ? "ok" : "invalid" });
        record(step.kind === "ok" ? "ok" : "invalid");
        await settleCall(ticket, { kind: "ok", hints: res.hints }, tries + 1);
        if (res.usage) {
          usage.prompt_tokens += res.usage.prompt_tokens;
          usage.completion_tokens += res.usage.completion_tokens;
          usage.total_tokens += res.usage.total_tokens;
          metrics.tokens.inc({ ...labels, kind: "prompt" }, res.usage.prompt_tokens);
          metrics.tokens.inc({ ...labels, kind: "completion" }, res.usage.completion_tokens);
          const total = res.usage.total_tokens;
          void Promise.all([
            quota.settle(ticket.scope, { estimated: estimate, actual: total }, g.limits),
            ledger.record({
              fingerprint: ticket.fingerprint,
              scope: ticket.scope,
              camera: task.camera_id,
              model: res.model,
              tokens: total,
            }),
          ]).catch((err) =>
            log.warn({ pool: poolName, err: (err as Error).message }, "assessor pool: ledger write failed"),
          );
        }
        if (step.kind === "ok")
          return {
            kind: "ok",
            answer: step.answer,
            usage,
            model: res.model,
            fingerprint: ticket.fingerprint,
            scope: ticket.scope,
            attempts,
          };
        if (step.kind === "dead") return { kind: "dead", reason: scrub(step.reason), attempts };
        repaired = true;
        messages = [...base, ...repairTurn(res.content, step.error)];
        lastReason = step.error;
        continue;
      }

      const c: Classification = { ...res.classification, reason: scrub(res.classification.reason) };
      metrics.calls.inc({ ...labels, outcome: c.kind });
      record(c.kind);
      if (c.kind === "rate_limited") metrics.rateLimited.inc(labels);
      tries++;
      const next = await settleCall(ticket, c, tries);
      lastReason = c.reason;
      if (next.action === "done") continue; // not reached: an error is never "done"
      if (next.action === "fail") return { kind: "dead", reason: c.reason, attempts };
      if (next.action === "stop") {
        if (signal?.aborted) return { kind: "aborted" };
        return { kind: "dead", reason: c.reason, attempts };
      }
      if (tries >= config.spec.maxAttempts)
        return { kind: "dead", reason: `${tries} failed calls, the last: ${c.reason}`, attempts };
      avoid.push(next.avoid);
      if (next.delayMs > 0) {
        if (now() + next.delayMs >= deadline)
          return { kind: "stale", reason: `the deadline passed while it retried (${c.reason})`, attempts };
        const aborted = await new Promise<boolean>((resolve) => {
          const t = setTimeout(() => {
            signal?.removeEventListener("abort", onAbort);
            resolve(false);
          }, next.delayMs);
          const onAbort = () => {
            clearTimeout(t);
            resolve(true);
          };
          signal?.addEventListener("abort", onAbort, { once: true });
        });
        if (aborted) return { kind: "aborted" };
      }
    }
  }

  const view = (): PoolView => {
    const t = now();
    return {
      pool: poolName,
      keys: entries.map((e) => ({
        fingerprint: e.fingerprint,
        scope: e.scope,
        phase: keyPhase(shared.pool, e.fingerprint, t, policy),
      })),
      scopes: [...limitsOf.keys()].map((s) => ({ name: s, rate: shared.pool.scopes[s]?.rate ?? 1 })),
      waiting: queue.length,
    };
  };
  metrics.views.add(view);

  return {
    async assess(task, outer) {
      if (closed) return { kind: "aborted" };
      // One dependent signal per task: a scheduler passes one shutdown signal to every task, and hundreds of
      // waiters listening on it directly would trip Node's listener-leak warning (AbortSignal.any adds none).
      const signal = outer ? AbortSignal.any([outer]) : undefined;
      let out: AssessOutcome;
      try {
        out = await run(task, signal);
      } catch (err) {
        out = { kind: "dead", reason: scrub(`unexpected: ${(err as Error).message}`), attempts: 0 };
      }
      metrics.outcomes.inc({ pool: poolName, outcome: out.kind });
      return out;
    },

    update(c) {
      configure(c);
      shared.sync(entries);
      kick();
    },

    async status() {
      const t = now();
      const fields = [...entries.map((e) => `key:${e.fingerprint}`), ...[...limitsOf.keys()].map((s) => `scope:${s}`)];
      const today = await ledger.today(fields).catch(() => new Map<string, number>());
      const iso = (ms: number | undefined) => (ms !== undefined && ms > t ? new Date(ms).toISOString() : undefined);
      const keys: AssessmentKeyStatus[] = entries.map((e) => {
        const v = keyView(shared.pool, e.fingerprint, t, policy);
        const recent = (recentCalls.get(e.fingerprint) ?? []).filter((x) => x >= t - 60_000).length;
        const c = v?.counters;
        const until = iso(v?.coolingUntil);
        const err = v?.lastError ?? (v?.phase === "DISABLED" ? v.reason : undefined);
        return {
          name: e.name,
          fingerprint: e.fingerprint,
          scope: e.scope,
          phase: v?.phase ?? "AVAILABLE",
          rate: Math.round((recent / 60) * 1000) / 1000,
          ...(until ? { cooldownUntil: until } : {}),
          ...(err ? { lastError: scrub(err).slice(0, 1024) } : {}),
          calls: c?.calls ?? 0,
          ok: c?.ok ?? 0,
          rateLimited: c?.rateLimited ?? 0,
          errors: (c?.transient ?? 0) + (c?.rejected ?? 0),
          tokens: today.get(`key:${e.fingerprint}`) ?? 0,
        };
      });
      const scopes = [...limitsOf.keys()].map((name) => {
        const s = shared.pool.scopes[name];
        const until = iso(s?.cooldown?.until);
        const used = today.get(`scope:${name}`) ?? 0;
        const budget = budgets.get(name);
        return {
          name,
          rateFactor: s?.rate ?? 1,
          ...(until ? { cooldownUntil: until } : {}),
          ...(s?.disabled ? { disabled: scrub(s.disabled.reason).slice(0, 1024) } : {}),
          tokensToday: used,
          budgetExhausted: budget !== undefined && used >= budget,
        };
      });
      return { keys, scopes };
    },

    async close() {
      if (closed) return;
      closed = true;
      metrics.views.delete(view);
      for (const w of [...queue]) w.finish({ kind: "aborted" });
      wake?.();
      await shared.close();
    },
  };
}
