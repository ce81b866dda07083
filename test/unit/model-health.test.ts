import { describe, expect, it } from "vitest";
import { parseWorkerEnv } from "../../operator/api/worker-env.ts";
import { MODEL_STALL_MS, modelHealth } from "../../worker/infer/model-health.ts";

describe("modelHealth", () => {
  const t0 = 1_000_000;

  it("a dead thread fails at once, with its reason", () => {
    expect(modelHealth({ dead: "the model thread exited (code 1)", waiting: 0, quietSince: t0 }, t0)).toEqual({
      ok: false,
      state: "dead",
      reason: "the model thread exited (code 1)",
    });
  });

  it("a thread that answers nothing while frames wait fails only after the stall time", () => {
    const a = { waiting: 2, quietSince: t0 };
    expect(modelHealth(a, t0 + MODEL_STALL_MS)).toEqual({ ok: true });
    expect(modelHealth(a, t0 + MODEL_STALL_MS + 1000)).toEqual({
      ok: false,
      state: "stalled",
      reason: "the model thread answered nothing for 31 s with 2 frame(s) waiting",
    });
  });

  it("an idle model (nothing waiting) is healthy however long it has been quiet", () => {
    expect(modelHealth({ waiting: 0, quietSince: t0 }, t0 + 3_600_000)).toEqual({ ok: true });
  });

  it("the stall time is the worker's VIGIL_MODEL_STALL_MS: by default MODEL_STALL_MS, at least 1 s", () => {
    const env = { VIGIL_MODEL_URI: "file:///m.onnx" };
    expect(parseWorkerEnv(env).VIGIL_MODEL_STALL_MS).toBe(MODEL_STALL_MS);
    const stallMs = parseWorkerEnv({ ...env, VIGIL_MODEL_STALL_MS: "8000" }).VIGIL_MODEL_STALL_MS;
    expect(stallMs).toBe(8000);
    const a = { waiting: 1, quietSince: t0 };
    expect(modelHealth(a, t0 + 8000, stallMs)).toEqual({ ok: true });
    expect(modelHealth(a, t0 + 9000, stallMs)).toMatchObject({ ok: false, state: "stalled" });
    expect(() => parseWorkerEnv({ ...env, VIGIL_MODEL_STALL_MS: "500" })).toThrow(/VIGIL_MODEL_STALL_MS: /);
  });
});
