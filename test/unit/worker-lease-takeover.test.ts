import { describe, expect, it } from "vitest";
import { takeover } from "../../worker/lease.ts";

const ME = "w-0_bbbb";
const spec = (holderIdentity: string | undefined, renewTime: string) => ({
  holderIdentity,
  renewTime,
  leaseDurationSeconds: 6,
});

describe("worker Lease takeover", () => {
  it("takes a Lease no one holds at once (a new pod, or a clean stop released it)", () => {
    expect(takeover(undefined, spec(undefined, "2026-12-01T00:00:00.000000Z"), ME, 1000, 6).waitMs).toBe(0);
    expect(takeover(undefined, undefined, ME, 1000, 6).waitMs).toBe(0);
  });

  it("renews its own at once", () => {
    expect(takeover(undefined, spec(ME, "2026-12-01T00:00:00.000000Z"), ME, 1000, 6).waitMs).toBe(0);
  });

  it("waits a whole duration, on its own clock, for a previous process's record to go unrenewed", () => {
    const first = takeover(undefined, spec("w-0_aaaa", "2026-12-01T00:00:00.000000Z"), ME, 10_000, 6);
    expect(first.waitMs).toBe(6000);
    // The same record 4 s later: 2 s to go, whatever the renewTime's own clock says.
    const later = takeover(first.observed, spec("w-0_aaaa", "2026-12-01T00:00:00.000000Z"), ME, 14_000, 6);
    expect(later.waitMs).toBe(2000);
    expect(takeover(later.observed, spec("w-0_aaaa", "2026-12-01T00:00:00.000000Z"), ME, 16_000, 6).waitMs).toBe(0);
  });

  it("starts over when the holder renews (it is alive), or another holder appears", () => {
    const first = takeover(undefined, spec("w-0_aaaa", "2026-12-01T00:00:00.000000Z"), ME, 10_000, 6);
    const renewed = takeover(first.observed, spec("w-0_aaaa", "2026-12-01T00:00:02.000000Z"), ME, 15_000, 6);
    expect(renewed.waitMs).toBe(6000);
    const other = takeover(renewed.observed, spec("w-0_cccc", "2026-12-01T00:00:02.000000Z"), ME, 16_000, 6);
    expect(other.waitMs).toBe(6000);
  });
});
