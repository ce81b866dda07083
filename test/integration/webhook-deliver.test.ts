// Signed delivery over real HTTP to a receiver that verifies with the `standardwebhooks` package: retries keep
// the webhook-id, Retry-After is honoured, 410 ends it, a receiver down for good exhausts the budget. The clock
// and sleep are injected (virtual time), so budgets and Retry-After are asserted as values, not waited for.
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { AlarmMessage } from "../../alarms/messages.ts";
import type { RetryBudget } from "../../alarms/webhook/backoff.ts";
import { type AttemptEnd, type AttemptStart, type DeliverOptions, deliver } from "../../alarms/webhook/deliver.ts";
import { raisedPayload, webhookPayload } from "../../alarms/webhook/payload.ts";
import { generateSigningSecret, webhookId } from "../../alarms/webhook/sign.ts";
import { startWebhookReceiver, type WebhookReceiver } from "../setup/webhook-receiver.ts";

const alarm: AlarmMessage = {
  v: 1,
  type: "alarm",
  id: "shop/door:entry:7:1700000000000",
  camera_id: "shop/door",
  rule: "entry",
  kind: "presence",
  severity: "critical",
  track_id: 7,
  zone: "hall",
  box: [10, 20, 110, 220],
  timestamp: "2023-11-14T22:13:20.000Z",
  detail: "person in hall",
  snapshot_key: "shop/door/entry_7_1700000000000.jpg",
  clip: { key: "shop/door/entry_7_1700000000000.mp4", pre_seconds: 5, post_seconds: 5 },
  dedup_window_seconds: 60,
  webhook_secret: "door-hook",
};
const body = raisedPayload(alarm);
const id = webhookId(alarm.id, "alarm.raised");
const fast: Partial<RetryBudget> = { initialDelayMs: 100, maxDelayMs: 1000, maxAttempts: 5, attemptTimeoutMs: 5000 };

let rx: WebhookReceiver;
beforeAll(async () => {
  rx = await startWebhookReceiver();
});
afterAll(() => rx.close());
afterEach(async () => {
  rx.received.length = 0;
  rx.setStatus(200);
  rx.setDelay(0);
  await rx.up();
});

/** Virtual time: `sleep` records what was asked and moves the clock, the HTTP is real. */
function run(o: Partial<DeliverOptions> = {}, onSleep?: (n: number) => Promise<void> | void) {
  let virtual = 0;
  const sleeps: number[] = [];
  const starts: AttemptStart[] = [];
  const ends: [number, AttemptEnd][] = [];
  const result = deliver({
    url: rx.url,
    secret: rx.secret,
    type: "alarm.raised",
    alarmId: alarm.id,
    body,
    budget: fast,
    random: () => 0.5,
    now: () => Date.now() + virtual,
    sleep: async (ms) => {
      sleeps.push(ms);
      virtual += ms;
      await onSleep?.(sleeps.length);
    },
    hooks: {
      onAttemptStart: async (a) => {
        starts.push(a);
        return 100 + starts.length;
      },
      onAttemptEnd: async (rowId, r) => {
        ends.push([rowId, r]);
      },
    },
    ...o,
  });
  return { result, sleeps, starts, ends };
}

