// One signed webhook delivery, retried until it lands, the receiver says 410 Gone, the budget runs out or the
// caller aborts. The I/O edge around the pure parts: sign.ts (signature and webhook-id), classify.ts (what an answer
// means) and backoff.ts (when to try again). Each attempt is announced to `hooks` before the POST and finished
// after it, so the alarm service records it (a row left unfinished by a crash marks the next send as a repeat).
import { setTimeout as delay } from "node:timers/promises";
import type { DeliveryType } from "../messages.ts";
import { nextRetry, type RetryBudget, retryBudget } from "./backoff.ts";
import { type Classification, classifyError, classifyResponse } from "./classify.ts";
import { headers, parseSigningSecret, type SigningKey, sign, webhookId } from "./sign.ts";

export const USER_AGENT = "Vigil-Webhooks/1";
/** A response body is read (so the connection is kept alive) up to this much, then dropped. */
const MAX_RESPONSE_BYTES = 64 * 1024;

export type AttemptStart = { webhook_id: string; started_ms: number; attempt: number };
export type AttemptEnd = {
  finished_ms: number;
  status_code: number | null;
  latency_ms: number;
  error: string | null;
};

export type DeliverHooks = {
  /** Before each POST; its id comes back in `onAttemptEnd`. A rejection stops the delivery (nothing is sent). */
  onAttemptStart(a: AttemptStart): Promise<number>;
  /** After each POST, aborted ones included. A rejection stops the delivery. */
  onAttemptEnd(id: number, r: AttemptEnd): Promise<void>;
};

export type DeliverOptions = {
  /** http(s); userinfo becomes an `Authorization: Basic` header (fetch refuses URLs with credentials). */
  url: string;
  /** `whsec_…`, or a key parsed once by the caller. */
  secret: string | SigningKey;
  type: DeliveryType;
  alarmId: string;
  /** The JSON payload (payload.ts), serialized once: every attempt signs and sends the same bytes. */
  body: unknown;
  budget?: Partial<RetryBudget>;
  now?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  random?: () => number;
  signal?: AbortSignal;
  hooks?: DeliverHooks;
};

export type AttemptReport = AttemptEnd & { attempt: number; started_ms: number; outcome: Classification["outcome"] };

export type DeliverResult = {
  result: "delivered" | "gone" | "exhausted" | "aborted";
  webhookId: string;
  attempts: number;
  /** The last attempt's error (null when delivered): `HTTP 503 Service Unavailable`, `no response within 15000 ms`. */
  lastError: string | null;
  /** Why retrying stopped, when the budget ran out. */
  exhaustedBy?: string;
  /** The last failure was one a person must fix (a 4xx other than 408/409/423/425/429, a 3xx). */
  permanent?: boolean;
  /** Every attempt, for metrics (latency, status) and the service's log line. */
  history: AttemptReport[];
};

/** A webhook URL fit for a log line: scheme, host, port and the path's short segments. */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return "<invalid url>";
  }
  // Userinfo, query and fragment go. So do long path segments: services put the token in the path (Slack's is 24
  // characters, Discord's 68, Telegram's 46); "api", "v1", "hooks", "services" and ids of a few characters stay.
  const path = u.pathname
    .split("/")
    .map((seg) => (seg.length > 12 ? "…" : seg))
    .join("/");
  return `${u.protocol}//${u.host}${path === "/" ? "" : path}${u.search ? "?…" : ""}`;
}

/** The URL to POST to and its Basic credentials; throws, without quoting the URL, when it is not http(s). */
function target(url: string): { href: string; authorization?: string } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error("webhook url: not a URL");
  }
  if (u.protocol !== "https:" && u.protocol !== "http:")
    throw new Error(`webhook url: must be http or https, is ${u.protocol.replace(/:$/, "")}`);
  if (!u.username && !u.password) return { href: u.href };
  const basic = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`;
  u.username = "";
  u.password = "";
  return { href: u.href, authorization: `Basic ${Buffer.from(basic).toString("base64")}` };
}

const defaultSleep = async (ms: number, signal?: AbortSignal) => {
  try {
    await delay(ms, undefined, { signal });
  } catch (err) {
    if (!signal?.aborted) throw err;
  }
};

export async function deliver(o: DeliverOptions): Promise<DeliverResult> {
  const key = typeof o.secret === "string" ? parseSigningSecret(o.secret) : o.secret;
  const to = target(o.url);
  const budget = retryBudget(o.budget);
  const now = o.now ?? Date.now;
  const sleep = o.sleep ?? defaultSleep;
  const random = o.random ?? Math.random;
  const id = webhookId(o.alarmId, o.type);
  const body = Buffer.from(JSON.stringify(o.body));
  // Errors quote what undici says; make sure no form of the URL rides along.
  const scrub = (s: string) => s.replaceAll(to.href, redactUrl(to.href)).replaceAll(o.url, redactUrl(o.url));

  const history: AttemptReport[] = [];
  const done = (result: DeliverResult["result"], extra: Partial<DeliverResult> = {}): DeliverResult => {
    const last = history.at(-1);
    return { result, webhookId: id, attempts: history.length, lastError: last?.error ?? null, history, ...extra };
  };
  const startedMs = now();

  for (let attempt = 1; ; attempt++) {
    if (o.signal?.aborted) return done("aborted");
    const started_ms = now();
    const rowId = (await o.hooks?.onAttemptStart({ webhook_id: id, started_ms, attempt })) ?? attempt;
    const t0 = performance.now();
    const ts = Math.floor(started_ms / 1000);
    const timeout = AbortSignal.timeout(budget.attemptTimeoutMs);
    let cls: Classification | undefined;
    let status: number | null = null;
    try {
      const res = await fetch(to.href, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": USER_AGENT,
          ...headers(id, ts, sign(key, id, ts, body)),
          ...(to.authorization ? { authorization: to.authorization } : {}),
        },
        body,
        redirect: "manual",
        signal: o.signal ? AbortSignal.any([o.signal, timeout]) : timeout,
      });
      status = res.status;
      await drain(res);
      cls = classifyResponse(res.status, res.headers.get("retry-after"), now());
    } catch (err) {
      if (!o.signal?.aborted) cls = classifyError(err, budget.attemptTimeoutMs);
    }
    const end: AttemptEnd = {
      finished_ms: now(),
      status_code: status,
      latency_ms: Math.round(performance.now() - t0),
      error: cls === undefined ? "aborted" : cls.outcome === "delivered" ? null : scrub(cls.reason),
    };
    history.push({ ...end, attempt, started_ms, outcome: cls?.outcome ?? "retry" });
    await o.hooks?.onAttemptEnd(rowId, end);

    if (cls === undefined) return done("aborted");
    if (cls.outcome === "delivered") return done("delivered");
    if (cls.outcome === "gone") return done("gone");
    const next = nextRetry(
      { attempts: attempt, startedMs, nowMs: now(), retryAfterMs: cls.retryAfterMs },
      budget,
      random,
    );
    if (!next.retry) return done("exhausted", { exhaustedBy: next.reason, permanent: cls.permanent });
    await sleep(next.delayMs, o.signal);
  }
}

/** Reads and drops the response body up to a limit: a drained response leaves its connection reusable. */
async function drain(res: Response): Promise<void> {
  if (!res.body) return;
  const reader = res.body.getReader();
  let n = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      n += value.byteLength;
      if (n > MAX_RESPONSE_BYTES) {
        await reader.cancel();
        return;
      }
    }
  } catch {
    // The status decided already; a body cut short changes nothing.
  }
}
