// The fake LLM provider driven by the real `openai` package, as the assessor will drive it: maxRetries 0 (the pool
// owns retries), a per-call timeout, `.withResponse()` for the headers, images as JPEG data URLs. Each case checks a
// behaviour the key pool depends on: per-scope limits shared by keys with DashScope's 429 body and Retry-After, the
// optional x-ratelimit headers, key errors, seeded faults, the json-word rule, the counters and the CLI form.
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI, {
  APIConnectionTimeoutError,
  type APIError,
  AuthenticationError,
  BadRequestError,
  InternalServerError,
  PermissionDeniedError,
  RateLimitError,
} from "openai";
import sharp from "sharp";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import {
  assessImages,
  type FakeProvider,
  type FakeProviderConfig,
  fingerprint,
  startFakeProvider,
} from "../fakes/llm-provider.ts";
import { ROOT } from "../setup/operator-env.ts";

const MODEL = "qwen-vl-max";
const jpeg = (width: number, height: number, shade = 128) =>
  sharp({ create: { width, height, channels: 3, background: { r: shade, g: shade, b: shade } } })
    .jpeg()
    .toBuffer();
const dataUrl = (b: Buffer) => `data:image/jpeg;base64,${b.toString("base64")}`;

let frame: Buffer;
let crops: Buffer[];
beforeAll(async () => {
  frame = await jpeg(640, 360);
  crops = await Promise.all([jpeg(96, 192, 40), jpeg(96, 192, 80), jpeg(84, 168, 200)]);
});

const client = (p: FakeProvider, apiKey: string, timeout = 5000) =>
  new OpenAI({ apiKey, baseURL: p.baseURL, maxRetries: 0, timeout });

function assess(c: OpenAI, images: Buffer[], opts: { prompt?: string; json?: boolean } = {}) {
  return c.chat.completions
    .create({
      model: MODEL,
      messages: [
        { role: "system", content: opts.prompt ?? "Rate the risk in these images. Answer in JSON." },
        { role: "user", content: images.map((b) => ({ type: "image_url" as const, image_url: { url: dataUrl(b) } })) },
      ],
      ...(opts.json === false ? {} : { response_format: { type: "json_object" as const } }),
    })
    .withResponse();
}

/** The call's outcome in the words the key pool will use. */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    const { data } = (await p) as { data: OpenAI.ChatCompletion };
    const content = data.choices[0]!.message.content!;
    if (content.startsWith("```json\n")) return "fenced";
    try {
      JSON.parse(content);
      return "ok";
    } catch {
      return "malformed";
    }
  } catch (err) {
    if (err instanceof APIConnectionTimeoutError) return "timeout";
    if (err instanceof InternalServerError) return `5xx:${(err as InternalServerError).code}`;
    throw err;
  }
}

async function rejection(p: Promise<unknown>) {
  try {
    await p;
  } catch (err) {
    return err as APIError;
  }
  throw new Error("the call succeeded");
}

const started: FakeProvider[] = [];
async function provider(config: FakeProviderConfig) {
  const p = await startFakeProvider(config);
  started.push(p);
  return p;
}
afterAll(async () => {
  await Promise.all(started.map((p) => p.close()));
});

