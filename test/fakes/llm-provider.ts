// The one fake allowed in Vigil's tests: the paid LLM API. A local OpenAI-compatible chat-completions server that
// behaves like DashScope's compatible mode where the assessor cares:
// - limits count per quota scope (an account × model), summed over all keys of that scope, over a sliding minute
//   (rpm, tpm) and a sliding second (rps; rpm/60 when unset, since DashScope may enforce per second). Over: 429 with
//   DashScope's body code (`Throttling.RateQuota` for requests, `Throttling.AllocationQuota` for tokens) and a
//   `Retry-After` that is honest (when the oldest call in the full window leaves it). Rejected calls do not count.
// - 401 `InvalidApiKey` for unknown or revoked keys, 403 `Arrearage` for an account in arrears (changeable at runtime).
// - `response_format: json_object` needs the word "json" in the messages (400 otherwise), as DashScope's VL models.
// - answers derived from the images only (image_url data URLs), so a test can predict them; usage is plausible
//   (Qwen-VL counts one token per 28×28 pixels, read from the JPEG's frame header).
// - injected faults (5xx, a timeout that never answers, malformed JSON, fenced JSON) drawn from a seeded RNG so a run
//   with the same request order repeats.
// Real DashScope sends no rate-limit headers (FACTS); `rateLimitHeaders` adds OpenAI's `x-ratelimit-*` set to test
// that path. Keys never leave this process: stats name keys by fingerprint (first 8 hex of sha256).
//
// Importable (`startFakeProvider(config)`) or a process:
//   node test/fakes/llm-provider.ts --port N --config FILE   (YAML or JSON; port 0 = the OS's; prints one line)
import { createHash, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { parse as parseYaml } from "yaml";
import { z } from "zod";

const probability = z.number().min(0).max(1);

export const fakeProviderConfig = z
  .object({
    scopes: z.array(
      z.object({
        name: z.string().min(1),
        rpm: z.number().int().positive(),
        rps: z.number().positive().optional(),
        tpm: z.number().int().positive().optional(),
      }),
    ),
    keys: z.array(
      z.object({
        key: z.string().min(1),
        scope: z.string().min(1),
        revoked: z.boolean().default(false),
        arrears: z.boolean().default(false),
      }),
    ),
    /** Each admitted call waits a uniform draw in [min, max] ms before answering. */
    latencyMs: z.tuple([z.number().min(0), z.number().min(0)]).default([0, 0]),
    rateLimitHeaders: z.boolean().default(false),
    faults: z
      .object({
        rate5xx: probability.default(0),
        rateTimeout: probability.default(0),
        rateMalformed: probability.default(0),
        rateFenced: probability.default(0),
      })
      .default({ rate5xx: 0, rateTimeout: 0, rateMalformed: 0, rateFenced: 0 }),
    seed: z.number().int().default(1),
    host: z.string().default("127.0.0.1"),
  })
  .superRefine((c, ctx) => {
    const names = new Set(c.scopes.map((s) => s.name));
    for (const [i, k] of c.keys.entries()) {
      if (!names.has(k.scope)) ctx.addIssue({ code: "custom", path: ["keys", i, "scope"], message: "unknown scope" });
    }
    if (c.latencyMs[0] > c.latencyMs[1]) ctx.addIssue({ code: "custom", path: ["latencyMs"], message: "min > max" });
    const f = c.faults;
    if (f.rate5xx + f.rateTimeout + f.rateMalformed + f.rateFenced > 1) {
      ctx.addIssue({ code: "custom", path: ["faults"], message: "the fault rates sum to more than 1" });
    }
  });

export type FakeProviderConfig = z.input<typeof fakeProviderConfig>;
type Config = z.output<typeof fakeProviderConfig>;
type KeyEntry = Config["keys"][number];
export type Faults = Config["faults"];

/** The answer the fake gives for a set of images; exported so tests can predict it. */
export type Assessment = { risk: number; labels: string[]; reason: string };

type Counter = {
  calls: number;
  ok: number;
  r429: number;
  r401: number;
  r403: number;
  r400: number;
  r5xx: number;
  /** Calls the fake never answered (the timeout fault). */
  timeout: number;
};
const counter = (): Counter => ({ calls: 0, ok: 0, r429: 0, r401: 0, r403: 0, r400: 0, r5xx: 0, timeout: 0 });

export type ProviderStats = {
  calls: number;
  ok: number;
  byStatus: Record<string, number>;
  perScope: Record<string, Counter & { tokens: number }>;
  /** By key fingerprint (first 8 hex of sha256), never the key. */
  perKey: Record<string, Counter>;
  faults: { r5xx: number; timeout: number; malformed: number; fenced: number };
  inFlight: number;
  maxInFlight: number;
};

export type FakeProvider = {
  port: number;
  /** `http://host:port/compatible-mode/v1`, the baseURL an OpenAI client takes (`/v1` works too). */
  baseURL: string;
  stats(): ProviderStats;
  resetStats(): void;
  revoke(key: string): void;
  setKey(entry: { key: string; scope: string; revoked?: boolean; arrears?: boolean }): void;
  setFaults(faults: Partial<Faults>): void;
  close(): Promise<void>;
};

export const fingerprint = (key: string): string => createHash("sha256").update(key).digest("hex").slice(0, 8);

/** mulberry32: small, seeded, good enough to spread faults; the same seed gives the same sequence. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Width and height from a JPEG's SOFn marker, or undefined when the bytes are not a JPEG with one. */
export function jpegSize(buf: Buffer): { width: number; height: number } | undefined {
  if (buf.length < 4 || buf[0] !== 0xff || buf[1] !== 0xd8) return undefined;
  let i = 2;
  while (i + 9 < buf.length) {
    if (buf[i] !== 0xff) return undefined;
    const marker = buf[i + 1]!;
    if (marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      i += 2;
      continue;
    }
    const len = buf.readUInt16BE(i + 2);
    // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      return { height: buf.readUInt16BE(i + 5), width: buf.readUInt16BE(i + 7) };
    }
    i += 2 + len;
  }
  return undefined;
}

