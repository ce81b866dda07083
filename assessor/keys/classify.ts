// What a provider's answer means for the key pool, as a table: status, headers and the error body's code in, one
// class out. Pure (the clock comes in). It takes the `openai` package's error by shape (status, headers, error, name),
// not by class, so this file needs no client and reads a raw fetch response the same way.
//
// - rate_limited (429, DashScope's Throttling.*, OpenAI's rate_limit_exceeded): cool down and slow the scope.
//   DashScope counts per account and model over all of its keys (FACTS, "LLM providers"), and OpenAI per
//   organization, so a recognised rate-limit code cools the whole scope: another key of that scope would only earn
//   another 429. An unrecognised 429 cools the key alone, the cautious reading.
// - disabled (401, 403, insufficient_quota, Arrearage): no retry on this key, a person must act. Arrearage and
//   insufficient_quota are the account's (every key of the scope is in arrears), a bad key is the key's.
// - transient (5xx, timeouts, connection errors): retry on another key with backoff; the key stays in service.
// - rejected (other 4xx: 400 bad request, 404 no such model, 413 too large): the task's fault; another key would get
//   the same answer, so no retry and no change to the key.
// - aborted: the caller gave up (shutdown, the task's deadline); says nothing about the key.

export type HeaderSource =
  | { get(name: string): string | null | undefined }
  | Record<string, string | readonly string[] | number | undefined>
  | undefined;

/** A header's value, case-insensitively, from a fetch `Headers` or a plain object (Node's lower-cased headers). */
export function header(h: HeaderSource, name: string): string | undefined {
  if (!h) return undefined;
  if (typeof (h as { get?: unknown }).get === "function") {
    const v = (h as { get(n: string): string | null | undefined }).get(name);
    return v ?? undefined;
  }
  const rec = h as Record<string, string | readonly string[] | number | undefined>;
  const lower = name.toLowerCase();
  const k = Object.keys(rec).find((x) => x.toLowerCase() === lower);
  const v = k === undefined ? undefined : rec[k];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(", ") : String(v);
}

const HTTP_DATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)/i;

/**
 * `Retry-After` in ms from now: delta-seconds (`120`; a fraction like `1.5` too, which some servers send and the
 * openai package reads) or an HTTP-date (one in the past is 0). Undefined when absent or unreadable.
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  if (/^\d+(?:\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  if (!HTTP_DATE.test(v)) return undefined;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 1e-3, µs: 1e-3, ns: 1e-6 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:h|ms|m|s|us|µs|ns))+$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g;

/**
 * An `x-ratelimit-reset-*` value in ms: OpenAI writes Go durations (`6m0s`, `1s`, `20ms`, `1h2m3.5s`, `0.5s`). A bare
 * number is read as seconds, and an ISO-8601 timestamp as the time from now (other providers' forms). Undefined when
 * unreadable: a garbled header must not become a zero or a NaN cooldown.
 */
