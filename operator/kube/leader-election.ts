// Lease-based leader election modelled on client-go's leaderelection package.
// Takeover is judged on the local time at which we last saw the lease change (as client-go does), so clock
// skew between replicas can never produce two leaders; with a 10 s lease that bounds takeover to ~12 s (~14 s for a
// replica that has only just started).
// All durations are measured on the monotonic clock (performance.now()): a wall-clock step must not stretch them.
import { type CoordinationV1Api, type V1Lease, V1MicroTime } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { apiError, isConflict, isNotFound, withSignal } from "./client.ts";

export type LeaderElectionOptions = {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log?: Logger;
};

/** Resolves after ms, or at once on abort; leaves no listener behind on a long-lived signal (one per retry). */
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });

export class LeaderElector {
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private observed: { holder?: string; renewTime?: string; at: number } = { at: 0 };
  /** When the attempt that last acquired or renewed the lease started: the renew deadline counts from there. */
  private renewedAt = 0;
  private leading = false;

  private readonly api: CoordinationV1Api;
  private readonly opts: LeaderElectionOptions;

  constructor(api: CoordinationV1Api, opts: LeaderElectionOptions) {
    this.api = api;
    this.opts = opts;
    this.leaseDurationMs = opts.leaseDurationMs ?? 10_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 7_000;
    this.retryPeriodMs = opts.retryPeriodMs ?? 2_000;
    if (this.renewDeadlineMs >= this.leaseDurationMs)
      throw new Error("renewDeadline must be shorter than leaseDuration");
  }

  /** namespace/name, for logs: where the Lease is matters when it cannot be written. */
  private get lease(): string {
    return `${this.opts.namespace}/${this.opts.name}`;
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** Blocks until this replica leads (or signal aborts). Returns false if aborted first. */
  async acquire(signal: AbortSignal): Promise<boolean> {
    while (!signal.aborted) {
      // Bounded like a renewal: a try never waits out undici's 300 s header timeout on a dead connection.
      const attempt = AbortSignal.any([signal, AbortSignal.timeout(this.renewDeadlineMs)]);
      const wait = await this.tryAcquireOrRenew(attempt).catch((err) => {
        if (!signal.aborted) this.opts.log?.warn({ lease: this.lease, err: apiError(err) }, "lease acquire failed");
        return this.retryPeriodMs;
      });
      if (wait === 0) {
        this.leading = true;
        this.opts.log?.info({ lease: this.lease, identity: this.opts.identity }, "became leader");
        return true;
      }
      await sleep(wait, signal);
    }
    return false;
  }

  /**
   * Renews every retryPeriod; resolves "lost" the moment renewDeadline has passed since the last successful renewal
   * began, or "aborted" with signal. As client-go's renew loop runs each try under a context with the renew deadline,
   * every try here is aborted at that deadline: a try that hangs (a half-open connection: undici waits 300 s for
   * headers) must not keep us leading past it, while a standby takes over once the lease has run out.
   */
  async holdUntilLost(signal: AbortSignal): Promise<"lost" | "aborted"> {
    while (!signal.aborted) {
      // After a renewal, the next one a retry period later; after a failure too, unless the deadline comes first.
      const deadline = this.renewedAt + this.renewDeadlineMs;
      await sleep(Math.min(this.retryPeriodMs, deadline - performance.now()), signal);
      if (signal.aborted) break;
      const left = deadline - performance.now();
      if (left <= 0) return this.lose();
      const ok = await this.tryAcquireOrRenew(AbortSignal.any([signal, AbortSignal.timeout(Math.ceil(left))])).then(
        (wait) => wait === 0,
        (err) => {
          if (!signal.aborted) this.opts.log?.warn({ lease: this.lease, err: apiError(err) }, "lease renew failed");
          return false;
        },
      );
      if (!ok && !signal.aborted && performance.now() >= deadline) return this.lose();
    }
    return "aborted";
  }

  private lose(): "lost" {
    this.leading = false;
    this.opts.log?.error(
      { lease: this.lease, renewDeadlineMs: this.renewDeadlineMs },
      "leadership lost: lease not renewed within renewDeadline",
    );
    return "lost";
  }

  /** Hands the lease back so another replica takes over at once (client-go's ReleaseOnCancel). */
  async release(): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    // Bounded like a renewal: shutting down must not hang on a dead connection (the lease then just runs out).
    const options = withSignal(AbortSignal.timeout(this.renewDeadlineMs));
    try {
      const { name, namespace } = this.opts;
      const lease = await this.api.readNamespacedLease({ name, namespace }, options);
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      lease.spec = { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: new V1MicroTime() };
      await this.api.replaceNamespacedLease({ name, namespace, body: lease }, options);
    } catch (err) {
      this.opts.log?.warn({ lease: this.lease, err: apiError(err) }, "lease release failed");
    }
  }

  /** 0 when we hold the lease now; otherwise how long to wait before the next try. Every request aborts with signal. */
  private async tryAcquireOrRenew(signal: AbortSignal): Promise<number> {
    const { name, namespace, identity } = this.opts;
    const startedAt = performance.now();
    const options = withSignal(signal);
    const now = new V1MicroTime();
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
      renewTime: now,
    };
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace }, options);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await this.api.createNamespacedLease(
        {
          namespace,
          body: { metadata: { name, namespace }, spec: { ...spec, acquireTime: now, leaseTransitions: 0 } },
        },
        options,
      );
      this.observe(identity, now, startedAt);
      return 0;
    }
    const holder = lease.spec?.holderIdentity;
    const renew = lease.spec?.renewTime ? new Date(lease.spec.renewTime).toISOString() : undefined;
    if (holder !== this.observed.holder || renew !== this.observed.renewTime) {
      // A replica that just started (a leader killed and restarted by its kubelet, under a new identity) has not
      // watched the holder: the standby that has saw its last renewal up to a retry period late, so both would
      // judge it expired within ~2 s of each other, and the newcomer won that race in the fleet e2e. Its first
      // sighting counts two retry periods longer, so the replica that kept watching takes over first.
      const newcomer = this.observed.at === 0 && Boolean(holder) && holder !== identity;
      this.observed = { holder, renewTime: renew, at: performance.now() + (newcomer ? 2 * this.retryPeriodMs : 0) };
    }
    const durationMs = (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
    const expiresIn = this.observed.at + durationMs - performance.now();
    if (holder && holder !== identity && expiresIn > 0) return Math.min(this.retryPeriodMs, expiresIn + 1);
    const takingOver = holder !== identity;
    lease.spec = {
      ...lease.spec,
      ...spec,
      ...(takingOver ? { acquireTime: now, leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1 } : {}),
    };
    try {
      await this.api.replaceNamespacedLease({ name, namespace, body: lease }, options);
    } catch (err) {
      if (isConflict(err)) return this.retryPeriodMs; // someone else wrote first
      throw err;
    }
    this.observe(identity, now, startedAt);
    return 0;
  }

  private observe(holder: string, renew: Date, startedAt: number): void {
    this.observed = { holder, renewTime: renew.toISOString(), at: performance.now() };
    this.renewedAt = startedAt;
  }
}
