// The key pool's state shared by every replica of one AssessmentPool. Each replica runs the pure state machine
// (keys/key-state.ts) on its own copy; what another replica must know at once goes through Redis:
//   - cooldowns of keys and scopes: extend-only, by a Lua script, so a shorter cooldown never overwrites a longer
//     one (LiteLLM's #40130); cleared only by the probe that ended them, and only if no longer one came meanwhile;
//   - DISABLED with its reason (first writer wins);
//   - the scope's AIMD rate after a decrease (the newest decrease wins; increases run locally on every replica);
//   - the half-open probe gate: SET NX PX, so exactly one replica sends the probe.
// Every write is published on a channel by the same script (atomic with the write) and merged by the other
// replicas when it arrives (~1 ms here); the hash is re-read every `resyncMs` (500) in case a message was lost on a
// reconnect, so a key revoked on one replica is DISABLED on all within 1 s either way.
// What stays local: calls in flight, counters, penalties and the pick memory: they spread load, they guard nothing.
import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { z } from "zod";
import type { Cooldown, Disabled, KeyPolicy, KeyRef, Pool, ScopeState, Ticket } from "../keys/key-state.ts";
import { syncPool } from "../keys/key-state.ts";

// KEYS[1] the state hash, KEYS[2] the channel. ARGV: op, field, value (JSON), number, replica.
//   cooldown: store unless the stored one lasts as long (ARGV[4] = until);
//   clear:    delete unless the stored one lasts longer than ARGV[4] (the cooldown the prober saw);
//   disable:  store unless one is stored;
//   rate:     store unless the stored decrease is as new (ARGV[4] = decreasedAt).
// Returns what the hash holds for the field afterwards ("" when nothing); publishes only a change.
const MERGE = `
local op, f, v, n, r = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local cur = redis.call('HGET', KEYS[1], f)
if op == 'cooldown' then
  if cur and tonumber(cjson.decode(cur)['until']) >= n then return cur end
elseif op == 'clear' then
  if not cur then return '' end
  if tonumber(cjson.decode(cur)['until']) > n then return cur end
  redis.call('HDEL', KEYS[1], f)
  redis.call('PUBLISH', KEYS[2], cjson.encode({f = f, v = '', u = n, r = r}))
  return ''
elseif op == 'disable' then
  if cur then return cur end
elseif op == 'rate' then
  if cur and tonumber(cjson.decode(cur)['decreasedAt']) >= n then return cur end
else
  return redis.error_reply('unknown op ' .. op)
end
redis.call('HSET', KEYS[1], f, v)
redis.call('PUBLISH', KEYS[2], cjson.encode({f = f, v = v, r = r}))
return v
`;

// KEYS[1] the gate, KEYS[2] the channel. ARGV: replica, field. Deletes the gate if it is this replica's and tells
// the others the probe settled, so they need not wait for the gate to expire to try theirs.
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[2], cjson.encode({f = ARGV[2], v = '', p = 1, r = ARGV[1]}))
  return 1
