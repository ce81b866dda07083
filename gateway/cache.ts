// What the gateway remembers from the bus, bounded: each camera's latest stats, a ring of its last N events (and
// one global ring), its latest frame. Events are deduplicated on their stable id; live streams subscribe here, so
// they see each event once. The number of cameras is bounded too (ids come from the bus, not only the catalog).
import { Gauge, type Registry } from "prom-client";
import type { EventMessage, StatsMessage } from "../worker/publish/messages.ts";
import type { BusFeed } from "./feed.ts";

export type CacheOptions = {
  /** Events kept per camera and in the global ring (default 1000). */
  eventsPerCamera?: number;
  globalEvents?: number;
  /** Cameras remembered; the least recently heard from is forgotten beyond this (default 10 000). */
  maxCameras?: number;
  registry?: Registry;
};

export type CachedEvent = { event: EventMessage; at: number };

/** A fixed-size ring, oldest first. */
export class Ring<T> {
  private readonly buf: (T | undefined)[];
  private start = 0;
  private count = 0;
  readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.buf = new Array(capacity);
  }

  get size(): number {
    return this.count;
  }

  /** Adds an item; returns the one it pushed out, if the ring was full. */
  push(item: T): T | undefined {
    if (this.count < this.capacity) {
      this.buf[(this.start + this.count++) % this.capacity] = item;
      return undefined;
    }
    const out = this.buf[this.start];
    this.buf[this.start] = item;
    this.start = (this.start + 1) % this.capacity;
    return out;
  }

  at(i: number): T | undefined {
    return i < 0 || i >= this.count ? undefined : this.buf[(this.start + i) % this.capacity];
  }

  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.buf[(this.start + i) % this.capacity] as T);
    return out;
  }
}

type CameraEntry = {
  stats?: StatsMessage;
  statsAt?: number;
  events?: Ring<CachedEvent>;
  eventIds?: Set<string>;
  frame?: { jpeg: Buffer; at: number };
};

/** Event time in ms; arrival time when the timestamp does not parse. */
const eventTime = (e: EventMessage, fallback: number) => {
  const t = Date.parse(e.timestamp);
  return Number.isFinite(t) ? t : fallback;
};

/** Events from a ring: after `since` (exclusive) the first `limit`, else the last `limit`; oldest first. */
function select(
  ring: Ring<CachedEvent> | undefined,
  since: number | undefined,
  limit: number,
  keep: (e: EventMessage) => boolean = () => true,
): EventMessage[] {
  if (!ring) return [];
  const out: EventMessage[] = [];
  if (since === undefined) {
    for (let i = ring.size - 1; i >= 0 && out.length < limit; i--) {
      const c = ring.at(i) as CachedEvent;
      if (keep(c.event)) out.push(c.event);
    }
    return out.reverse();
  }
  for (let i = 0; i < ring.size && out.length < limit; i++) {
    const c = ring.at(i) as CachedEvent;
    if (c.at > since && keep(c.event)) out.push(c.event);
  }
  return out;
}

export class FeedCache {
  private readonly cameras = new Map<string, CameraEntry>();
  private readonly global: Ring<CachedEvent>;
  private readonly perCamera: number;
  private readonly maxCameras: number;
  private readonly listeners = new Set<(e: EventMessage) => void>();

  constructor(feed: BusFeed, opts: CacheOptions = {}) {
    this.perCamera = opts.eventsPerCamera ?? 1000;
    this.global = new Ring(opts.globalEvents ?? 1000);
    this.maxCameras = opts.maxCameras ?? 10_000;
    feed.on({
      stats: (m) => this.putStats(m),
      event: (m) => this.putEvent(m),
      frame: (id, jpeg) => this.putFrame(id, jpeg),
    });
    if (opts.registry) {
      const self = this;
      new Gauge({
        name: "vigil_gateway_cache_entries",
        help: "Entries in the gateway's bus cache",
        labelNames: ["kind"],
        registers: [opts.registry],
        collect() {
          let stats = 0;
          let events = 0;
          let frames = 0;
          for (const c of self.cameras.values()) {
            if (c.stats) stats++;
            events += c.events?.size ?? 0;
            if (c.frame) frames++;
          }
          this.set({ kind: "stats" }, stats);
          this.set({ kind: "events" }, events);
          this.set({ kind: "global_events" }, self.global.size);
          this.set({ kind: "frames" }, frames);
        },
      });
    }
  }

  /** The camera's entry, most recently used last (Map order), evicting the least recent beyond maxCameras. */
  private entry(id: string): CameraEntry {
    let e = this.cameras.get(id);
    if (e) this.cameras.delete(id);
    else e = {};
    this.cameras.set(id, e);
    if (this.cameras.size > this.maxCameras) {
      const oldest = this.cameras.keys().next().value;
      if (oldest !== undefined) this.cameras.delete(oldest);
    }
    return e;
  }

  putStats(m: StatsMessage): void {
    const t = Date.parse(m.timestamp);
    const at = Number.isFinite(t) ? t : Date.now();
    const e = this.cameras.get(m.camera_id);
    // A replay (or a late message) never replaces newer stats.
    if (e?.statsAt !== undefined && at < e.statsAt) return;
    const fresh = this.entry(m.camera_id);
    fresh.stats = m;
    fresh.statsAt = at;
  }

  putEvent(m: EventMessage): void {
    const e = this.entry(m.camera_id);
    e.events ??= new Ring(this.perCamera);
    e.eventIds ??= new Set();
    if (e.eventIds.has(m.id)) return;
    const cached = { event: m, at: eventTime(m, Date.now()) };
    e.eventIds.add(m.id);
    const out = e.events.push(cached);
    if (out) e.eventIds.delete(out.event.id);
    this.global.push(cached);
    for (const l of this.listeners)
      try {
        l(m);
      } catch {
        // a live stream's failure is its own; the cache and the other streams go on
      }
  }

  putFrame(id: string, jpeg: Buffer): void {
    this.entry(id).frame = { jpeg, at: Date.now() };
  }

  stats(id: string): StatsMessage | undefined {
    return this.cameras.get(id)?.stats;
  }

  /** One camera's events, or all cameras' (optionally only those `keep` accepts). */
  events(opts: {
    camera?: string;
    since?: number | undefined;
    limit: number;
    keep?: (e: EventMessage) => boolean;
  }): EventMessage[] {
    const ring = opts.camera === undefined ? this.global : this.cameras.get(opts.camera)?.events;
    return select(ring, opts.since, opts.limit, opts.keep);
  }

  /** Global events after the one with this id (for SSE Last-Event-ID); undefined when it is no longer cached. */
  eventsAfterId(id: string, camera?: string): EventMessage[] | undefined {
    const all = this.global.toArray();
    const i = all.findIndex((c) => c.event.id === id);
    if (i < 0) return undefined;
    return all
      .slice(i + 1)
      .map((c) => c.event)
      .filter((e) => camera === undefined || e.camera_id === camera);
  }

  /** The latest frame if it is at most maxAgeMs old. */
  frame(id: string, maxAgeMs = 2000): Buffer | undefined {
    const f = this.cameras.get(id)?.frame;
    return f && Date.now() - f.at <= maxAgeMs ? f.jpeg : undefined;
  }

  forgetFrame(id: string): void {
    const e = this.cameras.get(id);
    if (e) delete e.frame;
  }

  /** New (deduplicated) events as they arrive; returns the unsubscribe function. */
  onEvent(fn: (e: EventMessage) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}
