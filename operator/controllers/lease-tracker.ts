// Whether a worker's Lease is live, timed on the operator's own clock (as kube-controller-manager times node Leases
// and client-go's leader election times its lock): a renewal counts from the moment this operator first saw it, so a
// worker whose clock is off neither lives forever nor dies early. Only the first sighting (an operator that just
// started) trusts the Lease's own renewTime, and never a time in its future: a worker dead for an hour is not given
// six more seconds. The sighting is pure; LeaseTracker keeps one per Lease.
import { timeOf } from "./context.ts";

export type LeaseSpecLike = {
  holderIdentity?: string | null;
  renewTime?: Date | string | null;
  acquireTime?: Date | string | null;
  leaseDurationSeconds?: number | null;
};

export type LeaseSighting = {
  holder: string | undefined;
  /** The Lease's renewTime in ms (0 if never renewed): a cache can be older than a direct read, never newer. */
  renewTime: number;
  durationMs: number;
  /** When, on this operator's clock, the renewal was first seen. */
  seenAt: number;
  /** Renewed or acquired at least once: a worker that ran. */
  held: boolean;
  /** The Lease's acquireTime in ms (0 if none): when its holder took it, to tell it from a process that died since. */
  acquireTime: number;
};

export type LeaseView = {
  live: boolean;
  held: boolean;
  expiresInMs?: number | undefined;
  /** When the holder took the Lease (its acquireTime, ms epoch), if the Lease says. */
  acquiredAt?: number | undefined;
};

const stamp = (t: Date | string | null | undefined) => (t ? timeOf(t) || 0 : 0);

export function sightLease(
  prev: LeaseSighting | undefined,
  spec: LeaseSpecLike | undefined,
  now: number,
): LeaseSighting {
  const holder = spec?.holderIdentity || undefined;
  const renewTime = stamp(spec?.renewTime);
  const durationMs = Math.max(0, spec?.leaseDurationSeconds ?? 0) * 1000;
  const acquireTime = stamp(spec?.acquireTime);
  const held = Boolean(holder || renewTime || acquireTime) || (prev?.held ?? false);
  if (prev) {
    // Older than what was seen (a stale cache after a direct read) or the same renewal: nothing new.
    if (renewTime < prev.renewTime) return prev;
    if (renewTime === prev.renewTime && holder === prev.holder && durationMs === prev.durationMs)
      return prev.held === held && prev.acquireTime === acquireTime ? prev : { ...prev, held, acquireTime };
    return { holder, renewTime, durationMs, seenAt: now, held, acquireTime };
  }
  return { holder, renewTime, durationMs, seenAt: Math.min(now, renewTime), held, acquireTime };
}

export function leaseView(s: LeaseSighting | undefined, now: number): LeaseView {
  if (!s) return { live: false, held: false };
  const left = s.seenAt + s.durationMs - now;
  const live = s.holder !== undefined && left > 0;
  return {
    live,
    held: s.held,
    expiresInMs: live ? left : undefined,
    ...(s.acquireTime ? { acquiredAt: s.acquireTime } : {}),
  };
}

export class LeaseTracker {
  readonly #seen = new Map<string, LeaseSighting>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  /**
   * Records a Lease as read (cache or API). True when the worker's liveness changed or the Lease is new to us:
   * plain renewals of a live Lease are not worth a reconcile, its expiry is requeued instead.
   */
  observe(key: string, spec: LeaseSpecLike | undefined): boolean {
    const now = this.#now();
    const prev = this.#seen.get(key);
    const next = sightLease(prev, spec, now);
    this.#seen.set(key, next);
    return !prev || leaseView(prev, now).live !== leaseView(next, now).live || prev.held !== next.held;
  }

  forget(key: string): void {
    this.#seen.delete(key);
  }

  view(key: string): LeaseView {
    return leaseView(this.#seen.get(key), this.#now());
  }
}