describe("answers", () => {
  it("answers 200 with usage and a risk derived from the images, on both paths", async () => {
    const p = await provider({ scopes: [{ name: "A", rpm: 600 }], keys: [{ key: "sk-a1", scope: "A" }] });
    const { data, response } = await assess(client(p, "sk-a1"), [frame, ...crops]);
    expect(response.status).toBe(200);
    expect(response.headers.get("x-ratelimit-limit-requests")).toBeNull(); // DashScope sends none by default
    const answer = JSON.parse(data.choices[0]!.message.content!);
    expect(answer).toEqual(assessImages([frame, ...crops]));
    expect(answer.risk).toBe(2); // 3 people (the crops) → 2
    expect(answer.labels).toEqual(["person", "group"]);
    expect(answer.reason).toMatch(/^3 people in 4 images/);
    // Image tokens as Qwen-VL counts them, one per 28×28 patch + 2: 640×360 → 23×13+2 = 301, 96×192 → 4×7+2 = 30
    // (twice), 84×168 → 3×6+2 = 20; the text adds a few.
    const usage = data.usage!;
    expect(usage.prompt_tokens).toBeGreaterThanOrEqual(301 + 30 + 30 + 20);
    expect(usage.prompt_tokens).toBeLessThan(301 + 30 + 30 + 20 + 40);
    expect(usage.completion_tokens).toBeGreaterThan(5);
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);

    const v1 = new OpenAI({ apiKey: "sk-a1", baseURL: `http://127.0.0.1:${p.port}/v1`, maxRetries: 0 });
    const one = await assess(v1, [crops[0]!]);
    expect(JSON.parse(one.data.choices[0]!.message.content!)).toMatchObject({ risk: 0, labels: ["person"] });
    const many = await assess(v1, [frame, ...crops, ...crops]);
    expect(JSON.parse(many.data.choices[0]!.message.content!).risk).toBe(3);
  });

  it("rejects what is not a JPEG data URL", async () => {
    const p = await provider({ scopes: [{ name: "A", rpm: 600 }], keys: [{ key: "sk-a1", scope: "A" }] });
    const err = await rejection(assess(client(p, "sk-a1"), [Buffer.from("not a jpeg")]));
    expect(err).toBeInstanceOf(BadRequestError);
    expect(err.code).toBe("InvalidParameter");
  });

  it("needs the word json in the messages for response_format json_object, as DashScope", async () => {
    const p = await provider({ scopes: [{ name: "A", rpm: 600 }], keys: [{ key: "sk-a1", scope: "A" }] });
    const c = client(p, "sk-a1");
    const err = await rejection(assess(c, [frame], { prompt: "Rate the risk in these images." }));
    expect(err).toBeInstanceOf(BadRequestError);
    expect(err.status).toBe(400);
    expect(err.code).toBe("InvalidParameter");
    expect(err.message).toContain("json");
    expect((await assess(c, [frame], { prompt: "Rate the risk. Reply as a JSON object." })).response.status).toBe(200);
    // Without response_format the word is not needed.
    expect((await assess(c, [frame], { prompt: "Rate the risk.", json: false })).response.status).toBe(200);
    expect(p.stats().perScope.A!.r400).toBe(1);
  });
});

describe("limits per scope, shared by its keys", () => {
  let p: FakeProvider;
  beforeAll(async () => {
    p = await provider({
      scopes: [
        { name: "A", rpm: 600, rps: 5 },
        { name: "B", rpm: 600, rps: 5 },
        { name: "M", rpm: 3, rps: 10 },
      ],
      keys: [
        { key: "sk-a1", scope: "A" },
        { key: "sk-a2", scope: "A" },
        { key: "sk-b1", scope: "B" },
        { key: "sk-m1", scope: "M" },
      ],
    });
  });

  it("a second key of a scope gets 429 Throttling.RateQuota once the scope is over its per-second limit", async () => {
    const a1 = client(p, "sk-a1");
    const a2 = client(p, "sk-a2");
    const first = await Promise.all([
      assess(a1, [frame]),
      assess(a1, [frame]),
      assess(a1, [frame]),
      assess(a2, [frame]),
      assess(a2, [frame]),
    ]);
    expect(first.map((r) => r.response.status)).toEqual([200, 200, 200, 200, 200]);
    const t0 = Date.now();
    const err = await rejection(assess(a2, [frame]));
    expect(err).toBeInstanceOf(RateLimitError);
    expect(err.status).toBe(429);
    expect(err.code).toBe("Throttling.RateQuota");
    expect(err.type).toBe("limit_requests");
    expect(err.error).toMatchObject({ code: "Throttling.RateQuota", message: expect.stringContaining("rate limit") });
    expect(err.headers!.get("retry-after")).toBe("1");
    expect(err.headers!.get("x-ratelimit-limit-requests")).toBeNull();
    // Another scope is unaffected.
    expect((await assess(client(p, "sk-b1"), [frame])).response.status).toBe(200);
    // After Retry-After the scope admits again.
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() - t0) + 20));
    expect((await assess(a2, [frame])).response.status).toBe(200);

    const s = p.stats();
    expect(s.perScope.A).toMatchObject({ calls: 7, ok: 6, r429: 1 });
    expect(s.perScope.B).toMatchObject({ calls: 1, ok: 1, r429: 0 });
    expect(s.perKey[fingerprint("sk-a2")]).toMatchObject({ calls: 4, ok: 3, r429: 1 });
    expect(s.perKey[fingerprint("sk-a1")]).toMatchObject({ calls: 3, ok: 3, r429: 0 });
  });

  it("under 2x load admits the scope's rate and no more: 20 calls/s for 3 s on a 10 rps scope", async () => {
    const o = await provider({
      scopes: [{ name: "O", rpm: 6000, rps: 10 }],
      keys: [
        { key: "sk-o1", scope: "O" },
        { key: "sk-o2", scope: "O" },
      ],
    });
    const keys = [client(o, "sk-o1"), client(o, "sk-o2")];
    const calls: Promise<string>[] = [];
    const t0 = Date.now();
    for (let i = 0; i < 60; i++) {
      await new Promise((r) => setTimeout(r, Math.max(0, t0 + i * 50 - Date.now())));
      calls.push(
        assess(keys[i % 2]!, [crops[0]!]).then(
          () => "ok",
          (e: APIError) => String(e.status),
        ),
      );
    }
    const seen = await Promise.all(calls);
    const ok = seen.filter((x) => x === "ok").length;
    // Any sliding second holds at most 10, so the 3 s hold at most 30; a fixed window would let ~40 through.
    expect(ok).toBeLessThanOrEqual(30);
    expect(ok).toBeGreaterThanOrEqual(27);
    expect(seen.filter((x) => x === "429").length).toBe(60 - ok);
    expect(o.stats().perScope.O).toMatchObject({ ok, r429: 60 - ok });
  });

  it("guards each second at rpm/60 when rps is unset", async () => {
    const q = await provider({ scopes: [{ name: "Q", rpm: 120 }], keys: [{ key: "sk-q1", scope: "Q" }] });
    const c = client(q, "sk-q1");
    const ok = await Promise.all([assess(c, [frame]), assess(c, [frame])]);
    expect(ok.map((r) => r.response.status)).toEqual([200, 200]);
    const err = await rejection(assess(c, [frame]));
    expect(err.code).toBe("Throttling.RateQuota");
    expect(err.headers!.get("retry-after")).toBe("1");
  });

  it("counts rpm over a sliding minute: the 4th call of an rpm-3 scope waits about a minute", async () => {
    const m = client(p, "sk-m1");
    for (let i = 0; i < 3; i++) expect((await assess(m, [frame])).response.status).toBe(200);
    const err = await rejection(assess(m, [frame]));
    expect(err.status).toBe(429);
    expect(err.code).toBe("Throttling.RateQuota");
    const retryAfter = Number(err.headers!.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(55);
    expect(retryAfter).toBeLessThanOrEqual(60);
  });
});

