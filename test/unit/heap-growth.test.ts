import { describe, expect, it } from "vitest";
import { parseWorkerEnv } from "../../operator/api/worker-env.ts";

describe("VIGIL_HEAP_GROWING_PERCENT", () => {
  const env = { VIGIL_MODEL_URI: "file:///m.onnx" };

  it("defaults to 100 (worker/heap-growth.ts) and takes 0 for V8's own growth", () => {
    expect(parseWorkerEnv(env).VIGIL_HEAP_GROWING_PERCENT).toBe(100);
    expect(parseWorkerEnv({ ...env, VIGIL_HEAP_GROWING_PERCENT: "0" }).VIGIL_HEAP_GROWING_PERCENT).toBe(0);
    expect(parseWorkerEnv({ ...env, VIGIL_HEAP_GROWING_PERCENT: "250" }).VIGIL_HEAP_GROWING_PERCENT).toBe(250);
  });

  it("refuses negative, fractional and non-numeric values, naming the variable", () => {
    for (const v of ["-1", "1.5", "lots", "1001"])
      expect(() => parseWorkerEnv({ ...env, VIGIL_HEAP_GROWING_PERCENT: v })).toThrow(/VIGIL_HEAP_GROWING_PERCENT: /);
  });
});
