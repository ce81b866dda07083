// One model call through the real `openai` package: the task's prompt, context and JPEGs as chat messages, the
// answer's text, usage and rate-limit headers back, and every failure classified (classify.ts) for the key pool.
// The client is built with `maxRetries: 0` (the pool owns retries: another key, its own backoff) and the pool's
// per-call timeout; `.withResponse()` gives the headers a success carries (x-ratelimit-*), which the pool reads to
// pause a scope before its first 429.
import OpenAI from "openai";
import { type Classification, classifyError, type RateLimitHints, rateLimitHints } from "../keys/classify.ts";
import type { AssessmentTask } from "../messages.ts";
import type { AssessUsage } from "../pool/types.ts";
import { ANSWER_SHAPE } from "./answer.ts";

export type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;

// DashScope's VL models refuse `response_format: json_object` unless a message says "json" (FACTS, "LLM
// providers"); the system prompt says it, with the shape zod checks.
export const SYSTEM_PROMPT = [
  "You assess still images from a security camera for risk to people and property.",
  `Answer in JSON, one object and nothing else: ${ANSWER_SHAPE}.`,
  "risk: 0 none, 1 low, 2 elevated, 3 high. labels: at most 16 short lower-case words for what you see.",
  "reason: one or two sentences a guard can act on.",
].join(" ");

export function clientFor(o: { apiKey: string; baseURL: string; timeoutMs: number }): OpenAI {
  return new OpenAI({ apiKey: o.apiKey, baseURL: o.baseURL, maxRetries: 0, timeout: o.timeoutMs });
}

/** The context the camera gives, as text the model reads (the camera's own prompt comes first). */
function contextText(task: AssessmentTask): string {
  const t = task.trigger;
  const ctx = {
    camera: task.context.camera,
    zone: task.context.zone,
    rule: task.context.rule,
    counts: task.context.counts,
    trigger: t.kind === "event" ? { rule: t.rule, kind: t.rule_kind, severity: t.severity } : "periodic sample",
  };
  const frames = task.images.filter((i) => i.role === "frame").length;
  const crops = task.images.length - frames;
  return [
    task.prompt,
    "",
    `Context: ${JSON.stringify(ctx)}`,
    `Images: ${frames ? `${frames} whole frame${frames > 1 ? "s" : ""} at low resolution, then ` : ""}${crops} crop${crops === 1 ? "" : "s"} of the people involved.`,
  ].join("\n");
}

export function taskMessages(task: AssessmentTask): ChatMessage[] {
  // Frames first, then crops: "the first image is the frame" is what the text says.
  const images = [...task.images].sort((a, b) => (a.role === b.role ? 0 : a.role === "frame" ? -1 : 1));
  return [
    { role: "system", content: SYSTEM_PROMPT },
    {
      role: "user",
      content: [
        { type: "text", text: contextText(task) },
        ...images.map((i) => ({
          type: "image_url" as const,
          image_url: { url: `data:image/jpeg;base64,${i.jpeg_base64}` },
        })),
      ],
    },
  ];
}

export type CallResult =
  | {
      kind: "answer";
      /** The model's text ("" when it sent none). */
      content: string;
      usage?: AssessUsage;
      model: string;
      hints: RateLimitHints;
      latencyMs: number;
    }
  | { kind: "error"; classification: Classification; latencyMs: number };

export async function callModel(o: {
  client: OpenAI;
  model: string;
  messages: ChatMessage[];
  signal?: AbortSignal;
  now: () => number;
}): Promise<CallResult> {
  const started = performance.now();
  try {
    const { data, response } = await o.client.chat.completions
      .create(
        { model: o.model, messages: o.messages, response_format: { type: "json_object" } },
        o.signal ? { signal: o.signal } : {},
      )
      .withResponse();
    const u = data.usage;
    return {
      kind: "answer",
      content: data.choices[0]?.message?.content ?? "",
      ...(u
        ? {
            usage: {
              prompt_tokens: u.prompt_tokens ?? 0,
              completion_tokens: u.completion_tokens ?? 0,
              total_tokens: u.total_tokens ?? (u.prompt_tokens ?? 0) + (u.completion_tokens ?? 0),
            },
          }
        : {}),
      model: data.model || o.model,
      hints: rateLimitHints(response.headers, o.now()),
      latencyMs: performance.now() - started,
    };
  } catch (err) {
    // The openai package's APIUserAbortError keeps the name "Error" (measured, 7.x), which classify.ts cannot tell
    // from a network error: our own signal says it.
    const classification: Classification = o.signal?.aborted
      ? { kind: "aborted", reason: "the call was aborted" }
      : classifyError(err, o.now());
    return { kind: "error", classification, latencyMs: performance.now() - started };
  }
}

/**
 * Tokens a task will cost, before the call, for the tpm reservation: Qwen-VL's one token per 28×28 patch plus 2 per
 * image within [4, 1280], the text at ~4 characters a token, and ~80 for the answer. The settle corrects it from
 * `usage`.
 */
export function estimateTokens(task: AssessmentTask): number {
  let n = Math.ceil((SYSTEM_PROMPT.length + task.prompt.length + 300) / 4) + 80;
  for (const i of task.images) n += Math.max(4, Math.min(1280, Math.ceil(i.width / 28) * Math.ceil(i.height / 28) + 2));
  return n;
}
