import { describe, expect, it } from "vitest";
import {
  classifyError,
  classifyResponse,
  header,
  parseResetDuration,
  parseRetryAfter,
  rateLimitHints,
} from "../../assessor/keys/classify.ts";

const now = Date.parse("2026-01-01T00:00:00Z");
const dashscope = (code: string, message = "m") => ({ error: { code, message, type: "x" } });

describe("parseRetryAfter", () => {
  it.each([
    ["120", 120_000],
    [" 0 ", 0],
    ["1.5", 1500],
    ["Thu, 01 Jan 2026 00:00:30 GMT", 30_000],
    ["Wed, 31 Dec 2025 23:00:00 GMT", 0],
    [null, undefined],
    [undefined, undefined],
    ["", undefined],
    ["-5", undefined],
    ["soon", undefined],
    ["2026-01-01T00:00:30Z", undefined],
  ])("%j → %j ms", (v, ms) => {
    expect(parseRetryAfter(v, now)).toBe(ms);
  });
});

describe("parseResetDuration", () => {
  it.each([
    ["6m0s", 360_000],
    ["1s", 1000],
    ["20ms", 20],
    ["0.5s", 500],
    ["1h2m3.5s", 3_723_500],
    ["17ms", 17],
    ["250us", 0],
    ["1500µs", 2],
    ["2", 2000],
    ["0", 0],
    ["2026-01-01T00:00:07Z", 7000],
    ["2025-12-31T00:00:00Z", 0],
    ["", undefined],
    [null, undefined],
    ["6 minutes", undefined],
    ["1s2", undefined],
    ["m", undefined],
    ["-1s", undefined],
    ["NaNs", undefined],
  ])("%j → %j ms", (v, ms) => {
    expect(parseResetDuration(v, now)).toBe(ms);
  });
});

describe("header", () => {
  it("reads fetch Headers and plain objects case-insensitively", () => {
    const h = new Headers({ "Retry-After": "3" });
    expect(header(h, "retry-after")).toBe("3");
    expect(header({ "Retry-After": "4" }, "retry-after")).toBe("4");
    expect(header({ "x-a": ["1", "2"] }, "X-A")).toBe("1, 2");
    expect(header({ "x-n": 5 }, "x-n")).toBe("5");
    expect(header({}, "x")).toBeUndefined();
    expect(header(undefined, "x")).toBeUndefined();
    expect(header(new Headers(), "x")).toBeUndefined();
  });
});

describe("rateLimitHints", () => {
  it("reads OpenAI's headers for both dimensions", () => {
    const h = new Headers({
      "x-ratelimit-limit-requests": "60",
      "x-ratelimit-remaining-requests": "0",
      "x-ratelimit-reset-requests": "1s",
      "x-ratelimit-limit-tokens": "150000",
      "x-ratelimit-remaining-tokens": "149984",
      "x-ratelimit-reset-tokens": "6m0s",
      "retry-after": "2",
    });
    expect(rateLimitHints(h, now)).toEqual({
      retryAfterMs: 2000,
      limit: { requests: 60, tokens: 150_000 },
      remaining: { requests: 0, tokens: 149_984 },
      resetMs: { requests: 1000, tokens: 360_000 },
    });
  });

  it("prefers retry-after-ms, as the openai package does, and skips garbage", () => {
    expect(rateLimitHints({ "retry-after-ms": "250", "retry-after": "9" }, now)).toEqual({ retryAfterMs: 250 });
    expect(rateLimitHints({ "retry-after-ms": "x", "retry-after": "9" }, now)).toEqual({ retryAfterMs: 9000 });
    expect(
      rateLimitHints({ "x-ratelimit-remaining-requests": "-1", "x-ratelimit-reset-tokens": "later" }, now),
    ).toEqual({});
    expect(rateLimitHints(undefined, now)).toEqual({});
  });
});

