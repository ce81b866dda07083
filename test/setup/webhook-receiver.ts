// A real webhook receiver for tests and benchmarks: an HTTP server on a port the OS picks that verifies every
// request with the `standardwebhooks` package (an implementation independent of alarms/webhook/sign.ts), validates
// the body against the exported payload schema, and records what came. Its behaviour is programmable: answer a
// status (with Retry-After), answer late, or be down (listener closed, connections refused).
import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Webhook } from "standardwebhooks";
import { webhookPayload } from "../../alarms/webhook/payload.ts";
import { generateSigningSecret } from "../../alarms/webhook/sign.ts";

export type Received = {
  webhookId: string;
  /** The body's `type` (alarm.raised, alarm.clip), when the body is JSON with one. */
  type: string | undefined;
  body: unknown;
  raw: string;
  headers: Record<string, string>;
  /** The signature checked out with the receiver's secret (standardwebhooks' verify, 5 min tolerance). */
  verified: boolean;
  verifyError?: string;
  /** The body matched `webhookPayload`; else what did not. */
  schemaError?: string;
  /** What the receiver answered. */
  status: number;
  at: number;
};

type Answer = { status: number; retryAfter?: string; delayMs?: number };

export type WebhookReceiver = {
  /** The endpoint, `http://127.0.0.1:<port>/hook`. */
  url: string;
  port: number;
  /** The whsec_ secret it verifies with. */
  secret: string;
  received: Received[];
  /** Verified requests, of one type or all. */
  verified(type?: string): Received[];
  /** Requests carrying this webhook-id (verified or not). */
  count(webhookId: string): number;
  counts(): Map<string, number>;
  /** The next `n` requests get `status` (then the default again). */
  failNext(n: number, status: number, opts?: { retryAfter?: string }): void;
  /** The default answer from now on (200 at start). */
  setStatus(status: number, opts?: { retryAfter?: string }): void;
  /** Every answer waits this long first (0 at start). */
  setDelay(ms: number): void;
  /** Closes the listener and drops open connections: connections are refused until `up()`. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
};

export async function startWebhookReceiver(opts: { secret?: string; path?: string } = {}): Promise<WebhookReceiver> {
  const secret = opts.secret ?? generateSigningSecret();
  const path = opts.path ?? "/hook";
  const verifier = new Webhook(secret);
  const received: Received[] = [];
  const queue: Answer[] = [];
  let fallback: Answer = { status: 200 };
  let delayMs = 0;
  const sockets = new Set<Socket>();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString("utf8");
    const hdrs = Object.fromEntries(
      Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(", ") : (v ?? "")]),
    );
    let verified = false;
    let verifyError: string | undefined;
    try {
      verifier.verify(raw, hdrs, { jsonParse: false });
      verified = true;
    } catch (err) {
      verifyError = (err as Error).message;
    }
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      body = undefined;
    }
    const parsed = webhookPayload.safeParse(body);
    // A real receiver refuses what it cannot verify; the programmed answers are for verified requests.
    const answer: Answer =
      req.method !== "POST" || new URL(req.url ?? "/", "http://x").pathname !== path
        ? { status: 404 }
        : !verified
          ? { status: 401 }
          : (queue.shift() ?? fallback);
    received.push({
      webhookId: hdrs["webhook-id"] ?? "",
      type: typeof (body as { type?: unknown })?.type === "string" ? (body as { type: string }).type : undefined,
      body,
      raw,
      headers: hdrs,
      verified,
      ...(verifyError ? { verifyError } : {}),
      ...(parsed.success
        ? {}
        : { schemaError: parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ") }),
      status: answer.status,
      at: Date.now(),
    });
    const wait = answer.delayMs ?? delayMs;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    if (res.destroyed) return;
    res.writeHead(answer.status, {
      "content-type": "text/plain",
      ...(answer.retryAfter !== undefined ? { "retry-after": answer.retryAfter } : {}),
    });
    res.end(answer.status < 300 ? "ok" : "no");
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;

  const stop = async () => {
    if (!server.listening) return;
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const s of sockets) s.destroy();
    await closed;
  };

  return {
    url: `http://127.0.0.1:${port}${path}`,
    port,
    secret,
    received,
    verified: (type) => received.filter((r) => r.verified && (type === undefined || r.type === type)),
    count: (id) => received.filter((r) => r.webhookId === id).length,
    counts() {
      const m = new Map<string, number>();
      for (const r of received) m.set(r.webhookId, (m.get(r.webhookId) ?? 0) + 1);
      return m;
    },
    failNext(n, status, o = {}) {
      for (let i = 0; i < n; i++) queue.push({ status, ...o });
    },
    setStatus(status, o = {}) {
      fallback = { status, ...o };
    },
    setDelay(ms) {
      delayMs = ms;
    },
    down: stop,
    async up() {
      if (server.listening) return;
      server.listen(port, "127.0.0.1");
      await once(server, "listening");
    },
    close: stop,
  };
}
