// The model's text to an answer (assessor/client/answer.ts): plain, fenced and prose-wrapped JSON are read;
// anything else gets one repair turn that quotes the field-naming error, then is dead with the reason. Also the
// messages a task becomes (the json word DashScope needs, images as data URLs, frame first) and the token estimate.
import { describe, expect, it } from "vitest";
import { answerStep, describeIssues, extractJson, parseAnswer, repairTurn } from "../../assessor/client/answer.ts";
import { estimateTokens, SYSTEM_PROMPT, taskMessages } from "../../assessor/client/call.ts";
import { type AssessmentTask, modelAnswer } from "../../assessor/messages.ts";

const good = { risk: 2, labels: ["person", "loitering"], reason: "Someone waits by the door." };

describe("extractJson", () => {
  it("reads plain JSON, a fenced block, and an object inside prose", () => {
    expect(extractJson(JSON.stringify(good))).toEqual({ ok: true, value: good });
    expect(extractJson(`\`\`\`json\n${JSON.stringify(good)}\n\`\`\``)).toEqual({ ok: true, value: good });
    expect(extractJson(`\`\`\`\n${JSON.stringify(good)}\n\`\`\``)).toEqual({ ok: true, value: good });
    expect(extractJson(`Here is my answer:\n${JSON.stringify(good)}\nHope this helps.`)).toEqual({
      ok: true,
      value: good,
    });
    expect(extractJson(`Sure.\n\`\`\`json\n${JSON.stringify(good)}\n\`\`\`\nDone.`)).toEqual({ ok: true, value: good });
  });

  it("says why when there is no JSON", () => {
    expect(extractJson("")).toEqual({ ok: false, error: "the answer is empty" });
    const cut = extractJson('{"risk": 2, "labels": ["per');
    expect(cut.ok).toBe(false);
    expect(!cut.ok && cut.error).toMatch(/^the answer is not JSON \(/);
  });
});

describe("parseAnswer", () => {
  it("validates with modelAnswer and names each bad field", () => {
    expect(parseAnswer(JSON.stringify(good))).toEqual({ ok: true, answer: good });
    const bad = parseAnswer(JSON.stringify({ risk: 5, labels: "person" }));
    expect(bad.ok).toBe(false);
    const error = bad.ok ? "" : bad.error;
    expect(error).toMatch(/^the answer does not match \{risk, labels, reason\}: /);
    expect(error).toMatch(/risk: /);
    expect(error).toMatch(/labels: /);
    expect(error).toMatch(/reason: /);
    expect(parseAnswer(null)).toEqual({ ok: false, error: "the answer is empty" });
  });

  it("writes zod issues with their paths", () => {
    const r = modelAnswer.safeParse({ risk: 1, labels: [1], reason: "x" });
    expect(r.success).toBe(false);
    if (!r.success) expect(describeIssues(r.error)).toMatch(/^labels\.0: /);
  });
});

describe("answerStep", () => {
  it("is ok, then repair once, then dead with the reason", () => {
    expect(answerStep(JSON.stringify(good), false)).toEqual({ kind: "ok", answer: good });
    expect(answerStep(JSON.stringify(good), true)).toEqual({ kind: "ok", answer: good });
    const first = answerStep("no idea", false);
    expect(first.kind).toBe("repair");
    const second = answerStep("still no idea", true);
    expect(second.kind).toBe("dead");
    expect(second.kind === "dead" && second.reason).toMatch(
      /^invalid output after a repair retry: the answer is not JSON/,
    );
  });

  it("repairs with the answer quoted back and the shape again, saying json", () => {
    const [assistant, user] = repairTurn("x".repeat(5000), "risk: Too big");
    expect(assistant).toEqual({ role: "assistant", content: "x".repeat(2000) });
    expect(user?.role).toBe("user");
    expect(user?.content).toContain("risk: Too big");
    expect(user?.content).toMatch(/JSON object only/);
  });
});

const task: AssessmentTask = {
  v: 1,
  type: "assessment.task",
  id: "shop/door:loiter:1:0",
  camera_id: "shop/door",
  pool: { namespace: "shop", name: "qwen" },
  trigger: {
    kind: "event",
    event_id: "shop/door:loiter:1:0",
    rule: "loiter",
    rule_kind: "dwell",
    severity: "warning",
    track_id: 1,
    zone: "door",
    detail: "",
  },
  priority: "normal",
  prompt: "Is anyone acting suspiciously?",
  threshold: 2,
  created_at: "2026-12-01T00:00:00.000Z",
  deadline: "2026-12-01T00:00:30.000Z",
  context: { camera: "door", zone: "door", rule: "loiter", counts: { person: 1 } },
  images: [
    { role: "crop", jpeg_base64: "Q1JPUA==", width: 56, height: 112 },
    { role: "frame", jpeg_base64: "RlJBTUU=", width: 320, height: 180 },
  ],
  alarm: null,
};

describe("taskMessages", () => {
  it("says json in the system prompt, then the camera's prompt and context, then the frame and the crops", () => {
    const [system, user] = taskMessages(task);
    expect(system).toEqual({ role: "system", content: SYSTEM_PROMPT });
    expect(SYSTEM_PROMPT).toMatch(/json/i);
    const parts = user?.content as { type: string; text?: string; image_url?: { url: string } }[];
    expect(parts[0]?.type).toBe("text");
    expect(parts[0]?.text?.startsWith("Is anyone acting suspiciously?")).toBe(true);
    expect(parts[0]?.text).toContain('"severity":"warning"');
    expect(parts.slice(1).map((p) => p.image_url?.url)).toEqual([
      "data:image/jpeg;base64,RlJBTUU=",
      "data:image/jpeg;base64,Q1JPUA==",
    ]);
  });

  it("estimates tokens as Qwen-VL counts images (28×28 patches + 2) plus the text and the answer", () => {
    // 320×180 → 12×7 + 2 = 86; 56×112 → 2×4 + 2 = 10.
    const text = Math.ceil((SYSTEM_PROMPT.length + task.prompt.length + 300) / 4) + 80;
    expect(estimateTokens(task)).toBe(text + 86 + 10);
  });
});