end
return 0
`;

type Commands = {
  vigilPoolMerge(hash: string, channel: string, ...argv: (string | number)[]): Promise<string>;
  vigilPoolRelease(gate: string, channel: string, replica: string, field: string): Promise<number>;
};

const cooldownJson = z.object({
  since: z.number(),
  until: z.number(),
  strikes: z.number(),
  reason: z.string(),
  halfOpen: z.boolean(),
});
const disabledJson = z.object({ reason: z.string(), at: z.number(), code: z.string().optional() });
const rateJson = z.object({ rate: z.number().min(0).max(1), decreasedAt: z.number(), adjustedAt: z.number() });
const message = z.object({
  f: z.string(),
  v: z.string(),
  u: z.number().optional(),
  p: z.number().optional(),
  r: z.string(),
});

type Level = "k" | "s";
const FIELD = /^(k|s):(.*):(cd|off|rate)$/;
const field = (level: Level, name: string, what: "cd" | "off" | "rate") => `${level}:${name}:${what}`;

export type SharedStateOptions = {
  redis: Redis;
  /** ASSESSMENT_REDIS.poolPrefix(ns, pool). */
  prefix: string;
  log: Logger;
  /** Read at each use: update() may change it. */
  policy: () => KeyPolicy;
  now: () => number;
  keys: readonly KeyRef[];
  /** Something another replica wrote was merged: a waiting task may go now (or must not). */
  onChange?: () => void;
  resyncMs?: number;
};

export class SharedState {
  /** This replica's view; replaced (never mutated) by the key pool and by merges. */
  pool: Pool;
  readonly replica = randomUUID().slice(0, 8);
  readonly #o: SharedStateOptions;
  readonly #redis: Redis & Commands;
  #sub: Redis | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  readonly hash: string;
  readonly channel: string;

  constructor(o: SharedStateOptions) {
    this.#o = o;
    o.redis.defineCommand("vigilPoolMerge", { numberOfKeys: 2, lua: MERGE });
    o.redis.defineCommand("vigilPoolRelease", { numberOfKeys: 2, lua: RELEASE });
    this.#redis = o.redis as Redis & Commands;
    this.hash = `${o.prefix}state`;
    this.channel = `${o.prefix}events`;
    this.pool = syncPool(undefined, o.keys, o.now());
  }

  /** Subscribes, reads what the other replicas know, and starts the periodic re-read. */
  async start(): Promise<void> {
    const sub = this.#o.redis.duplicate();
    this.#sub = sub;
    sub.on("error", (err) => this.#o.log.warn({ err: err.message }, "assessor pool: state subscriber"));
    sub.on("message", (_ch: string, raw: string) => this.#onMessage(raw));
    await sub.subscribe(this.channel);
    await this.resync();
    const every = this.#o.resyncMs ?? 500;
    this.#timer = setInterval(() => {
      this.resync().catch((err) =>
        this.#o.log.warn({ err: (err as Error).message }, "assessor pool: state re-read failed"),
      );
    }, every);
    this.#timer.unref();
  }

  /** A new key list: keys that stay keep their state. */
  sync(keys: readonly KeyRef[]): void {
    this.pool = syncPool(this.pool, keys, this.#o.now());
  }

  /** Re-reads the hash and merges every field (extends and disables only: a clear comes by message). */
  async resync(): Promise<void> {
    const all = await this.#redis.hgetall(this.hash);
    let changed = false;
    for (const [f, v] of Object.entries(all)) changed = this.#merge(f, v, undefined) || changed;
    if (changed) this.#o.onChange?.();
  }

  /**
   * Writes what a settle changed on the ticket's key and scope (cooldown set, extended or ended by its probe; a
   * DISABLED; a rate decrease) and merges back what Redis holds, which may be longer or older than ours.
   */
  async push(before: Pool, after: Pool, t: Ticket): Promise<void> {
    const ops: Promise<void>[] = [];
    const kb = before.keys[t.fingerprint];
    const ka = after.keys[t.fingerprint];
    if (ka) {
      ops.push(...this.#pushCooldown("k", t.fingerprint, kb?.cooldown, ka.cooldown));
      if (ka.disabled && !kb?.disabled)
        ops.push(this.#write("disable", field("k", t.fingerprint, "off"), ka.disabled, 0));
    }
    const sb = before.scopes[t.scope];
    const sa = after.scopes[t.scope];
    if (sa) {
      ops.push(...this.#pushCooldown("s", t.scope, sb?.cooldown, sa.cooldown));
      if (sa.disabled && !sb?.disabled) ops.push(this.#write("disable", field("s", t.scope, "off"), sa.disabled, 0));
      if (sa.decreasedAt !== undefined && sa.decreasedAt !== sb?.decreasedAt)
        ops.push(
          this.#write(
            "rate",
            field("s", t.scope, "rate"),
            { rate: sa.rate, decreasedAt: sa.decreasedAt, adjustedAt: sa.adjustedAt },
            sa.decreasedAt,
          ),
        );
    }
    await Promise.all(ops);
  }

  #pushCooldown(level: Level, name: string, b: Cooldown | undefined, a: Cooldown | undefined): Promise<void>[] {
    const f = field(level, name, "cd");
    if (a && (!b || a.until > b.until || a.since !== b.since || a.halfOpen !== b.halfOpen)) {
      const { probeAt: _, ...shared } = a;
      return [this.#write("cooldown", f, shared, a.until)];
    }
    if (b && !a) return [this.#write("clear", f, null, b.until)];
    return [];
  }

  async #write(op: string, f: string, value: unknown, n: number): Promise<void> {
    const v = value === null ? "" : JSON.stringify(value);
    const stored = await this.#redis.vigilPoolMerge(this.hash, this.channel, op, f, v, n, this.replica);
    if (stored !== v && stored !== "") {
      if (this.#merge(f, stored, undefined)) this.#o.onChange?.();
    }
  }

  /**
   * The half-open probe of the ticket-to-be's key and/or scope: true when this replica holds every gate it needs.
   * When another replica holds one, the local cooldown notes a probe in flight until that gate expires (or its
   * release message comes), so this replica's picks pass the key over.
   */
  async tryProbe(p: { fingerprint: string; scope: string; probe: { key: boolean; scope: boolean } }): Promise<boolean> {
    const gates: [Level, string][] = [];
    if (p.probe.key) gates.push(["k", p.fingerprint]);
    if (p.probe.scope) gates.push(["s", p.scope]);
    const held: [Level, string][] = [];
    for (const [level, name] of gates) {
      const gate = this.#gate(level, name);
      const ok = await this.#redis.set(gate, this.replica, "PX", this.#o.policy().probeStaleMs, "NX");
      if (ok === "OK") {
        held.push([level, name]);
        continue;
      }
      const ttl = Math.max(1, await this.#redis.pttl(gate));
      this.#markProbe(level, name, ttl);
      for (const [l, n] of held) await this.#release(l, n);
      return false;
    }
    return true;
  }

  /** After the probe's settle (push first: the others must see its outcome before they may probe). */
  async releaseProbe(t: Ticket): Promise<void> {
    if (t.probe.key) await this.#release("k", t.fingerprint);
    if (t.probe.scope) await this.#release("s", t.scope);
  }

  #gate(level: Level, name: string): string {
    return `${this.#o.prefix}probe:${level}:${name}`;
  }

  async #release(level: Level, name: string): Promise<void> {
    await this.#redis.vigilPoolRelease(this.#gate(level, name), this.channel, this.replica, field(level, name, "cd"));
  }

  /** Another replica probes `name`: hold our gate shut until its gate expires (`ttl` ms from now). */
  #markProbe(level: Level, name: string, ttl: number): void {
    const now = this.#o.now();
    this.#update(level, name, (o) => {
      if (!o.cooldown) return false;
      o.cooldown = { ...o.cooldown, probeAt: now - this.#o.policy().probeStaleMs + ttl };
      return true;
    });
  }

  #onMessage(raw: string): void {
    let m: z.infer<typeof message>;
    try {
      m = message.parse(JSON.parse(raw));
    } catch (err) {
      this.#o.log.warn({ err: (err as Error).message }, "assessor pool: unreadable state message dropped");
      return;
    }
    if (m.r === this.replica && m.p === undefined && m.v !== "") return;
    if (this.#merge(m.f, m.v, m)) this.#o.onChange?.();
  }

  /** Merges one field's stored value into the local pool; true when something changed. */
  #merge(f: string, v: string, m: z.infer<typeof message> | undefined): boolean {
    const match = FIELD.exec(f);
    if (!match) return false;
    const level = match[1] as Level;
    const name = match[2] as string;
    const what = match[3] as "cd" | "off" | "rate";
    try {
      if (what === "cd") {
        if (v === "") {
          // A probe released its gate (p), or a probe's success cleared the cooldown (u: the end it saw).
          return this.#update(level, name, (o) => {
            if (!o.cooldown) return false;
            if (m?.p !== undefined) {
              if (o.cooldown.probeAt === undefined) return false;
              const { probeAt: _, ...rest } = o.cooldown;
              o.cooldown = rest;
              return true;
            }
            if (m?.u === undefined || o.cooldown.until > m.u) return false;
            delete o.cooldown;
            return true;
          });
        }
        const cd = cooldownJson.parse(JSON.parse(v));
        const now = this.#o.now();
        return this.#update(level, name, (o) => {
          if (o.cooldown ? cd.until <= o.cooldown.until : !cd.halfOpen && cd.until <= now) return false;
          o.cooldown = cd;
          return true;
        });
      }
      if (what === "off") {
        const d = disabledJson.parse(JSON.parse(v));
        return this.#update(level, name, (o) => {
          if (o.disabled) return false;
          o.disabled = d.code === undefined ? { reason: d.reason, at: d.at } : (d as Disabled);
          return true;
        });
      }
      const r = rateJson.parse(JSON.parse(v));
      if (level !== "s") return false;
      const s = this.pool.scopes[name];
      if (!s || (s.decreasedAt !== undefined && s.decreasedAt >= r.decreasedAt)) return false;
      const next: ScopeState = { ...s, rate: r.rate, decreasedAt: r.decreasedAt, adjustedAt: r.adjustedAt };
      this.pool = { ...this.pool, scopes: { ...this.pool.scopes, [name]: next } };
      return true;
    } catch (err) {
      this.#o.log.warn({ field: f, err: (err as Error).message }, "assessor pool: unreadable state field ignored");
      return false;
    }
  }

  /** Applies `fn` to a copy of the key's or scope's state; keeps the copy when `fn` says it changed something. */
  #update(level: Level, name: string, fn: (o: { cooldown?: Cooldown; disabled?: Disabled }) => boolean): boolean {
    if (level === "k") {
      const k = this.pool.keys[name];
      if (!k) return false;
      const copy = { ...k };
      if (!fn(copy)) return false;
      this.pool = { ...this.pool, keys: { ...this.pool.keys, [name]: copy } };
      return true;
    }
    const s = this.pool.scopes[name];
    if (!s) return false;
    const copy = { ...s };
    if (!fn(copy)) return false;
    this.pool = { ...this.pool, scopes: { ...this.pool.scopes, [name]: copy } };
    return true;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#sub?.disconnect();
  }
}