/** Qwen-VL's image tokens: one per 28×28 patch plus 2 delimiters, within [4, 1280] (its default max_pixels). */
export function imageTokens(size: { width: number; height: number } | undefined, bytes: number): number {
  if (!size) return Math.max(4, Math.min(1280, Math.ceil(bytes / 1000)));
  return Math.max(4, Math.min(1280, Math.ceil(size.width / 28) * Math.ceil(size.height / 28) + 2));
}

/**
 * The deterministic answer: with two or more images the first is the whole frame and the rest are crops of people;
 * one image is a lone crop. Risk grows with the people seen: 1 → 0, 2 → 1, 3 → 2, 4 or more → 3. The reason names
 * the counts and a digest of the bytes, so a test can tell which images produced it.
 */
export function assessImages(images: Buffer[]): Assessment {
  const people = images.length >= 2 ? images.length - 1 : images.length;
  const risk = Math.max(0, Math.min(3, people - 1));
  const labels = people === 0 ? [] : people >= 3 ? ["person", "group"] : ["person"];
  const bytes = images.reduce((n, b) => n + b.length, 0);
  const digest = createHash("sha256");
  for (const b of images) digest.update(b);
  return {
    risk,
    labels,
    reason: `${people} people in ${images.length} images (${bytes} bytes, ${digest.digest("hex").slice(0, 8)})`,
  };
}

const chatRequest = z.object({
  model: z.string().min(1),
  messages: z
    .array(
      z.object({
        role: z.string(),
        content: z.union([
          z.string(),
          z.array(
            z.union([
              z.object({ type: z.literal("text"), text: z.string() }),
              z.object({ type: z.literal("image_url"), image_url: z.object({ url: z.string() }) }),
            ]),
          ),
        ]),
      }),
    )
    .min(1),
  response_format: z.object({ type: z.string() }).optional(),
});

const MAX_BODY = 16 * 1024 * 1024; // DashScope's request body limit (FACTS)
const DATA_URL = /^data:image\/(jpeg|jpg);base64,(.*)$/s;

type Body = { error: { code: string; message: string; type: string; param: null }; request_id: string };
const errorBody = (code: string, message: string, type: string): Body => ({
  error: { code, message, type, param: null },
  request_id: randomUUID(),
});

/** OpenAI's duration format in x-ratelimit-reset-*: "6m0s", "1s", "20ms". */
function openaiDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const s = Math.ceil(ms / 1000);
  return s >= 60 ? `${Math.floor(s / 60)}m${s % 60}s` : `${s}s`;
}