describe("x-ratelimit headers (the option)", () => {
  it("sends OpenAI's x-ratelimit-{limit,remaining,reset}-{requests,tokens}, on 200 and 429", async () => {
    const p = await provider({
      scopes: [{ name: "A", rpm: 2, rps: 10, tpm: 100_000 }],
      keys: [{ key: "sk-a1", scope: "A" }],
      rateLimitHeaders: true,
    });
    const c = client(p, "sk-a1");
    const { data, response } = await assess(c, [frame]);
    const h = response.headers;
    expect(h.get("x-ratelimit-limit-requests")).toBe("2");
    expect(h.get("x-ratelimit-remaining-requests")).toBe("1");
    expect(h.get("x-ratelimit-reset-requests")).toMatch(/^\d+(ms|s)$|^\d+m\d+s$/);
    expect(h.get("x-ratelimit-limit-tokens")).toBe("100000");
    expect(Number(h.get("x-ratelimit-remaining-tokens"))).toBe(100_000 - data.usage!.total_tokens);
    expect(h.get("x-ratelimit-reset-tokens")).toMatch(/^\d+(ms|s)$|^\d+m\d+s$/);
    await assess(c, [frame]);
    const err = await rejection(assess(c, [frame]));
    expect(err.status).toBe(429);
    expect(err.headers!.get("x-ratelimit-remaining-requests")).toBe("0");
    const reset = err.headers!.get("x-ratelimit-reset-requests")!;
    expect(reset).toMatch(/^\d+s$|^1m0s$/);
    expect(reset === "1m0s" || Number(reset.slice(0, -1)) >= 50).toBe(true);
    expect(Number(err.headers!.get("retry-after"))).toBeGreaterThanOrEqual(50);
  });

  it("answers Throttling.AllocationQuota when the scope's tokens per minute are spent", async () => {
    const p = await provider({
      scopes: [{ name: "A", rpm: 600, tpm: 500 }],
      keys: [{ key: "sk-a1", scope: "A" }],
    });
    const c = client(p, "sk-a1");
    expect((await assess(c, [frame])).response.status).toBe(200); // ~330 tokens
    const err = await rejection(assess(c, [frame]));
    expect(err.status).toBe(429);
    expect(err.code).toBe("Throttling.AllocationQuota");
    expect(Number(err.headers!.get("retry-after"))).toBeGreaterThanOrEqual(55);
  });
});

