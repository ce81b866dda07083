// The send guard (assessor/pool/send-guard.ts): with a fake clock, no window of the provider's ever holds more of
// our calls than its limit, however late the calls come to it.
import { describe, expect, it } from "vitest";
import { SendGuard, windowsFor } from "../../assessor/pool/send-guard.ts";

describe("windowsFor", () => {
  it("mirrors the provider's windows: rps per second (or per 1/rps s below 1), rpm per minute", () => {
    expect(windowsFor({ rps: 10, rpm: 600 })).toEqual([
      { count: 10, spanMs: 1000 },
      { count: 600, spanMs: 60_000 },
    ]);
    expect(windowsFor({ rps: 0.5 })).toEqual([{ count: 1, spanMs: 2000 }]);
    expect(windowsFor({})).toEqual([]);
  });
});

describe("SendGuard", () => {
  it("lets 10 calls go at once, holds the 11th until a second (and the margin) after the first", () => {
    const g = new SendGuard(3);
    const w = windowsFor({ rps: 10 });
    for (let i = 0; i < 10; i++) expect(g.tryClaim("A", 1000 + i, w)).toBe(0);
    expect(g.tryClaim("A", 1010, w)).toBe(1000 + 1000 + 3 - 1010);
    expect(g.tryClaim("A", 2003, w)).toBe(0);
    // Scopes are apart.
    expect(g.tryClaim("B", 1010, w)).toBe(0);
  });

  it("keeps every sliding window at the limit when calls come late and bunched", () => {
    const g = new SendGuard(0);
    const w = windowsFor({ rps: 5, rpm: 200 });
    const sent: number[] = [];
    let t = 0;
    // Calls asked for every 150 ms, with stalls of up to 400 ms now and then.
    for (let i = 0; i < 2000; i++) {
      t += 150 + (i % 37 === 0 ? 400 : 0);
      let at = t;
      for (let wait = g.tryClaim("A", at, w); wait > 0; wait = g.tryClaim("A", at, w)) at += wait;
      sent.push(at);
    }
    const most = (span: number) => {
      let max = 0;
      for (let i = 0, j = 0; i < sent.length; i++) {
        while ((sent[j] as number) <= (sent[i] as number) - span) j++;
        max = Math.max(max, i - j + 1);
      }
      return max;
    };
    expect(most(1000)).toBe(5);
    expect(most(60_000)).toBe(200);
  });
});