/** A sliding window of admitted calls (time, tokens): exact counts over the last `span` ms, no boundary bursts. */
class Window {
  private readonly at: number[] = [];
  private readonly weight: number[] = [];
  private total = 0;
  private readonly span: number;
  constructor(span: number) {
    this.span = span;
  }
  private prune(now: number): void {
    while (this.at.length > 0 && this.at[0]! <= now - this.span) {
      this.at.shift();
      this.total -= this.weight.shift()!;
    }
  }
  sum(now: number): number {
    this.prune(now);
    return this.total;
  }
  add(now: number, w: number): void {
    this.at.push(now);
    this.weight.push(w);
    this.total += w;
  }
  /** Ms until the window's sum would drop to at most `limit - need` (the earliest call that fits). */
  waitFor(now: number, limit: number, need: number): number {
    this.prune(now);
    let sum = this.total;
    for (let i = 0; i < this.at.length; i++) {
      if (sum + need <= limit) return i === 0 ? 0 : this.at[i - 1]! + this.span - now;
      sum -= this.weight[i]!;
    }
    return this.at.length === 0 ? 0 : this.at[this.at.length - 1]! + this.span - now;
  }
}

type ScopeState = {
  rpm: number;
  /** The per-second guard as `perSecond` calls over `second`'s span: 10 rps → 10 per 1 s; 0.5 rps → 1 per 2 s. */
  perSecond: number;
  tpm: number | undefined;
  minute: Window;
  second: Window;
  tokens: Window;
};

