// A list+watch cache with the guards client-node's own informer lacks (FACTS: watches stall silently,
// the informer stops on non-410 errors): client-node's Watch has a 30 s inactivity timer (our watchdog;
// a timed-out watch resumes from the last resourceVersion), a 410 Gone relists, any other error relists
// after exponential backoff, and a periodic relist repairs anything a silent stall could have lost.
import { type KubeConfig, type KubernetesObject, Watch } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { apiError } from "./client.ts";

export type ListResult<T> = { items: T[]; metadata?: { resourceVersion?: string } };

export type InformerOptions<T> = {
  /** API path of the collection, e.g. /api/v1/pods or /apis/vigil.dev/v1alpha1/cameradetections. */
  path: string;
  list: () => Promise<ListResult<T>>;
  labelSelector?: string;
  /** e.g. metadata.name=x: one object, which RBAC can then grant by resourceNames (list/watch need the selector). */
  fieldSelector?: string;
  relistMs?: number;
  /** Inactivity after which a watch counts as stalled and is reopened (client-node's default: 30 s). */
  watchTimeoutMs?: number;
  log?: Logger;
  /** Applied to every object before it is cached and handed to handlers (e.g. dropping fields nobody reads). */
  transform?: (obj: T) => T;
};

export type Handlers<T> = {
  add?: (obj: T) => void;
  update?: (obj: T, old: T) => void;
  delete?: (obj: T) => void;
};

/**
 * Like controller-runtime's TransformStripManagedFields: metadata.managedFields is often the largest part of an
 * object, and no reconciler reads it, so the cache need not hold it.
 */
export function stripManagedFields<T extends KubernetesObject>(obj: T): T {
  if (obj.metadata?.managedFields) delete obj.metadata.managedFields;
  return obj;
}

export const objectKey = (o: KubernetesObject) =>
  o.metadata?.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : (o.metadata?.name ?? "");

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30_000;

export class Informer<T extends KubernetesObject> {
  private readonly store = new Map<string, T>();
  private readonly handlers: Handlers<T>[] = [];
  private readonly watch: Watch;
  private abort: AbortController | undefined;
  private resourceVersion = "";
  private backoffMs = 0;
  private stopped = true;
  private synced = false;
  private syncWaiters: (() => void)[] = [];
  private timers = new Set<NodeJS.Timeout>();
  private watchGen = 0;
  private relistTimer: NodeJS.Timeout | undefined;
  /** Counts, for metrics and tests. */
  readonly stats = { lists: 0, watches: 0, errors: 0 };

  private readonly opts: InformerOptions<T>;

  constructor(kc: KubeConfig, opts: InformerOptions<T>) {
    this.opts = opts;
    this.watch = new Watch(kc);
    // client-node keeps this knob private; it is the watchdog's timeout, so make it configurable.
    if (opts.watchTimeoutMs)
      (this.watch as unknown as { requestTimeoutMs: number }).requestTimeoutMs = opts.watchTimeoutMs;
  }

  on(h: Handlers<T>): void {
    this.handlers.push(h);
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(filter?: (o: T) => boolean): T[] {
    const all = [...this.store.values()];
    return filter ? all.filter(filter) : all;
  }

  hasSynced(): boolean {
    return this.synced;
  }

  waitForSync(): Promise<void> {
    return this.synced ? Promise.resolve() : new Promise((r) => this.syncWaiters.push(r));
  }

  start(): void {
    this.stopped = false;
    void this.relist();
  }

  stop(): void {
    this.stopped = true;
    this.watchGen++;
    this.abort?.abort();
    clearTimeout(this.relistTimer);
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    t.unref();
    this.timers.add(t);
  }

  private async relist(): Promise<void> {
    if (this.stopped) return;
    this.watchGen++; // a watch we abort here must not restart itself
    this.abort?.abort();
    clearTimeout(this.relistTimer);
    let result: ListResult<T>;
    try {
      this.stats.lists++;
      result = await this.opts.list();
    } catch (err) {
      return this.fail(err);
    }
    if (this.stopped) return;
    this.relistTimer = setTimeout(() => void this.relist(), this.opts.relistMs ?? 10 * 60_000);
    this.relistTimer.unref();
    const seen = new Set<string>();
    for (const item of result.items) {
      const obj = this.opts.transform ? this.opts.transform(item) : item;
      const key = objectKey(obj);
      seen.add(key);
      this.upsert(key, obj);
    }
    for (const [key, old] of this.store) if (!seen.has(key)) this.remove(key, old);
    this.resourceVersion = result.metadata?.resourceVersion ?? "";
    if (!this.synced) {
      this.synced = true;
      for (const w of this.syncWaiters.splice(0)) w();
    }
    void this.startWatch();
  }

  private async startWatch(): Promise<void> {
    if (this.stopped) return;
    const gen = ++this.watchGen;
    const query: Record<string, string | boolean> = {
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: true,
    };
    if (this.opts.labelSelector) query.labelSelector = this.opts.labelSelector;
    if (this.opts.fieldSelector) query.fieldSelector = this.opts.fieldSelector;
    this.stats.watches++;
    let gone = false;
    try {
      this.abort = await this.watch.watch(
        this.opts.path,
        query,
        (type, obj: T & { code?: number }) => {
          if (type === "ERROR") {
            if (obj.code === 410) gone = true;
            return;
          }
          const rv = obj.metadata?.resourceVersion;
          if (rv) this.resourceVersion = rv;
          this.backoffMs = 0;
          if (type === "BOOKMARK") return;
          const key = objectKey(obj);
          if (type === "DELETED") {
            const old = this.store.get(key);
            if (old) this.remove(key, old);
          } else this.upsert(key, this.opts.transform ? this.opts.transform(obj) : obj);
        },
        (err) => {
          if (gen === this.watchGen) this.watchDone(err, gone);
        },
      );
    } catch (err) {
      if (gen === this.watchGen) this.fail(err);
    }
  }

  private watchDone(err: unknown, gone: boolean): void {
    if (this.stopped) return;
    const code = (err as { statusCode?: number; code?: number } | null)?.statusCode;
    if (gone || code === 410) return void this.relist();
    // A timeout is the watchdog firing on a quiet or stalled stream: resume from where we were.
    if (!err || (err as Error).name === "TimeoutError" || (err as Error).name === "AbortError")
      return void this.startWatch();
    this.fail(err);
  }

  private fail(err: unknown): void {
    if (this.stopped) return;
    this.stats.errors++;
    this.backoffMs = Math.min(this.backoffMs ? this.backoffMs * 2 : BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    this.opts.log?.warn({ path: this.opts.path, err: apiError(err), retryInMs: this.backoffMs }, "list/watch failed");
    this.later(this.backoffMs * (0.8 + Math.random() * 0.4), () => void this.relist());
  }

  private upsert(key: string, obj: T): void {
    const old = this.store.get(key);
    if (old?.metadata?.resourceVersion && old.metadata.resourceVersion === obj.metadata?.resourceVersion) return;
    this.store.set(key, obj);
    for (const h of this.handlers) old ? h.update?.(obj, old) : h.add?.(obj);
  }

  private remove(key: string, old: T): void {
    this.store.delete(key);
    for (const h of this.handlers) h.delete?.(old);
  }
}
