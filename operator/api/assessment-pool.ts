// AssessmentPool: an OpenAI-compatible multimodal model and the pool of API keys `vigil assessor` calls it through;
// a CameraDetection's `assessment.poolRef` names one. This schema is the single source of the TS type, runtime
// validation and crds/vigil.dev_assessmentpools.yaml. The keys themselves live only in the Secret named by
// `keysSecretRef` (its format: `assessmentKeys` below); status names a key by fingerprint, never by value.
import { z } from "zod";
import { conditions, dnsLabel, objectMeta } from "./meta.ts";

export const ASSESSMENT_STRATEGIES = ["round-robin", "least-loaded", "priority"] as const;

export const assessmentPoolSpec = z.object({
  provider: z.object({
    baseURL: z
      .string()
      .min(1)
      .max(2048)
      .regex(/^https?:\/\/[^\s@]+$/, "provider.baseURL must be an http(s) URL without credentials")
      .describe(
        "OpenAI-compatible endpoint, e.g. https://dashscope.aliyuncs.com/compatible-mode/v1, a vLLM server's /v1.",
      ),
    model: z.string().min(1).max(253).describe("Model name sent with every call, e.g. qwen-vl-max."),
    format: z.enum(["openai"]).default("openai").describe("Wire format (chat completions with image_url parts)."),
  }),
  keysSecretRef: z
    .object({
      name: dnsLabel.describe("Secret in the pool's namespace."),
      key: z.string().min(1).max(253).default("keys.yaml").describe("Data key holding the YAML list of keys."),
    })
    .describe("Secret whose data key is a YAML list of keys: name, key, scope, rpm, tpm, rps, priority, weight."),
  strategy: z.enum(ASSESSMENT_STRATEGIES).default("least-loaded"),
  cooldownSeconds: z.int().min(1).max(3600).default(60).describe("Longest backoff of a cooling key or scope."),
  maxAttempts: z.int().min(1).max(10).default(4).describe("Calls per task before it goes to the DLQ."),
  timeoutSeconds: z.int().min(1).max(300).default(30).describe("Per-call timeout."),
  maxTasksPerCamera: z
    .int()
    .min(1)
    .max(10000)
    .default(20)
    .describe("Tasks waiting per camera; when full, the oldest is dropped and counted."),
  budgets: z
    .array(
      z.object({
        scope: z.string().min(1).max(253),
        dailyTokens: z.int().min(1).describe("Tokens per UTC day; past it periodic samples stop, events go on."),
      }),
    )
    .max(64)
    .default([])
    .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["scope"] }),
});
export type AssessmentPoolSpec = z.infer<typeof assessmentPoolSpec>;

/** One entry of the keys Secret. Limits are the quota scope's (account × model): every key of a scope gives the same. */
export const assessmentKey = z.object({
  name: z.string().min(1).max(253),
  key: z.string().min(1).max(4096),
  scope: z.string().min(1).max(253).optional().describe("Quota scope (account × model); default: the key's name."),
  rpm: z.number().positive().finite().optional(),
  tpm: z.number().positive().finite().optional(),
  rps: z.number().positive().finite().optional(),
  priority: z.int().default(0).describe("Higher first (strategy priority)."),
  weight: z.number().positive().finite().default(1),
});
export type AssessmentKey = z.infer<typeof assessmentKey>;

/** The keys Secret's data key: a YAML (or JSON) list; names unique. */
export const assessmentKeys = z
  .array(assessmentKey)
  .min(1)
  .superRefine((keys, ctx) => {
    const seen = new Set<string>();
    keys.forEach((k, i) => {
      if (seen.has(k.name))
        ctx.addIssue({ code: "custom", path: [i, "name"], message: `duplicate key name ${k.name}` });
      seen.add(k.name);
    });
  });
export type AssessmentKeys = z.infer<typeof assessmentKeys>;

export const KEY_PHASES = ["AVAILABLE", "IN_USE", "COOLING", "DISABLED"] as const;

export const assessmentKeyStatus = z.object({
  name: z.string().max(253),
  fingerprint: z.string().regex(/^[a-f0-9]{8,64}$/),
  scope: z.string().max(253),
  phase: z.enum(KEY_PHASES),
  /** Calls per second over the last minute. */
  rate: z.number().min(0).optional(),
  cooldownUntil: z.string().optional().describe("RFC 3339."),
  lastError: z.string().max(1024).optional().describe("Scrubbed of key values."),
  calls: z.int().min(0).default(0),
  ok: z.int().min(0).default(0),
  rateLimited: z.int().min(0).default(0),
  errors: z.int().min(0).default(0),
  tokens: z.int().min(0).default(0),
});
export type AssessmentKeyStatus = z.infer<typeof assessmentKeyStatus>;

export const assessmentScopeStatus = z.object({
  name: z.string().max(253),
  /** AIMD share of the configured limits in use now. */
  rateFactor: z.number().min(0).max(1),
  cooldownUntil: z.string().optional(),
  disabled: z.string().max(1024).optional(),
  tokensToday: z.int().min(0).default(0),
  budgetExhausted: z.boolean().default(false),
});

export const assessmentPoolStatus = z.object({
  observedGeneration: z.int().min(0).optional(),
  keys: z
    .array(assessmentKeyStatus)
    .max(256)
    .default([])
    .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] }),
  scopes: z
    .array(assessmentScopeStatus)
    .max(256)
    .default([])
    .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] }),
  /** Summaries of `keys` for the printer columns (a JSONPath cannot count). */
  keyCount: z.int().min(0).optional(),
  availableKeys: z.int().min(0).optional().describe("Keys AVAILABLE or IN_USE."),
  queueDepth: z.int().min(0).optional(),
  deadLetters: z.int().min(0).optional(),
  conditions: conditions.optional(),
});
export type AssessmentPoolStatus = z.infer<typeof assessmentPoolStatus>;

export const assessmentPool = z.object({
  apiVersion: z.string().optional(),
  kind: z.string().optional(),
  metadata: objectMeta,
  spec: assessmentPoolSpec,
  status: assessmentPoolStatus.optional(),
});
export type AssessmentPool = z.infer<typeof assessmentPool>;