describe("classifyResponse", () => {
  it("DashScope's Throttling.RateQuota cools the scope for requests, with Retry-After", () => {
    expect(
      classifyResponse({ status: 429, headers: { "retry-after": "3" }, body: dashscope("Throttling.RateQuota") }, now),
    ).toEqual({
      kind: "rate_limited",
      target: "scope",
      dimension: "requests",
      retryAfterMs: 3000,
      status: 429,
      code: "Throttling.RateQuota",
      reason: "HTTP 429 Throttling.RateQuota: request rate",
    });
  });

  it("Throttling.AllocationQuota is the token dimension, and takes its reset header", () => {
    const c = classifyResponse(
      {
        status: 429,
        headers: { "x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s" },
        body: dashscope("Throttling.AllocationQuota"),
      },
      now,
    );
    expect(c).toMatchObject({ kind: "rate_limited", target: "scope", dimension: "tokens", resetMs: 360_000 });
    expect(c).not.toHaveProperty("retryAfterMs");
  });

  it("OpenAI's rate_limit_exceeded names its dimension in type", () => {
    const body = {
      error: { message: "Rate limit reached on tokens per min", type: "tokens", code: "rate_limit_exceeded" },
    };
    const c = classifyResponse({ status: 429, headers: { "x-ratelimit-reset-tokens": "20ms" }, body }, now);
    expect(c).toMatchObject({ kind: "rate_limited", target: "scope", dimension: "tokens", resetMs: 20 });
  });

  it("a bare 429 cools the key alone; the exhausted dimension comes from remaining-*, else the longest reset", () => {
    expect(classifyResponse({ status: 429 }, now)).toEqual({
      kind: "rate_limited",
      target: "key",
      status: 429,
      reason: "HTTP 429: rate limited",
    });
    const h = {
      "x-ratelimit-remaining-requests": "5",
      "x-ratelimit-remaining-tokens": "0",
      "x-ratelimit-reset-requests": "2s",
      "x-ratelimit-reset-tokens": "500ms",
    };
    expect(classifyResponse({ status: 429, headers: h }, now)).toMatchObject({ dimension: "tokens", resetMs: 500 });
    const both = { "x-ratelimit-reset-requests": "2s", "x-ratelimit-reset-tokens": "500ms" };
    const c = classifyResponse({ status: 429, headers: both }, now);
    expect(c).toMatchObject({ resetMs: 2000 });
    expect(c).not.toHaveProperty("dimension");
  });

  it.each([
    [401, dashscope("InvalidApiKey"), "key", "HTTP 401 InvalidApiKey: the key is invalid or revoked"],
    [
      401,
      { error: { code: "invalid_api_key", message: "Incorrect API key provided: sk-abc***xyz" } },
      "key",
      "HTTP 401 invalid_api_key: the key is invalid or revoked",
    ],
    [403, dashscope("Arrearage"), "scope", "HTTP 403 Arrearage: the account is in arrears"],
    // DashScope's native API answers Arrearage with a 400: the code decides, not the status.
    [400, { code: "Arrearage", message: "Access denied" }, "scope", "HTTP 400 Arrearage: the account is in arrears"],
    [
      429,
      { error: { code: "insufficient_quota", type: "insufficient_quota" } },
      "scope",
      "HTTP 429 insufficient_quota: the account's quota is used up",
    ],
    [401, undefined, "key", "HTTP 401: not authenticated"],
    [403, "<html>nope</html>", "key", "HTTP 403: forbidden"],
    [403, dashscope("AccessDenied"), "key", "HTTP 403 AccessDenied: access denied"],
    [
      403,
      dashscope("AllocationQuota.FreeTierOnly"),
      "scope",
      "HTTP 403 AllocationQuota.FreeTierOnly: the model's free tier is used up",
    ],
  ])("%i %j → disabled (%s)", (status, body, target, reason) => {
    expect(classifyResponse({ status, body }, now)).toEqual({
      kind: "disabled",
      target,
      status,
      ...(typeof body === "object" && body ? { code: (body as any).error?.code ?? (body as any).code } : {}),
      reason,
    });
  });

  it("never quotes the provider's message for a key error (it may carry part of the key)", () => {
    const c = classifyResponse(
      {
        status: 401,
        body: { error: { code: "invalid_api_key", message: "Incorrect API key provided: sk-abc***xyz" } },
      },
      now,
    );
    expect(c.reason).not.toContain("sk-");
  });

  it.each([
    [500, "server"],
    [502, "server"],
    [503, "server"],
    [504, "server"],
    [408, "timeout"],
    [409, "server"],
  ])("%i → transient (%s)", (status, cause) => {
    expect(classifyResponse({ status, body: dashscope("InternalError", "try later") }, now)).toEqual({
      kind: "transient",
      cause,
      status,
      code: "InternalError",
      reason: `HTTP ${status} InternalError: try later`,
    });
  });

  it.each([400, 404, 413, 422])("%i → rejected: the task's fault, no key changes", (status) => {
    expect(
      classifyResponse({ status, body: '{"error":{"code":"InvalidParameter","message":"json word"}}' }, now),
    ).toEqual({
      kind: "rejected",
      status,
      code: "InvalidParameter",
      reason: `HTTP ${status} InvalidParameter: json word`,
    });
  });

  it("cuts a long provider message", () => {
    const c = classifyResponse({ status: 500, body: "x".repeat(5000) }, now);
    expect(c.reason.length).toBe(200);
  });
});

