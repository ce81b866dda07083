import { describe, expect, it } from "vitest";
import { LeaseTracker, leaseView, sightLease } from "../../operator/controllers/lease-tracker.ts";

const T = Date.parse("2026-01-01T00:00:00.000Z");
const spec = (renewS: number, holder: string | null = "w-0_ab12", duration = 6) => ({
  holderIdentity: holder,
  renewTime: new Date(T + renewS * 1000)
    .toISOString()
    .replace("Z", "000Z")
    .replace(/\.(\d{3})000Z$/, ".$1123Z"),
  acquireTime: new Date(T).toISOString(),
  leaseDurationSeconds: duration,
});

describe("sightLease / leaseView", () => {
  it("times a renewal from when it was seen, on our clock: a worker whose clock is off still counts as live", () => {
    // The worker's clock is 20 s behind: by its renewTime the Lease ran out long ago.
    const s = sightLease(undefined, spec(0), T + 20_000);
    expect(leaseView(s, T + 20_000).live).toBe(false);
    // Its next renewal, seen now, lasts 6 s from now.
    const r = sightLease(s, spec(2), T + 22_000);
    expect(leaseView(r, T + 22_000)).toEqual({ live: true, held: true, expiresInMs: 6000, acquiredAt: T });
    expect(leaseView(r, T + 27_999).live).toBe(true);
    expect(leaseView(r, T + 28_000).live).toBe(false);
  });

  it("trusts a first sighting's renewTime, but never one in the future", () => {
    expect(leaseView(sightLease(undefined, spec(0), T + 1000), T + 1000).expiresInMs).toBe(5000);
    // Ahead by a minute: as if renewed now, not for 66 s.
    expect(leaseView(sightLease(undefined, spec(60), T), T).expiresInMs).toBe(6000);
    // Renewed an hour ago: dead at once.
    expect(leaseView(sightLease(undefined, spec(0), T + 3_600_000), T + 3_600_000).live).toBe(false);
  });

  it("a stale cache (older renewTime than a direct read) changes nothing; the same renewal read twice neither", () => {
    const read = sightLease(sightLease(undefined, spec(0), T), spec(4), T + 4000);
    expect(sightLease(read, spec(2), T + 5000)).toBe(read);
    // The same renewal, as a list (Date) and as a watch (string with microseconds).
    expect(sightLease(read, { ...spec(4), renewTime: new Date(T + 4000) }, T + 9000)).toBe(read);
    expect(leaseView(read, T + 9000).live).toBe(true);
  });

  it("a released Lease (no holder) is not live, yet was held; a new one never renewed was not", () => {
    const up = sightLease(undefined, spec(0), T);
    const released = sightLease(up, spec(1, null), T + 1000);
    expect(leaseView(released, T + 1000)).toEqual({ live: false, held: true, expiresInMs: undefined, acquiredAt: T });
    expect(leaseView(sightLease(undefined, {}, T), T)).toEqual({ live: false, held: false, expiresInMs: undefined });
    expect(leaseView(undefined, T)).toEqual({ live: false, held: false });
  });
});

describe("LeaseTracker", () => {
  it("asks for a reconcile when a Lease is new, comes alive, is released or had expired; not for renewals", () => {
    let now = T;
    const t = new LeaseTracker(() => now);
    expect(t.observe("ns/w-0", {})).toBe(true); // created by the operator, never renewed
    expect(t.observe("ns/w-0", {})).toBe(false);
    expect(t.observe("ns/w-0", spec(0))).toBe(true); // the worker started
    now += 2000;
    expect(t.observe("ns/w-0", spec(2))).toBe(false); // a renewal of a live Lease
    expect(t.view("ns/w-0").expiresInMs).toBe(6000);
    now += 7000; // silent: expired on our clock
    expect(t.view("ns/w-0").live).toBe(false);
    expect(t.observe("ns/w-0", spec(9))).toBe(true); // renewed again after it had run out
    now += 1000;
    expect(t.observe("ns/w-0", spec(10, null))).toBe(true); // released on SIGTERM
    t.forget("ns/w-0");
    expect(t.view("ns/w-0")).toEqual({ live: false, held: false });
  });
});
