// The apiserver itself must reject bad objects, with a message naming the field: Vigil's CRDs, real kube-apiserver.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { assessmentPoolSpec } from "../../operator/api/assessment-pool.ts";
import { GROUP, VERSION } from "../../operator/api/meta.ts";
import { apiMessage, type Clients } from "../../operator/kube/client.ts";
import { admin, freshNamespace, ROOT } from "../setup/kube.ts";

type Obj = Record<string, any>;
const sample = (f: string): Obj => parse(readFileSync(join(ROOT, "crds", "samples", f), "utf8"));

let c: Clients;
let ns: string;
beforeAll(async () => {
  c = admin();
  ns = await freshNamespace(c, "crd");
});

async function create(plural: string, body: Obj, strict = false): Promise<string> {
  try {
    await c.custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural,
      body,
      ...(strict ? { fieldValidation: "Strict" } : {}),
    });
    return "accepted";
  } catch (err) {
    return apiMessage(err);
  }
}

let seq = 0;
function cam(mutate: (o: Obj) => void): Obj {
  const o = structuredClone(sample("camera-production.yaml"));
  o.metadata.name = `bad-cam-${seq++}`;
  mutate(o);
  return o;
}
function pool(mutate: (o: Obj) => void): Obj {
  const o = structuredClone(sample("detectorpool.yaml"));
  o.metadata.name = `bad-pool-${seq++}`;
  mutate(o);
  return o;
}

const badCameras: [string, (o: Obj) => void, string[]][] = [
  ["missing source.url", (o) => delete o.spec.source.url, ["spec.source.url", "Required"]],
  [
    "an ftp:// source",
    (o) => (o.spec.source.url = "ftp://cam/stream"),
    ["spec.source.url", "must use one of the schemes"],
  ],
  [
    "credentials inline in the URL",
    (o) => (o.spec.source.url = "rtsp://admin:hunter2@cam/stream"),
    ["spec.source.url", "must not carry credentials"],
  ],
  ["an unknown transport", (o) => (o.spec.source.transport = "sctp"), ["spec.source.transport", "Unsupported value"]],
  [
    "a polygon of two points",
    (o) =>
      (o.spec.zones[0].polygon = [
        [0, 0],
        [1, 1],
      ]),
    ["spec.zones[0].polygon", "at least 3 items"],
  ],
  [
    "a polygon point outside [0,1]",
    (o) => (o.spec.zones[1].polygon[2] = [1.5, 0.2]),
    ["spec.zones[1].polygon[2][0]", "less than or equal to 1"],
  ],
  [
    "a point with three coordinates",
    (o) => (o.spec.zones[0].polygon[0] = [0.1, 0.1, 0.1]),
    ["spec.zones[0].polygon[0]", "at most 2 items"],
  ],
  ["two zones with one name", (o) => (o.spec.zones[1].name = "handwash"), ["spec.zones[1]", "Duplicate value"]],
  [
    "a clip of 100+30 s",
    (o) => (o.spec.alarm.clip = { preSeconds: 100, postSeconds: 30 }),
    ["spec.alarm.clip", "at most 120"],
  ],
  [
    "a rule with two kinds",
    (o) => (o.spec.rules[0].dwell = { zone: "production", seconds: 5 }),
    ["spec.rules[0]", "exactly one of"],
  ],
  ["a rule with no kind", (o) => delete o.spec.rules[0].ppeMissing, ["spec.rules[0]", "exactly one of"]],
  [
    "a rule naming an unknown zone",
    (o) => (o.spec.rules[1].sequence.to = "warehouse"),
    ["spec.rules", "must be defined in spec.zones"],
  ],
  [
    "a sequence from a zone to itself",
    (o) => (o.spec.rules[1].sequence.to = "handwash"),
    ["spec.rules[1].sequence", "must differ"],
  ],
  [
    "minScore above 1",
    (o) => (o.spec.detection.minScore = 1.2),
    ["spec.detection.minScore", "less than or equal to 1"],
  ],
  ["targetFps of 0", (o) => (o.spec.detection.targetFps = 0), ["spec.detection.targetFps", "greater than 0"]],
  [
    "a count rule with min > max",
    (o) => o.spec.rules.push({ name: "c", count: { min: 5, max: 2 } }),
    ["spec.rules[2].count", "count.min must not exceed count.max"],
  ],
  ["a poolRef that is not a DNS label", (o) => (o.spec.poolRef.name = "Pool_A"), ["spec.poolRef.name", "should match"]],
  [
    "a webhook Secret ref without a name",
    (o) => delete o.spec.alarm.webhookSecretRef.name,
    ["spec.alarm.webhookSecretRef.name", "Required"],
  ],
  [
    "an assessment without a poolRef",
    (o) => (o.spec.assessment = { prompt: "Is anyone at risk?" }),
    ["spec.assessment.poolRef", "Required"],
  ],
  [
    "an assessment threshold above 3 (risk is 0-3)",
    (o) => (o.spec.assessment = { poolRef: { name: "qwen" }, threshold: 4 }),
    ["spec.assessment.threshold", "less than or equal to 3"],
  ],
  [
    "an assessment sampled every 0 s",
    (o) => (o.spec.assessment = { poolRef: { name: "qwen" }, sampleIntervalSeconds: 0 }),
    ["spec.assessment.sampleIntervalSeconds", "greater than or equal to 1"],
  ],
  [
    "an assessment poolRef that is not a DNS label",
    (o) => (o.spec.assessment = { poolRef: { name: "Qwen_VL" } }),
    ["spec.assessment.poolRef.name", "should match"],
  ],
];

