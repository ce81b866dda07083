import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { parsePoolFile } from "../../assessor/pool-source.ts";

const manifest = (over: Record<string, unknown> = {}) => ({
  apiVersion: "vigil.dev/v1alpha1",
  kind: "AssessmentPool",
  metadata: { name: "llm" },
  spec: { provider: { baseURL: "http://127.0.0.1:9/v1", model: "qwen-vl-max" }, keysSecretRef: { name: "k" } },
  keys: [{ name: "a", key: "sk-secret-value-a", scope: "A", rps: 10 }],
  ...over,
});

describe("parsePoolFile", () => {
  it("reads a pool with its keys, filling the spec's defaults and the default namespace", () => {
    const [p, ...rest] = parsePoolFile(stringify(manifest()));
    expect(rest).toEqual([]);
    expect(p?.namespace).toBe("default");
    expect(p?.name).toBe("llm");
    expect(p?.spec.maxTasksPerCamera).toBe(20);
    expect(p?.spec.strategy).toBe("least-loaded");
    expect(p?.keys[0]).toMatchObject({ name: "a", scope: "A", rps: 10, priority: 0, weight: 1 });
  });

  it("reads several documents and refuses the same pool twice", () => {
    const two = `${stringify(manifest())}---\n${stringify(manifest({ metadata: { name: "other", namespace: "x" } }))}`;
    expect(parsePoolFile(two).map((p) => `${p.namespace}/${p.name}`)).toEqual(["default/llm", "x/other"]);
    const dup = `${stringify(manifest())}---\n${stringify(manifest())}`;
    expect(() => parsePoolFile(dup, "f.yaml")).toThrow("f.yaml: document 2: pool default/llm appears twice");
  });

  it("names the document and the field, and never echoes a key", () => {
    const bad = manifest({ keys: [{ name: "a", key: "sk-secret-value-a", rps: -1 }] });
    let message = "";
    try {
      parsePoolFile(stringify(bad), "f.yaml");
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^f\.yaml: document 1: keys\.0\.rps: /);
    expect(message).not.toContain("sk-secret-value-a");
    expect(() => parsePoolFile(stringify(manifest({ keys: [] })))).toThrow(/keys: /);
    expect(() => parsePoolFile("")).toThrow(/no AssessmentPool/);
  });

  it("refuses a baseURL with credentials", () => {
    const m = manifest();
    (m.spec as { provider: { baseURL: string } }).provider.baseURL = "http://user:pw@host/v1";
    expect(() => parsePoolFile(stringify(m))).toThrow(/spec\.provider\.baseURL/);
  });
});
