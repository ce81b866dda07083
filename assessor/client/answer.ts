// The model's text to a ModelAnswer, pure. Models asked for `response_format: json_object` still wrap the object in
// a fenced ```json block now and then (the fake provider injects that; Qwen-VL does it when the prompt shows an
// example in a fence), or put a sentence before it; both are read. What is still not a valid answer gets ONE repair
// turn that quotes the validation error back, then the task goes to the DLQ with the reason (answerStep).
import type { z } from "zod";
import { type ModelAnswer, modelAnswer } from "../messages.ts";

export type Parsed = { ok: true; answer: ModelAnswer } | { ok: false; error: string };

const FENCE = /```[a-zA-Z]*\s*\n?([\s\S]*?)```/;

/** The JSON value in `content`: the whole text, a fenced block's body, or the outermost `{...}` in prose. */
export function extractJson(content: string): { ok: true; value: unknown } | { ok: false; error: string } {
  const text = content.trim();
  if (text === "") return { ok: false, error: "the answer is empty" };
  const tries: string[] = [text];
  const fenced = FENCE.exec(text)?.[1]?.trim();
  if (fenced) tries.push(fenced);
  const open = text.indexOf("{");
  const close = text.lastIndexOf("}");
  if (open >= 0 && close > open) tries.push(text.slice(open, close + 1));
  let first: string | undefined;
  for (const t of tries) {
    try {
      return { ok: true, value: JSON.parse(t) };
    } catch (err) {
      first ??= (err as Error).message;
    }
  }
  return { ok: false, error: `the answer is not JSON (${first})` };
}

/** zod's issues as one line naming each field: `risk: Too big: expected number to be <=3; labels: Required`. */
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 8)
    .map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
    .join("; ");
}

export function parseAnswer(content: string | null | undefined): Parsed {
  const json = extractJson(content ?? "");
  if (!json.ok) return json;
  const r = modelAnswer.safeParse(json.value);
  if (r.success) return { ok: true, answer: r.data };
  return { ok: false, error: `the answer does not match {risk, labels, reason}: ${describeIssues(r.error)}` };
}

/** How much of a bad answer the repair turn quotes back (the model sees its own text; no need for all of it). */
const QUOTE_MAX = 2000;

export const ANSWER_SHAPE = '{"risk": 0-3, "labels": ["..."], "reason": "..."}';

/** The follow-up turn after an invalid answer: the answer itself, then what was wrong and the shape again. */
export function repairTurn(content: string, error: string) {
  return [
    { role: "assistant" as const, content: content.slice(0, QUOTE_MAX) },
    {
      role: "user" as const,
      content: `That answer is invalid: ${error}. Reply with the JSON object only, no other text: ${ANSWER_SHAPE}`,
    },
  ];
}

/**
 * What to do with a model's text: done, repair (once), or dead. `repaired`: this text is already the answer to
 * the repair turn.
 */
export type AnswerStep =
  | { kind: "ok"; answer: ModelAnswer }
  | { kind: "repair"; error: string }
  | { kind: "dead"; reason: string };

export function answerStep(content: string | null | undefined, repaired: boolean): AnswerStep {
  const p = parseAnswer(content);
  if (p.ok) return { kind: "ok", answer: p.answer };
  if (!repaired) return { kind: "repair", error: p.error };
  return { kind: "dead", reason: `invalid output after a repair retry: ${p.error}` };
}