/** An AssessmentPool as a user would write it: only the required fields. */
const apool = (mutate: (o: Obj) => void = () => undefined): Obj => {
  const o: Obj = {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: "AssessmentPool",
    metadata: { name: `apool-${seq++}` },
    spec: {
      provider: { baseURL: "https://dashscope.aliyuncs.com/compatible-mode/v1", model: "qwen-vl-max" },
      keysSecretRef: { name: "qwen-keys" },
    },
  };
  mutate(o);
  return o;
};

const badAssessmentPools: [string, (o: Obj) => void, string[]][] = [
  [
    "a baseURL that is not http(s)",
    (o) => (o.spec.provider.baseURL = "ftp://llm.example/v1"),
    ["spec.provider.baseURL", "should match"],
  ],
  [
    "credentials inline in the baseURL",
    (o) => (o.spec.provider.baseURL = "https://user:sk-secret@llm.example/v1"),
    ["spec.provider.baseURL", "should match"],
  ],
  ["no model", (o) => delete o.spec.provider.model, ["spec.provider.model", "Required"]],
  [
    "an unknown wire format",
    (o) => (o.spec.provider.format = "anthropic"),
    ["spec.provider.format", "Unsupported value"],
  ],
  ["an unknown strategy", (o) => (o.spec.strategy = "random"), ["spec.strategy", "Unsupported value"]],
  ["no keys Secret", (o) => delete o.spec.keysSecretRef, ["spec.keysSecretRef", "Required"]],
  [
    "a keys Secret that is not a DNS label",
    (o) => (o.spec.keysSecretRef.name = "Qwen_Keys"),
    ["spec.keysSecretRef.name", "should match"],
  ],
  ["a cooldown of 0 s", (o) => (o.spec.cooldownSeconds = 0), ["spec.cooldownSeconds", "greater than or equal to 1"]],
  ["11 attempts per task", (o) => (o.spec.maxAttempts = 11), ["spec.maxAttempts", "less than or equal to 10"]],
  [
    "two budgets for one scope",
    (o) =>
      (o.spec.budgets = [
        { scope: "a", dailyTokens: 1000 },
        { scope: "a", dailyTokens: 2000 },
      ]),
    ["spec.budgets[1]", "Duplicate value"],
  ],
];

const badPools: [string, (o: Obj) => void, string[]][] = [
  [
    "minWorkers above maxWorkers",
    (o) => Object.assign(o.spec, { minWorkers: 5, maxWorkers: 2 }),
    ["spec.minWorkers", "must not exceed maxWorkers"],
  ],
  ["a sha256 that is not hex", (o) => (o.spec.model.sha256 = "xyz"), ["spec.model.sha256", "should match"]],
  ["an unknown model format", (o) => (o.spec.model.format = "yolov3"), ["spec.model.format", "Unsupported value"]],
  [
    "an input size not a multiple of 32",
    (o) => (o.spec.model.inputSize = 650),
    ["spec.model.inputSize", "multiple of 32"],
  ],
  [
    "an input width without a height",
    (o) => (o.spec.model.inputWidth = 640),
    ["spec.model.inputWidth", "model.inputWidth and model.inputHeight are given together"],
  ],
  [
    "an input height not a multiple of 32",
    (o) => Object.assign(o.spec.model, { inputWidth: 640, inputHeight: 360 }),
    ["spec.model.inputHeight", "multiple of 32"],
  ],
  [
    "camerasPerWorker of 0",
    (o) => (o.spec.camerasPerWorker = 0),
    ["spec.camerasPerWorker", "greater than or equal to 1"],
  ],
  ["a model URI with no scheme", (o) => (o.spec.model.uri = "/models/x.onnx"), ["spec.model.uri", "should match"]],
  [
    "credentials inline in the model URI",
    (o) => (o.spec.model.uri = "https://deploy:hunter2@models.example/yolov8n.onnx"),
    ["spec.model.uri", "must not carry credentials"],
  ],
  [
    "a model credentials Secret that is not a DNS label",
    (o) => (o.spec.model.credentialsSecretRef = { name: "Model_Creds" }),
    ["spec.model.credentialsSecretRef.name", "should match"],
  ],
  ["a pool name too long for its pods", (o) => (o.metadata.name = "p".repeat(49)), ["at most 48 characters"]],
];

