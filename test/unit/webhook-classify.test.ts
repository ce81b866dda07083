import { describe, expect, it } from "vitest";
import { classifyError, classifyResponse } from "../../alarms/webhook/classify.ts";

const now = Date.parse("2025-01-01T00:00:00Z");

describe("classifyResponse", () => {
  it.each([
    [200, "delivered", undefined],
    [202, "delivered", undefined],
    [204, "delivered", undefined],
    [299, "delivered", undefined],
    [410, "gone", undefined],
    [408, "retry", false],
    [409, "retry", false],
    [425, "retry", false],
    [429, "retry", false],
    [500, "retry", false],
    [502, "retry", false],
    [503, "retry", false],
    [504, "retry", false],
    // Only 2xx delivers (Standard Webhooks); "permanent" 4xx and 3xx are retried but flagged for a person.
    [301, "retry", true],
    [307, "retry", true],
    [400, "retry", true],
    [401, "retry", true],
    [403, "retry", true],
    [404, "retry", true],
    [413, "retry", true],
    [422, "retry", true],
    [100, "retry", false],
  ])("%i → %s (permanent: %s)", (status, outcome, permanent) => {
    const c = classifyResponse(status, null, now);
    expect(c.outcome).toBe(outcome);
    if (c.outcome === "retry") {
      expect(c.permanent).toBe(permanent);
      expect(c.reason).toMatch(new RegExp(`^HTTP ${status}`));
      expect(c.retryAfterMs).toBeUndefined();
    }
  });

  it("names the status, and carries Retry-After in either form", () => {
    expect(classifyResponse(503, "7", now)).toEqual({
      outcome: "retry",
      status: 503,
      reason: "HTTP 503 Service Unavailable",
      permanent: false,
      retryAfterMs: 7000,
    });
    const c = classifyResponse(429, "Wed, 01 Jan 2025 00:01:00 GMT", now);
    expect(c).toMatchObject({ outcome: "retry", reason: "HTTP 429 Too Many Requests", retryAfterMs: 60_000 });
    expect(classifyResponse(410, null, now)).toEqual({
      outcome: "gone",
      status: 410,
      reason: "HTTP 410 Gone: the receiver asked to stop sending",
    });
    expect(classifyResponse(302, null, now)).toMatchObject({ reason: /redirects are not followed/ });
  });
});

describe("classifyError", () => {
  it("says what failed: timeouts, refused connections, DNS", () => {
    const timeout = new DOMException("The operation was aborted due to timeout", "TimeoutError");
    expect(classifyError(timeout, 15000)).toEqual({
      outcome: "retry",
      status: null,
      reason: "no response within 15000 ms",
      permanent: false,
    });
    const refused = Object.assign(new TypeError("fetch failed"), {
      cause: Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED" }),
    });
    expect(classifyError(refused, 1).reason).toBe("network error: connect ECONNREFUSED 127.0.0.1:9");
    const reset = Object.assign(new TypeError("fetch failed"), {
      cause: Object.assign(new Error("other side closed"), { code: "UND_ERR_SOCKET" }),
    });
    expect(classifyError(reset, 1).reason).toBe("network error UND_ERR_SOCKET: other side closed");
    expect(classifyError("weird", 1).reason).toBe("network error: weird");
  });
});