export async function startFakeProvider(input: FakeProviderConfig, port = 0): Promise<FakeProvider> {
  const config = fakeProviderConfig.parse(input);
  const random = seededRandom(config.seed);
  const keys = new Map<string, KeyEntry>(config.keys.map((k) => [k.key, { ...k }]));
  const scopes = new Map<string, ScopeState>(
    config.scopes.map((s) => {
      const rps = s.rps ?? s.rpm / 60;
      const perSecond = Math.max(1, Math.floor(rps));
      return [
        s.name,
        {
          rpm: s.rpm,
          perSecond,
          tpm: s.tpm,
          minute: new Window(60_000),
          second: new Window((1000 * perSecond) / rps),
          tokens: new Window(60_000),
        },
      ];
    }),
  );
  let faults = { ...config.faults };
  let stats = emptyStats();
  let inFlight = 0;
  const hanging = new Set<ServerResponse>();

  function emptyStats(): ProviderStats {
    return {
      calls: 0,
      ok: 0,
      byStatus: {},
      perScope: Object.fromEntries(config.scopes.map((s) => [s.name, { ...counter(), tokens: 0 }])),
      perKey: {},
      faults: { r5xx: 0, timeout: 0, malformed: 0, fenced: 0 },
      inFlight: 0,
      maxInFlight: 0,
    };
  }

  /** Status 0 is a call left unanswered (byStatus "timeout"). */
  function count(status: number, scope: string | undefined, key: string | undefined): void {
    const name = status === 0 ? "timeout" : String(status);
    stats.byStatus[name] = (stats.byStatus[name] ?? 0) + 1;
    const field: keyof Counter | undefined =
      status === 0
        ? "timeout"
        : status === 200
          ? "ok"
          : status === 429
            ? "r429"
            : status === 401
              ? "r401"
              : status === 403
                ? "r403"
                : status === 400
                  ? "r400"
                  : status >= 500
                    ? "r5xx"
                    : undefined;
    if (status === 200) stats.ok++;
    const targets: Counter[] = [];
    if (scope) targets.push(stats.perScope[scope]!);
    if (key) {
      const fp = fingerprint(key);
      stats.perKey[fp] ??= counter();
      targets.push(stats.perKey[fp]);
    }
    for (const t of targets) {
      t.calls++;
      if (field) t[field]++;
    }
  }

  function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      "content-type": "application/json",
      "content-length": Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  }

  // limit and remaining are per minute, as OpenAI's. reset is the time until the next call fits (both request
  // windows; "0ms" while there is room), not OpenAI's "until fully replenished": over a sliding minute that would be up
  // to 60 s after every call, while a pool cooling down on a 429 needs the moment it may call again.
  function rateHeaders(s: ScopeState, now: number): Record<string, string> {
    if (!config.rateLimitHeaders) return {};
    const used = s.minute.sum(now);
    const reset = Math.max(s.minute.waitFor(now, s.rpm, 1), s.second.waitFor(now, s.perSecond, 1));
    const h: Record<string, string> = {
      "x-ratelimit-limit-requests": String(s.rpm),
      "x-ratelimit-remaining-requests": String(Math.max(0, s.rpm - used)),
      "x-ratelimit-reset-requests": openaiDuration(reset),
    };
    if (s.tpm !== undefined) {
      const t = s.tokens.sum(now);
      h["x-ratelimit-limit-tokens"] = String(s.tpm);
      h["x-ratelimit-remaining-tokens"] = String(Math.max(0, s.tpm - t));
      h["x-ratelimit-reset-tokens"] = openaiDuration(s.tokens.waitFor(now, s.tpm, 1));
    }
    return h;
  }

  async function readBody(req: IncomingMessage): Promise<string | undefined> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_BODY) return undefined;
      chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks).toString("utf8");
  }

  async function chat(req: IncomingMessage, res: ServerResponse): Promise<void> {
    stats.calls++;
    const auth = req.headers.authorization ?? "";
    const key = auth.startsWith("Bearer ") ? auth.slice(7) : "";
    const entry = keys.get(key);
    if (!entry || entry.revoked) {
      count(401, undefined, key || undefined);
      return send(res, 401, errorBody("InvalidApiKey", "Invalid API-key provided.", "invalid_request_error"));
    }
    const scope = scopes.get(entry.scope)!;
    if (entry.arrears) {
      count(403, entry.scope, key);
      return send(
        res,
        403,
        errorBody("Arrearage", "Access denied, please make sure your account is in good standing.", "Arrearage"),
      );
    }
    const raw = await readBody(req);
    const invalid = (message: string) => {
      count(400, entry.scope, key);
      send(res, 400, errorBody("InvalidParameter", message, "invalid_request_error"));
    };
    if (raw === undefined) return invalid("Request body exceeds 16 MiB.");
    let parsed: z.infer<typeof chatRequest>;
    try {
      parsed = chatRequest.parse(JSON.parse(raw));
    } catch {
      return invalid("Required parameter(s) missing or invalid, please check the request parameters.");
    }
    let text = "";
    const images: Buffer[] = [];
    let promptTokens = 0;
    for (const m of parsed.messages) {
      for (const part of typeof m.content === "string" ? [{ type: "text" as const, text: m.content }] : m.content) {
        if (part.type === "text") {
          text += `${part.text}\n`;
          continue;
        }
        const match = DATA_URL.exec(part.image_url.url);
        const bytes = match ? Buffer.from(match[2]!, "base64") : undefined;
        const size = bytes ? jpegSize(bytes) : undefined;
        if (!bytes || !size) return invalid("The image format is illegal and cannot be opened.");
        images.push(bytes);
        promptTokens += imageTokens(size, bytes.length);
      }
    }
    if (parsed.response_format?.type === "json_object" && !/json/i.test(text)) {
      return invalid(
        "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
      );
    }
    promptTokens += Math.ceil(text.length / 4) + 4 * parsed.messages.length;

    const answer = JSON.stringify(assessImages(images));
    const completionTokens = Math.ceil(answer.length / 4);
    const now = Date.now();
    const overRequests = scope.minute.sum(now) + 1 > scope.rpm ? scope.minute.waitFor(now, scope.rpm, 1) : undefined;
    const overSecond =
      scope.second.sum(now) + 1 > scope.perSecond ? scope.second.waitFor(now, scope.perSecond, 1) : undefined;
    const overTokens =
      scope.tpm !== undefined && scope.tokens.sum(now) + promptTokens > scope.tpm
        ? scope.tokens.waitFor(now, scope.tpm, promptTokens)
        : undefined;
    if (overRequests !== undefined || overSecond !== undefined || overTokens !== undefined) {
      const waitMs = Math.max(overRequests ?? 0, overSecond ?? 0, overTokens ?? 0);
      count(429, entry.scope, key);
      const body =
        overTokens !== undefined && overRequests === undefined && overSecond === undefined
          ? errorBody(
              "Throttling.AllocationQuota",
              "Allocated quota exceeded, please increase your quota limit.",
              // Bailian's compatible mode labels its TPM throttle insufficient_quota although it clears by itself
              // within the minute (seen in can1357/oh-my-pi PR #8476); the code, not the type, tells it apart.
              "insufficient_quota",
            )
          : errorBody(
              "Throttling.RateQuota",
              "Requests rate limit exceeded, please try again later.",
              "limit_requests",
            );
      return send(res, 429, body, {
        "retry-after": String(Math.max(1, Math.ceil(waitMs / 1000))),
        ...rateHeaders(scope, now),
      });
    }
    scope.minute.add(now, 1);
    scope.second.add(now, 1);
    scope.tokens.add(now, promptTokens + completionTokens);
    stats.perScope[entry.scope]!.tokens += promptTokens + completionTokens;
    const headers = rateHeaders(scope, now);

    inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, inFlight);
    try {
      const [lo, hi] = config.latencyMs;
      const delay = lo + (hi - lo) * random();
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      const u = random();
      if (u < faults.rate5xx) {
        stats.faults.r5xx++;
        count(500, entry.scope, key);
        return send(
          res,
          500,
          errorBody(
            "InternalError",
            "An internal error has occured, please try again later or contact service support.",
            "internal_error",
          ),
        );
      }
      if (u < faults.rate5xx + faults.rateTimeout) {
        // Never answers: the client's timeout has to fire. Counted as a call, not as a status.
        stats.faults.timeout++;
        count(0, entry.scope, key);
        hanging.add(res);
        await new Promise<void>((r) => res.once("close", () => r()));
        hanging.delete(res);
        return;
      }
      let content = answer;
      if (u < faults.rate5xx + faults.rateTimeout + faults.rateMalformed) {
        stats.faults.malformed++;
        content = answer.slice(0, Math.max(1, Math.floor(answer.length / 2))); // cut mid-value, as a stopped model
      } else if (u < faults.rate5xx + faults.rateTimeout + faults.rateMalformed + faults.rateFenced) {
        stats.faults.fenced++;
        content = `\`\`\`json\n${answer}\n\`\`\``;
      }
      count(200, entry.scope, key);
      send(
        res,
        200,
        {
          id: `chatcmpl-${randomUUID()}`,
          object: "chat.completion",
          created: Math.floor(now / 1000),
          model: parsed.model,
          choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop", logprobs: null }],
          usage: {
            prompt_tokens: promptTokens,
            completion_tokens: completionTokens,
            total_tokens: promptTokens + completionTokens,
          },
        },
        headers,
      );
    } finally {
      inFlight--;
    }
  }

  const adminKey = z.object({
    key: z.string().min(1),
    scope: z.string().min(1),
    revoked: z.boolean().optional(),
    arrears: z.boolean().optional(),
  });

  function setKey(e: z.infer<typeof adminKey>): void {
    if (!scopes.has(e.scope)) throw new Error(`unknown scope ${e.scope}`);
    const old = keys.get(e.key);
    keys.set(e.key, {
      key: e.key,
      scope: e.scope,
      revoked: e.revoked ?? old?.revoked ?? false,
      arrears: e.arrears ?? old?.arrears ?? false,
    });
  }

  async function admin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (req.method === "GET" && path === "/admin/stats") return send(res, 200, { ...stats, inFlight });
    if (req.method !== "POST") return send(res, 404, { error: "not found" });
    const raw = (await readBody(req)) ?? "";
    try {
      const body: unknown = raw ? JSON.parse(raw) : {};
      if (path === "/admin/revoke") {
        const { key } = z.object({ key: z.string() }).parse(body);
        const e = keys.get(key);
        if (e) e.revoked = true;
        return send(res, 200, { revoked: fingerprint(key), known: e !== undefined });
      }
      if (path === "/admin/keys") {
        setKey(adminKey.parse(body));
        return send(res, 200, { ok: true });
      }
      if (path === "/admin/faults") {
        faults = { ...faults, ...fakeProviderConfig.shape.faults.unwrap().partial().parse(body) };
        return send(res, 200, faults);
      }
      if (path === "/admin/reset") {
        stats = emptyStats();
        return send(res, 200, { ok: true });
      }
    } catch (err) {
      return send(res, 400, { error: (err as Error).message });
    }
    send(res, 404, { error: "not found" });
  }

  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0]!;
    const run =
      req.method === "POST" && (path === "/v1/chat/completions" || path === "/compatible-mode/v1/chat/completions")
        ? chat(req, res)
        : path.startsWith("/admin/")
          ? admin(req, res, path)
          : Promise.resolve(
              send(res, 404, errorBody("InvalidURL", "Invalid URL provided in your request.", "invalid_request_error")),
            );
    run.catch((err) => {
      if (!res.headersSent) send(res, 500, errorBody("InternalError", (err as Error).message, "internal_error"));
    });
  });
  server.listen(port, config.host);
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    port: actual,
    baseURL: `http://${config.host}:${actual}/compatible-mode/v1`,
    stats: () => structuredClone({ ...stats, inFlight }),
    resetStats: () => {
      stats = emptyStats();
    },
    revoke: (key) => {
      const e = keys.get(key);
      if (e) e.revoked = true;
    },
    setKey,
    setFaults: (f) => {
      faults = { ...faults, ...f };
    },
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { port: { type: "string", default: "0" }, config: { type: "string" } },
  });
  if (!values.config) {
    process.stderr.write("usage: node test/fakes/llm-provider.ts --port N --config FILE\n");
    process.exit(2);
  }
  const provider = await startFakeProvider(parseYaml(readFileSync(values.config, "utf8")), Number(values.port));
  process.stdout.write(`llm-provider listening on port ${provider.port} (${provider.baseURL})\n`);
  const stop = () => void provider.close().then(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}