describe("key errors", () => {
  it("401 InvalidApiKey for unknown and revoked keys (also at runtime), 403 Arrearage", async () => {
    const p = await provider({
      scopes: [{ name: "A", rpm: 600 }],
      keys: [
        { key: "sk-live", scope: "A" },
        { key: "sk-gone", scope: "A", revoked: true },
        { key: "sk-owes", scope: "A", arrears: true },
      ],
    });
    for (const key of ["sk-unknown", "sk-gone"]) {
      const err = await rejection(assess(client(p, key), [frame]));
      expect(err).toBeInstanceOf(AuthenticationError);
      expect(err.code).toBe("InvalidApiKey");
    }
    const owes = await rejection(assess(client(p, "sk-owes"), [frame]));
    expect(owes).toBeInstanceOf(PermissionDeniedError);
    expect(owes.status).toBe(403);
    expect(owes.code).toBe("Arrearage");

    expect((await assess(client(p, "sk-live"), [frame])).response.status).toBe(200);
    const res = await fetch(`http://127.0.0.1:${p.port}/admin/revoke`, {
      method: "POST",
      body: JSON.stringify({ key: "sk-live" }),
    });
    expect(await res.json()).toEqual({ revoked: fingerprint("sk-live"), known: true });
    expect((await rejection(assess(client(p, "sk-live"), [frame]))).code).toBe("InvalidApiKey");
    // Paying up (or a new key) at runtime.
    await fetch(`http://127.0.0.1:${p.port}/admin/keys`, {
      method: "POST",
      body: JSON.stringify({ key: "sk-owes", scope: "A", arrears: false }),
    });
    expect((await assess(client(p, "sk-owes"), [frame])).response.status).toBe(200);
  });
});

describe("injected faults", () => {
  const config = (seed: number): FakeProviderConfig => ({
    scopes: [{ name: "A", rpm: 6000, rps: 100 }],
    keys: [{ key: "sk-a1", scope: "A" }],
    faults: { rate5xx: 0.2, rateTimeout: 0.2, rateMalformed: 0.2, rateFenced: 0.2 },
    seed,
  });
  const run = async (p: FakeProvider, n: number) => {
    const c = client(p, "sk-a1", 300);
    const seen: string[] = [];
    for (let i = 0; i < n; i++) seen.push(await outcome(assess(c, [frame, crops[0]!])));
    return seen;
  };

  it("draws 5xx, timeouts, malformed and fenced JSON from a seeded RNG: the same seed repeats", async () => {
    const p1 = await provider(config(7));
    const seen = await run(p1, 30);
    const tally = Object.fromEntries(["ok", "5xx:InternalError", "timeout", "malformed", "fenced"].map((k) => [k, 0]));
    for (const o of seen) tally[o] = (tally[o] ?? 0) + 1;
    for (const k of Object.keys(tally)) expect(tally[k], k).toBeGreaterThan(0);
    expect(Object.keys(tally)).toHaveLength(5);
    expect(p1.stats().faults).toEqual({
      r5xx: tally["5xx:InternalError"],
      timeout: tally.timeout,
      malformed: tally.malformed,
      fenced: tally.fenced,
    });
    const p2 = await provider(config(7));
    expect(await run(p2, 30)).toEqual(seen);
    const p3 = await provider(config(8));
    expect(await run(p3, 30)).not.toEqual(seen);
  });

  it("each fault on its own, with a fenced answer that still parses once unfenced", async () => {
    const p = await provider({ ...config(1), faults: {} });
    const c = client(p, "sk-a1", 300);
    const images = [frame, crops[0]!, crops[1]!];
    p.setFaults({ rate5xx: 1 });
    const e5 = await rejection(assess(c, images));
    expect(e5).toBeInstanceOf(InternalServerError);
    expect(e5.status).toBe(500);
    expect(e5.code).toBe("InternalError");
    const set = await fetch(`http://127.0.0.1:${p.port}/admin/faults`, {
      method: "POST",
      body: JSON.stringify({ rate5xx: 0, rateTimeout: 1 }),
    });
    expect(await set.json()).toEqual({ rate5xx: 0, rateTimeout: 1, rateMalformed: 0, rateFenced: 0 });
    const t0 = Date.now();
    expect(await rejection(assess(c, images))).toBeInstanceOf(APIConnectionTimeoutError);
    expect(Date.now() - t0).toBeLessThan(2000);
    p.setFaults({ rateTimeout: 0, rateMalformed: 1 });
    const bad = (await assess(c, images)).data.choices[0]!.message.content!;
    expect(() => JSON.parse(bad)).toThrow();
    p.setFaults({ rateMalformed: 0, rateFenced: 1 });
    const fenced = (await assess(c, images)).data.choices[0]!.message.content!;
    const inner = /^```json\n([\s\S]*)\n```$/.exec(fenced);
    expect(JSON.parse(inner![1]!)).toEqual(assessImages(images));
    const st = p.stats();
    expect(st.inFlight).toBe(0); // the timed-out call was released when the client gave up
    expect(st.perScope.A).toMatchObject({ calls: 4, ok: 2, r5xx: 1, timeout: 1 });
    expect(st.byStatus).toEqual({ 200: 2, 500: 1, timeout: 1 });
  });
});