export function parseResetDuration(value: string | null | undefined, nowMs: number): number | undefined {
  const v = value?.trim();
  if (!v) return undefined;
  if (/^\d+(?:\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  if (DURATION.test(v)) {
    let ms = 0;
    for (const [, n, unit] of v.matchAll(DURATION_PART)) ms += Number(n) * (UNIT_MS[unit as string] ?? 0);
    return Math.round(ms);
  }
  if (/^\d{4}-\d{2}-\d{2}T/.test(v)) {
    const at = Date.parse(v);
    return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
  }
  return undefined;
}

export type Dimension = "requests" | "tokens";

/** What the `x-ratelimit-*` headers say, on a success as on a 429; a field is absent when its header is. */
export type RateLimitHints = {
  retryAfterMs?: number;
  limit?: Partial<Record<Dimension, number>>;
  remaining?: Partial<Record<Dimension, number>>;
  resetMs?: Partial<Record<Dimension, number>>;
};

export function rateLimitHints(h: HeaderSource, nowMs: number): RateLimitHints {
  const out: RateLimitHints = {};
  // The openai package reads `retry-after-ms` before `retry-after`; so do we.
  const ms = header(h, "retry-after-ms")?.trim();
  const retryAfterMs =
    ms && /^\d+(?:\.\d+)?$/.test(ms) ? Math.round(Number(ms)) : parseRetryAfter(header(h, "retry-after"), nowMs);
  if (retryAfterMs !== undefined) out.retryAfterMs = retryAfterMs;
  for (const d of ["requests", "tokens"] as const) {
    const limit = count(header(h, `x-ratelimit-limit-${d}`));
    const remaining = count(header(h, `x-ratelimit-remaining-${d}`));
    const reset = parseResetDuration(header(h, `x-ratelimit-reset-${d}`), nowMs);
    if (limit !== undefined) out.limit = { ...out.limit, [d]: limit };
    if (remaining !== undefined) out.remaining = { ...out.remaining, [d]: remaining };
    if (reset !== undefined) out.resetMs = { ...out.resetMs, [d]: reset };
  }
  return out;
}

const count = (v: string | undefined) => (v !== undefined && /^\s*\d+\s*$/.test(v) ? Number(v) : undefined);

export type Classification =
  | {
      kind: "rate_limited";
      /** Cool the scope (a recognised account-wide limit) or only the key. */
      target: "key" | "scope";
      /** Which limit ran out, when the answer says. */
      dimension?: Dimension;
      /** The server's wait (Retry-After, or the reset of the exhausted limit), when it gave one. */
      retryAfterMs?: number;
      resetMs?: number;
      status: number;
      code?: string;
      reason: string;
    }
  | { kind: "disabled"; target: "key" | "scope"; status?: number; code?: string; reason: string }
  | { kind: "transient"; cause: "server" | "timeout" | "network"; status?: number; code?: string; reason: string }
  | { kind: "rejected"; status: number; code?: string; reason: string }
  | { kind: "aborted"; reason: string };

type Row = { kind: "rate_limited" | "disabled"; target: "key" | "scope"; dimension?: Dimension; why: string };

/** Error codes that decide alone, whatever the status (DashScope answers Arrearage with 400 in its native API). */
const CODES: Record<string, Row> = {
  // DashScope (native and compatible mode).
  "Throttling.RateQuota": { kind: "rate_limited", target: "scope", dimension: "requests", why: "request rate" },
  "Throttling.AllocationQuota": { kind: "rate_limited", target: "scope", dimension: "tokens", why: "token quota" },
  "Throttling.BurstRate": { kind: "rate_limited", target: "scope", dimension: "requests", why: "burst rate" },
  Throttling: { kind: "rate_limited", target: "scope", why: "throttled" },
  limit_requests: { kind: "rate_limited", target: "scope", dimension: "requests", why: "request rate" },
  limit_burst_rate: { kind: "rate_limited", target: "scope", dimension: "requests", why: "burst rate" },
  InvalidApiKey: { kind: "disabled", target: "key", why: "the key is invalid or revoked" },
  invalid_api_key: { kind: "disabled", target: "key", why: "the key is invalid or revoked" },
  Arrearage: { kind: "disabled", target: "scope", why: "the account is in arrears" },
  AccessDenied: { kind: "disabled", target: "key", why: "access denied" },
  // A 403 in compatible mode when the account is set to "free tier only" and the model's free tier is spent.
  "AllocationQuota.FreeTierOnly": { kind: "disabled", target: "scope", why: "the model's free tier is used up" },
  // OpenAI: insufficient_quota comes as a 429 but is a billing stop, never to be retried (FACTS).
  insufficient_quota: { kind: "disabled", target: "scope", why: "the account's quota is used up" },
  rate_limit_exceeded: { kind: "rate_limited", target: "scope", why: "rate limit" },
  account_deactivated: { kind: "disabled", target: "scope", why: "the account is deactivated" },
};

export type ProviderResponse = {
  status: number;
  headers?: HeaderSource;
  /** The parsed body (`{error: {code, message, type}}`), its `error` member (what the openai package keeps), or text. */
  body?: unknown;
};

function errorObject(body: unknown): { code?: string; type?: string; message?: string } {
  if (typeof body === "string") {
    try {
      return errorObject(JSON.parse(body));
    } catch {
      return { message: body };
    }
  }
  if (!body || typeof body !== "object") return {};
  const b = body as Record<string, unknown>;
  const inner = b.error && typeof b.error === "object" ? (b.error as Record<string, unknown>) : b;
  const str = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
  // DashScope's native API puts code and message at the top; its compatible mode and OpenAI under `error`.
  const out: { code?: string; type?: string; message?: string } = {};
  const code = str(inner.code) ?? str(b.code);
  const type = str(inner.type);
  const message = str(inner.message) ?? str(b.message);
  if (code !== undefined) out.code = code;
  if (type !== undefined) out.type = type;
  if (message !== undefined) out.message = message;
  return out;
}

const MAX_REASON = 200;

function reasonOf(status: number | undefined, e: { code?: string; message?: string }, why?: string): string {
  const head = [status !== undefined ? `HTTP ${status}` : undefined, e.code].filter(Boolean).join(" ");
  const tail = why ?? e.message;
  return (tail ? `${head}: ${tail}` : head).slice(0, MAX_REASON);
}

/** A provider's non-2xx answer. The reason quotes the provider's message only where no table row explains it. */
export function classifyResponse(r: ProviderResponse, nowMs: number): Classification {
  const { status } = r;
  const e = errorObject(r.body);
  const row = e.code !== undefined ? CODES[e.code] : undefined;
  const opt = <K extends string, V>(k: K, v: V | undefined) => (v === undefined ? {} : ({ [k]: v } as Record<K, V>));
  const code = opt("code", e.code);

  if (row?.kind === "disabled" || status === 401 || status === 403) {
    const why = row?.kind === "disabled" ? row.why : status === 401 ? "not authenticated" : "forbidden";
    return {
      kind: "disabled",
      target: row?.kind === "disabled" ? row.target : "key",
      status,
      ...code,
      reason: reasonOf(status, e, why),
    };
  }
  if (row?.kind === "rate_limited" || status === 429) {
    const hints = rateLimitHints(r.headers, nowMs);
    // OpenAI's rate_limit_exceeded names the limit in `type` ("requests" or "tokens").
    const dimension =
      row?.dimension ??
      (e.type === "requests" || e.type === "tokens" ? (e.type as Dimension) : undefined) ??
      exhausted(hints);
    const resets = hints.resetMs ?? {};
    const resetMs = dimension !== undefined ? resets[dimension] : maxOf(resets.requests, resets.tokens);
    return {
      kind: "rate_limited",
      target: row?.target ?? "key",
      ...opt("dimension", dimension),
      ...opt("retryAfterMs", hints.retryAfterMs),
      ...opt("resetMs", resetMs),
      status,
      ...code,
      reason: reasonOf(status, e, row?.why ?? "rate limited"),
    };
  }
  if (status >= 500 || status === 408 || status === 409)
    return {
      kind: "transient",
      cause: status === 408 ? "timeout" : "server",
      status,
      ...code,
      reason: reasonOf(status, e),
    };
  return { kind: "rejected", status, ...code, reason: reasonOf(status, e) };
}

/** The dimension whose `remaining` is 0, when exactly one is. */
function exhausted(h: RateLimitHints): Dimension | undefined {
  const r = h.remaining ?? {};
  if (r.requests === 0 && r.tokens !== 0) return "requests";
  if (r.tokens === 0 && r.requests !== 0) return "tokens";
  return undefined;
}

const maxOf = (...xs: (number | undefined)[]) => {
  const ns = xs.filter((x): x is number => x !== undefined);
  return ns.length ? Math.max(...ns) : undefined;
};

/**
 * Whatever a call threw: the openai package's `APIError` (status, headers, error), its connection and timeout errors
 * (no status), an `AbortError`/`TimeoutError` from a signal, or a raw network error.
 */
export function classifyError(err: unknown, nowMs: number): Classification {
  const e = (err ?? {}) as {
    status?: unknown;
    headers?: HeaderSource;
    error?: unknown;
    name?: string;
    message?: string;
    code?: unknown;
    cause?: { code?: string; name?: string };
  };
  if (typeof e.status === "number" && e.status >= 100)
    return classifyResponse({ status: e.status, headers: e.headers, body: e.error ?? { code: e.code } }, nowMs);
  const name = e.name ?? "";
  const message = typeof e.message === "string" ? e.message : String(err);
  if (name === "APIUserAbortError" || name === "AbortError") return { kind: "aborted", reason: "the call was aborted" };
  if (name === "APIConnectionTimeoutError" || name === "TimeoutError" || e.cause?.name === "TimeoutError")
    return { kind: "transient", cause: "timeout", reason: "no response in time" };
  const code = typeof e.code === "string" ? e.code : e.cause?.code;
  if (code === "ETIMEDOUT" || code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT")
    return { kind: "transient", cause: "timeout", code, reason: `no response in time (${code})` };
  return {
    kind: "transient",
    cause: "network",
    ...(code !== undefined ? { code } : {}),
    reason: `network error${code ? ` ${code}` : ""}: ${message}`.slice(0, MAX_REASON),
  };
}
