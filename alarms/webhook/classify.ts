// What one webhook attempt's answer means, as a table: only 2xx delivers (Standard Webhooks: "considered a failure
// in any other scenario"), 410 Gone disables the endpoint, and everything else is retried within the budget.
//
// Permanent-looking 4xx (400, 401, 403, 404, 422, ...) are retried too, not dead-lettered at once. For an alarm
// receiver they almost always mean a receiver being deployed or misconfigured (a route not up yet, a secret rotated
// on one side first, an auth proxy restarting), which a person fixes within minutes; giving up on the first 404
// would lose the alarm for a transient mistake, and the budget bounds what retrying costs (10 attempts). They carry
// `permanent: true` so the service can say "the receiver rejects our requests" instead of "the receiver is down".
// 3xx is a failure too: redirects are not followed (the spec: update the URL instead; following them would also
// let a receiver point the signed POST at an internal address).
import { STATUS_CODES } from "node:http";
import { parseRetryAfter } from "./backoff.ts";

export type Classification =
  | { outcome: "delivered"; status: number }
  | { outcome: "gone"; status: 410; reason: string }
  | {
      outcome: "retry";
      status: number | null;
      reason: string;
      /** The server asked to wait this long (Retry-After), when it did. */
      retryAfterMs?: number;
      /** Will not fix itself: a person must change the receiver or the Secret's url. */
      permanent: boolean;
    };

export type RetryClassification = Extract<Classification, { outcome: "retry" }>;

/** Statuses outside 2xx that say "later" rather than "no". */
const TRANSIENT_4XX = new Set([408, 409, 423, 425, 429]);

export function classifyResponse(status: number, retryAfter: string | null | undefined, nowMs: number): Classification {
  if (status >= 200 && status <= 299) return { outcome: "delivered", status };
  const reason = `HTTP ${status}${STATUS_CODES[status] ? ` ${STATUS_CODES[status]}` : ""}`;
  if (status === 410) return { outcome: "gone", status, reason: `${reason}: the receiver asked to stop sending` };
  const retryAfterMs = parseRetryAfter(retryAfter, nowMs);
  const permanent = (status >= 300 && status <= 399) || (status >= 400 && status <= 499 && !TRANSIENT_4XX.has(status));
  return {
    outcome: "retry",
    status,
    reason: status >= 300 && status <= 399 ? `${reason} (redirects are not followed: update the url)` : reason,
    permanent,
    ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
  };
}

/**
 * A request that got no response: a timeout, a refused or reset connection, DNS, TLS. All are retried: each can be
 * a receiver restarting or a network blip. The reason names the cause (fetch's own "fetch failed" says nothing).
 */
export function classifyError(err: unknown, timeoutMs: number): RetryClassification {
  return { outcome: "retry", status: null, reason: describeError(err, timeoutMs), permanent: false };
}

function describeError(err: unknown, timeoutMs: number): string {
  const e = err as { name?: string; message?: string; code?: string; cause?: unknown } | undefined;
  if (e?.name === "TimeoutError") return `no response within ${timeoutMs} ms`;
  const cause = e?.cause as { code?: string; message?: string; errors?: { code?: string }[] } | undefined;
  const code = cause?.code ?? cause?.errors?.[0]?.code ?? e?.code;
  const detail = cause?.message || e?.message || String(err);
  return code && !detail.includes(code) ? `network error ${code}: ${detail}` : `network error: ${detail}`;
}