describe("classifyError (the openai package's errors, by shape)", () => {
  class APIError extends Error {
    readonly status: number | undefined;
    readonly error: object | undefined;
    readonly headers: Headers | undefined;
    constructor(status: number | undefined, error: object | undefined, message: string, headers: Headers | undefined) {
      super(message);
      this.status = status;
      this.error = error;
      this.headers = headers;
    }
    get code() {
      return (this.error as any)?.code;
    }
  }
  const named = (name: string, message: string, extra: object = {}) =>
    Object.assign(new Error(message), { name, ...extra });

  it("a RateLimitError: status, headers and the body's error member", () => {
    const err = new APIError(
      429,
      { code: "Throttling.RateQuota", message: "Requests rate limit exceeded" },
      "429 Requests rate limit exceeded",
      new Headers({ "retry-after": "1" }),
    );
    expect(classifyError(err, now)).toMatchObject({
      kind: "rate_limited",
      target: "scope",
      dimension: "requests",
      retryAfterMs: 1000,
      code: "Throttling.RateQuota",
    });
  });

  it("an AuthenticationError", () => {
    const err = new APIError(401, { code: "InvalidApiKey" }, "401", new Headers());
    expect(classifyError(err, now)).toMatchObject({ kind: "disabled", target: "key", code: "InvalidApiKey" });
  });

  it("an InternalServerError with no body", () => {
    expect(classifyError(new APIError(503, undefined, "503 status code (no body)", new Headers()), now)).toEqual({
      kind: "transient",
      cause: "server",
      status: 503,
      reason: "HTTP 503",
    });
  });

  it.each([
    [named("APIConnectionTimeoutError", "Request timed out."), { kind: "transient", cause: "timeout" }],
    [named("TimeoutError", "The operation was aborted due to timeout"), { kind: "transient", cause: "timeout" }],
    [named("Error", "x", { cause: { code: "ETIMEDOUT" } }), { kind: "transient", cause: "timeout", code: "ETIMEDOUT" }],
    [named("APIUserAbortError", "Request was aborted."), { kind: "aborted" }],
    [named("AbortError", "This operation was aborted"), { kind: "aborted" }],
    [
      named("APIConnectionError", "Connection error.", { cause: { code: "ECONNREFUSED" } }),
      {
        kind: "transient",
        cause: "network",
        code: "ECONNREFUSED",
        reason: "network error ECONNREFUSED: Connection error.",
      },
    ],
    ["boom", { kind: "transient", cause: "network", reason: "network error: boom" }],
    [undefined, { kind: "transient", cause: "network" }],
  ])("%s → %j", (err, want) => {
    expect(classifyError(err, now)).toMatchObject(want);
  });
});
