// Lease-based leader election modelled on client-go's leaderelection package.
// Takeover is judged on the local time at which we last saw the lease change (as client-go does), so clock
// skew between replicas can never produce two leaders; with a 10 s lease that bounds takeover to ~12 s.
import { type CoordinationV1Api, type V1Lease, V1MicroTime } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { isConflict, isNotFound } from "./client.ts";

export type LeaderElectionOptions = {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  log?: Logger;
};

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

export class LeaderElector {
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private observed: { holder?: string; renewTime?: string; at: number } = { at: 0 };
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

  isLeader(): boolean {
    return this.leading;
  }

  /** Blocks until this replica leads (or signal aborts). Returns false if aborted first. */
  async acquire(signal: AbortSignal): Promise<boolean> {
    while (!signal.aborted) {
      const wait = await this.tryAcquireOrRenew().catch((err) => {
        this.opts.log?.warn({ err: String(err) }, "lease acquire failed");
        return this.retryPeriodMs;
      });
      if (wait === 0) {
        this.leading = true;
        this.opts.log?.info({ lease: this.opts.name, identity: this.opts.identity }, "became leader");
        return true;
      }
      await sleep(wait, signal);
    }
    return false;
  }

  /** Renews until renewals fail for renewDeadline or signal aborts; resolves when leadership ends. */
  async holdUntilLost(signal: AbortSignal): Promise<"lost" | "aborted"> {
    let lastRenew = Date.now();
    while (!signal.aborted) {
      await sleep(this.retryPeriodMs, signal);
      if (signal.aborted) break;
      const ok = await this.tryAcquireOrRenew()
        .then((w) => w === 0)
        .catch(() => false);
      if (ok) lastRenew = Date.now();
      else if (Date.now() - lastRenew > this.renewDeadlineMs) {
        this.leading = false;
        this.opts.log?.error({ lease: this.opts.name }, "leadership lost: lease not renewed within renewDeadline");
        return "lost";
      }
    }
    return "aborted";
  }

  /** Hands the lease back so another replica takes over at once (client-go's ReleaseOnCancel). */
  async release(): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.api.readNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace });
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      lease.spec = { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: new V1MicroTime() };
      await this.api.replaceNamespacedLease({ name: this.opts.name, namespace: this.opts.namespace, body: lease });
    } catch (err) {
      this.opts.log?.warn({ err: String(err) }, "lease release failed");
    }
  }

  /** 0 when we hold the lease now; otherwise how long to wait before the next try. */
  private async tryAcquireOrRenew(): Promise<number> {
    const { name, namespace, identity } = this.opts;
    const now = new V1MicroTime();
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(this.leaseDurationMs / 1000),
      renewTime: now,
    };
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await this.api.createNamespacedLease({
        namespace,
        body: { metadata: { name, namespace }, spec: { ...spec, acquireTime: now, leaseTransitions: 0 } },
      });
      this.observe(identity, now);
      return 0;
    }
    const holder = lease.spec?.holderIdentity;
    const renew = lease.spec?.renewTime ? new Date(lease.spec.renewTime).toISOString() : undefined;
    if (holder !== this.observed.holder || renew !== this.observed.renewTime) {
      this.observed = { holder, renewTime: renew, at: Date.now() };
    }
    const durationMs = (lease.spec?.leaseDurationSeconds ?? 0) * 1000;
    const expiresIn = this.observed.at + durationMs - Date.now();
    if (holder && holder !== identity && expiresIn > 0) return Math.min(this.retryPeriodMs, expiresIn + 1);
    const takingOver = holder !== identity;
    lease.spec = {
      ...lease.spec,
      ...spec,
      ...(takingOver ? { acquireTime: now, leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1 } : {}),
    };
    try {
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
    } catch (err) {
      if (isConflict(err)) return this.retryPeriodMs; // someone else wrote first
      throw err;
    }
    this.observe(identity, now);
    return 0;
  }

  private observe(holder: string, renew: Date): void {
    this.observed = { holder, renewTime: renew.toISOString(), at: Date.now() };
  }
}