describe("admin stats", () => {
  it("counts calls and statuses per scope and per key fingerprint, and the most calls in flight", async () => {
    const p = await provider({
      scopes: [
        { name: "A", rpm: 600 },
        { name: "B", rpm: 600 },
      ],
      keys: [
        { key: "sk-a1", scope: "A" },
        { key: "sk-b1", scope: "B" },
      ],
      latencyMs: [200, 250],
    });
    await Promise.all([
      assess(client(p, "sk-a1"), [frame]),
      assess(client(p, "sk-a1"), [frame]),
      assess(client(p, "sk-b1"), [frame]),
      assess(client(p, "sk-b1"), [frame]),
    ]);
    await rejection(assess(client(p, "sk-nope"), [frame]));
    const res = await fetch(`http://127.0.0.1:${p.port}/admin/stats`);
    const text = await res.text();
    expect(text).not.toContain("sk-"); // keys never leave the provider, fingerprints only
    const s = JSON.parse(text);
    expect(s).toMatchObject({ calls: 5, ok: 4, byStatus: { 200: 4, 401: 1 }, maxInFlight: 4, inFlight: 0 });
    expect(s.perScope.A).toMatchObject({ calls: 2, ok: 2 });
    expect(s.perScope.B).toMatchObject({ calls: 2, ok: 2 });
    expect(s.perScope.A.tokens).toBeGreaterThan(600);
    expect(s.perKey[fingerprint("sk-nope")]).toMatchObject({ calls: 1, r401: 1 });
    await fetch(`http://127.0.0.1:${p.port}/admin/reset`, { method: "POST" });
    expect(p.stats()).toMatchObject({ calls: 0, maxInFlight: 0 });
  });
});

describe("the CLI form", () => {
  let child: ChildProcess | undefined;
  afterAll(() => {
    child?.kill("SIGKILL");
  });

  it("prints one listening line with the OS's port, serves, and stops on SIGTERM", async () => {
    const file = join(tmpdir(), `vigil-llm-provider-${process.pid}.yaml`);
    writeFileSync(
      file,
      stringify({
        scopes: [{ name: "A", rpm: 1200 }],
        keys: [{ key: "sk-cli", scope: "A" }],
        latencyMs: [5, 10],
        rateLimitHeaders: true,
      }),
    );
    child = spawn(process.execPath, [join(ROOT, "test", "fakes", "llm-provider.ts"), "--port", "0", "--config", file], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stderr!.on("data", (d) => {
      err += d;
    });
    const line = await new Promise<string>((resolve, reject) => {
      child!.stdout!.on("data", (d) => {
        out += d;
        if (out.includes("\n")) resolve(out.split("\n")[0]!);
      });
      child!.once("exit", (code) => reject(new Error(`exited ${code}: ${err}`)));
    });
    const port = Number(/listening on port (\d+)/.exec(line)?.[1]);
    expect(port).toBeGreaterThan(0);
    const c = new OpenAI({
      apiKey: "sk-cli",
      baseURL: `http://127.0.0.1:${port}/compatible-mode/v1`,
      maxRetries: 0,
      timeout: 5000,
    });
    const { data, response } = await assess(c, [frame, crops[0]!]);
    expect(JSON.parse(data.choices[0]!.message.content!)).toEqual(assessImages([frame, crops[0]!]));
    expect(response.headers.get("x-ratelimit-limit-requests")).toBe("1200");
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    expect((await exited)[0]).toBe(0);
    expect(out.trim().split("\n")).toHaveLength(1);
    child = undefined;
  });
});