describe("the apiserver rejects bad CameraDetections, naming the field", () => {
  it.each(badCameras)("%s", async (_what, mutate, expected) => {
    const msg = await create("cameradetections", cam(mutate));
    expect(msg).not.toBe("accepted");
    for (const e of expected) expect(msg).toContain(e);
  });
});

describe("the apiserver rejects bad DetectorPools, naming the field", () => {
  it.each(badPools)("%s", async (_what, mutate, expected) => {
    const msg = await create("detectorpools", pool(mutate));
    expect(msg).not.toBe("accepted");
    for (const e of expected) expect(msg).toContain(e);
  });
});

describe("the apiserver rejects bad AssessmentPools, naming the field", () => {
  it.each(badAssessmentPools)("%s", async (_what, mutate, expected) => {
    const msg = await create("assessmentpools", apool(mutate));
    expect(msg).not.toBe("accepted");
    for (const e of expected) expect(msg).toContain(e);
  });
});

describe("good objects", () => {
  it("accepts a minimal AssessmentPool and applies the same defaults zod does", async () => {
    const body = apool();
    expect(await create("assessmentpools", body, true)).toBe("accepted");
    const got = (await c.custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: "assessmentpools",
      name: body.metadata.name,
    })) as Obj;
    expect(got.spec).toEqual({
      provider: {
        baseURL: "https://dashscope.aliyuncs.com/compatible-mode/v1",
        model: "qwen-vl-max",
        format: "openai",
      },
      keysSecretRef: { name: "qwen-keys", key: "keys.yaml" },
      strategy: "least-loaded",
      cooldownSeconds: 60,
      maxAttempts: 4,
      timeoutSeconds: 30,
      maxTasksPerCamera: 20,
      budgets: [],
    });
    expect(got.spec).toEqual(assessmentPoolSpec.parse(body.spec));
  });

  it("accepts a camera's assessment with every field", async () => {
    const msg = await create(
      "cameradetections",
      cam(
        (o) =>
          (o.spec.assessment = {
            poolRef: { name: "qwen" },
            prompt: "Is anyone at risk near the press?",
            threshold: 2,
            sampleIntervalSeconds: 30,
            onEvents: [o.spec.rules[0].name],
          }),
      ),
      true,
    );
    expect(msg).toBe("accepted");
  });

  it("accepts the samples as they are, with server-side defaults", async () => {
    expect(await create("detectorpools", sample("detectorpool.yaml"))).toBe("accepted");
    for (const f of ["camera-entrance.yaml", "camera-production.yaml"])
      expect(await create("cameradetections", sample(f))).toBe("accepted");
    const got = (await c.custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: "cameradetections",
      name: "entrance",
    })) as Obj;
    expect(got.spec.detection.motionGate).toEqual({ enabled: true, threshold: 0.003, maxSkipSeconds: 2 });
    expect(got.spec.paused).toBe(false);
  });

  it("rejects an unknown field under strict field validation (kubectl's default)", async () => {
    const msg = await create(
      "cameradetections",
      cam((o) => (o.spec.source.pasword = "x")),
      true,
    );
    expect(msg).toContain('unknown field "spec.source.pasword"');
    // The assessment's old shape (enabled, apiKeysSecretRef) is gone: the keys live in an AssessmentPool's Secret.
    const old = await create(
      "cameradetections",
      cam((o) => (o.spec.assessment = { poolRef: { name: "qwen" }, enabled: true, apiKeysSecretRef: { name: "k" } })),
      true,
    );
    expect(old).toContain('unknown field "spec.assessment.enabled"');
    expect(old).toContain('unknown field "spec.assessment.apiKeysSecretRef"');
  });
});