describe("deliver", () => {
  it("200: one signed attempt with the Standard Webhooks headers and the payload's exact bytes", async () => {
    const r = run();
    const res = await r.result;
    expect(res).toMatchObject({ result: "delivered", webhookId: id, attempts: 1, lastError: null });
    expect(res.history[0]).toMatchObject({ status_code: 200, error: null, outcome: "delivered" });
    expect(rx.received).toHaveLength(1);
    const got = rx.received[0];
    expect(got).toMatchObject({ webhookId: id, type: "alarm.raised", verified: true, status: 200 });
    expect(got?.schemaError).toBeUndefined();
    expect(got?.raw).toBe(JSON.stringify(body));
    expect(webhookPayload.parse(got?.body)).toEqual(body);
    expect(got?.headers["content-type"]).toBe("application/json");
    expect(got?.headers["user-agent"]).toMatch(/^Vigil/);
    expect(got?.headers["webhook-signature"]).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
    expect(r.starts).toEqual([{ webhook_id: id, started_ms: expect.any(Number), attempt: 1 }]);
    expect(r.ends).toEqual([
      [101, { finished_ms: expect.any(Number), status_code: 200, latency_ms: expect.any(Number), error: null }],
    ]);
  });

  it("500 three times, then 200: retried with backoff, the same webhook-id, each attempt signed afresh", async () => {
    rx.failNext(3, 500);
    const r = run();
    const res = await r.result;
    expect(res).toMatchObject({ result: "delivered", attempts: 4, lastError: null });
    expect(rx.received.map((x) => [x.webhookId, x.verified, x.status])).toEqual([
      [id, true, 500],
      [id, true, 500],
      [id, true, 500],
      [id, true, 200],
    ]);
    expect(rx.count(id)).toBe(4);
    // Equal jitter at random 0.5: 3/4 of 100, 200, 400 ms.
    expect(r.sleeps).toEqual([75, 150, 300]);
    // The timestamp is fresh per attempt (virtual time moved), and each still verifies.
    const ts = rx.received.map((x) => Number(x.headers["webhook-timestamp"]));
    expect(ts[3]).toBeGreaterThanOrEqual(ts[0] as number);
    // Hooks: once per attempt, in order, each end paired with its start's id.
    expect(r.starts.map((s) => s.attempt)).toEqual([1, 2, 3, 4]);
    expect(r.ends.map(([rowId, e]) => [rowId, e.status_code, e.error])).toEqual([
      [101, 500, "HTTP 500 Internal Server Error"],
      [102, 500, "HTTP 500 Internal Server Error"],
      [103, 500, "HTTP 500 Internal Server Error"],
      [104, 200, null],
    ]);
  });

  it("429 with Retry-After: the wait is the server's, in seconds or as an HTTP-date", async () => {
    rx.failNext(1, 429, { retryAfter: "3" });
    rx.failNext(1, 503, { retryAfter: new Date(Date.now() + 60_000).toUTCString() });
    const r = run({ budget: { ...fast, maxElapsedMs: 120_000 } });
    const res = await r.result;
    expect(res).toMatchObject({ result: "delivered", attempts: 3 });
    expect(r.sleeps[0]).toBe(3000);
    // An HTTP-date has whole seconds, and the virtual clock is already 3 s ahead of the one that wrote it: 56–57 s,
    // far above the 150 ms backoff.
    expect(r.sleeps[1]).toBeGreaterThan(55_000);
    expect(r.sleeps[1]).toBeLessThanOrEqual(57_000);
  });

  it("410: gone at once, no retry", async () => {
    rx.setStatus(410);
    const r = run();
    const res = await r.result;
    expect(res).toMatchObject({
      result: "gone",
      attempts: 1,
      lastError: "HTTP 410 Gone: the receiver asked to stop sending",
    });
    expect(r.sleeps).toEqual([]);
    expect(rx.count(id)).toBe(1);
  });

  it("receiver down for good: exhausted after the attempt budget, with the last error", async () => {
    await rx.down();
    const r = run({ budget: { ...fast, maxAttempts: 3 } });
    const res = await r.result;
    expect(res).toMatchObject({
      result: "exhausted",
      attempts: 3,
      exhaustedBy: "3 attempts, the budget's limit",
      permanent: false,
    });
    expect(res.lastError).toMatch(/^network error: connect ECONNREFUSED 127\.0\.0\.1:\d+$/);
    expect(r.ends.map(([, e]) => e.status_code)).toEqual([null, null, null]);
    expect(rx.received).toHaveLength(0);
  });

  it("receiver down for a while, then up: delivered on the attempt after it returns", async () => {
    await rx.down();
    const r = run({}, async (n) => {
      if (n === 2) await rx.up();
    });
    const res = await r.result;
    expect(res).toMatchObject({ result: "delivered", attempts: 3 });
    expect(res.history.map((h) => h.outcome)).toEqual(["retry", "retry", "delivered"]);
    expect(rx.count(id)).toBe(1);
  });

  it("a receiver slower than the attempt timeout: retried, the error says so", async () => {
    rx.setDelay(3000);
    const r = run({ budget: { ...fast, maxAttempts: 2, attemptTimeoutMs: 300 } });
    const res = await r.result;
    expect(res).toMatchObject({ result: "exhausted", attempts: 2, lastError: "no response within 300 ms" });
    expect(r.ends.map(([, e]) => e.status_code)).toEqual([null, null]);
  });

  it("a wrong signing secret: the receiver's verification rejects every attempt, and the test sees it", async () => {
    const r = run({ secret: generateSigningSecret(), budget: { ...fast, maxAttempts: 2 } });
    const res = await r.result;
    expect(res).toMatchObject({
      result: "exhausted",
      attempts: 2,
      lastError: "HTTP 401 Unauthorized",
      permanent: true,
    });
    expect(rx.received.map((x) => [x.verified, x.verifyError, x.status])).toEqual([
      [false, "No matching signature found", 401],
      [false, "No matching signature found", 401],
    ]);
  });

  it("aborted while waiting to retry: stops, says aborted", async () => {
    rx.setStatus(503);
    const ac = new AbortController();
    const r = run({ signal: ac.signal }, () => ac.abort());
    const res = await r.result;
    expect(res).toMatchObject({ result: "aborted", attempts: 1 });
  });

  it("a hook that fails stops the delivery: nothing is sent unrecorded", async () => {
    const r = run({
      hooks: {
        onAttemptStart: () => Promise.reject(new Error("database down")),
        onAttemptEnd: async () => {},
      },
    });
    await expect(r.result).rejects.toThrow("database down");
    expect(rx.received).toHaveLength(0);
  });

  it("userinfo becomes Basic auth; neither it nor the query appears in an error", async () => {
    const url = new URL(rx.url);
    url.username = "vigil";
    url.password = "s3cr et";
    url.searchParams.set("token", "tok-123");
    const ok = await run({ url: url.href }).result;
    expect(ok.result).toBe("delivered");
    expect(rx.received[0]?.headers.authorization).toBe(`Basic ${Buffer.from("vigil:s3cr et").toString("base64")}`);
    await rx.down();
    const down = await run({ url: url.href, budget: { ...fast, maxAttempts: 1 } }).result;
    expect(down.result).toBe("exhausted");
    expect(down.lastError).not.toMatch(/vigil|s3cr|tok-123/);
  });

  it("refuses a malformed secret or url before sending, without quoting them", async () => {
    await expect(run({ secret: `whsec_${Buffer.alloc(8, 1).toString("base64")}` }).result).rejects.toThrow(
      /24 to 64 random bytes/,
    );
    await expect(run({ url: "ftp://x:tok@example.com/h" }).result).rejects.toThrow(
      /^webhook url: must be http or https, is ftp$/,
    );
    expect(rx.received).toHaveLength(0);
  });
});
