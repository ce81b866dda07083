// CameraDetection: one camera, what to detect in it, and what to do about it.
// This schema is the single source of the TS type, runtime validation and crds/vigil.dev_cameradetections.yaml.
import { z } from "zod";
import { conditions, dnsLabel, objectMeta } from "./meta.ts";

const cel = (rule: string, message: string, fieldPath?: string) => ({
  rule,
  message,
  ...(fieldPath ? { fieldPath } : {}),
});

export const SOURCE_SCHEMES = ["rtsp", "rtsps", "http", "https", "file"] as const;

export const source = z
  .object({
    url: z
      .string()
      .min(1)
      .max(2048)
      .describe("Stream URL: rtsp://, rtsps://, http(s):// or file://. Credentials go in credentialsSecretRef."),
    credentialsSecretRef: z
      .object({
        name: dnsLabel.describe("Secret holding the camera's credentials."),
        usernameKey: z.string().min(1).max(253).default("username"),
        passwordKey: z.string().min(1).max(253).default("password"),
      })
      .optional()
      .describe("Secret with the camera's user name and password, injected into the URL only inside the worker."),
    transport: z.enum(["tcp", "udp"]).default("tcp").describe("RTSP transport; TCP survives lossy networks."),
    hwaccel: z.enum(["none", "cuda", "vaapi", "qsv"]).default("none").describe("ffmpeg hardware decoding."),
  })
  .meta({
    "x-kubernetes-validations": [
      cel(
        `self.url.matches('^(${SOURCE_SCHEMES.join("|")})://')`,
        `source.url must use one of the schemes ${SOURCE_SCHEMES.join(", ")}`,
        ".url",
      ),
      cel(
        "!self.url.matches('^[a-zA-Z][a-zA-Z0-9+.-]*://[^/@]*@')",
        "source.url must not carry credentials; reference a Secret in source.credentialsSecretRef",
        ".url",
      ),
    ],
  });

const motionGate = z.object({
  enabled: z.boolean().default(true).describe("Skip inference on frames without motion."),
  // A walking person seen from afar changes well under 1 % of a frame: 0.3 % catches them, still noise ignores.
  threshold: z.number().min(0).max(1).default(0.003).describe("Fraction of changed pixels that counts as motion."),
  maxSkipSeconds: z.number().min(0).max(60).default(2).describe("Re-check a still scene at least this often."),
});

export const detection = z.object({
  targetFps: z.number().gt(0).max(60).default(5).describe("Frames per second sampled for inference."),
  classes: z.array(z.string().min(1).max(63)).min(1).max(80).default(["person"]).describe("Class names to keep."),
  minScore: z.number().min(0).max(1).default(0.5).describe("Minimum detection confidence."),
  motionGate: motionGate.prefault({}),
});

export const zone = z.object({
  name: dnsLabel.describe("Zone name, referenced by rules."),
  polygon: z
    .array(z.array(z.number().min(0).max(1)).length(2))
    .min(3)
    .max(64)
    .describe("Polygon as [x, y] points normalized to the frame (0..1), at least 3."),
});

const zoneRef = dnsLabel.describe("Name of a zone in spec.zones.");
const classList = z.array(z.string().min(1).max(63)).min(1).max(16);

// A rule is a Kubernetes-style union: exactly one of its kind members is set (like a volume source).
const RULE_KINDS = ["presence", "dwell", "count", "ppeMissing", "sequence"] as const;
export const rule = z
  .object({
    name: dnsLabel.describe("Rule name, part of each event's id."),
    severity: z.enum(["info", "warning", "critical"]).default("warning"),
    cooldownSeconds: z.number().min(0).max(86400).default(30).describe("Quiet time after a firing, per track."),
    presence: z.object({ zone: zoneRef, classes: classList.default(["person"]) }).optional(),
    dwell: z.object({ zone: zoneRef, seconds: z.number().gt(0).max(86400) }).optional(),
    count: z
      .object({
        zone: zoneRef.optional(),
        class: z.string().min(1).max(63).default("person"),
        min: z.int().min(0).max(10000).optional(),
        max: z.int().min(0).max(10000).optional(),
        forSeconds: z.number().min(0).max(86400).default(0),
      })
      .meta({
        "x-kubernetes-validations": [
          cel("has(self.min) || has(self.max)", "count needs min or max"),
          cel("!has(self.min) || !has(self.max) || self.min <= self.max", "count.min must not exceed count.max"),
        ],
      })
      .optional(),
    ppeMissing: z
      .object({
        zone: zoneRef.optional(),
        required: classList.describe("Equipment classes a person must wear, e.g. hairnet, helmet."),
        seconds: z.number().min(0).max(86400).default(3),
      })
      .optional(),
    sequence: z
      .object({
        from: zoneRef.describe("Zone that must be visited first, e.g. handwash."),
        to: zoneRef.describe("Zone entered afterwards, e.g. production."),
        withinSeconds: z.number().gt(0).max(86400).default(300),
      })
      .meta({ "x-kubernetes-validations": [cel("self.from != self.to", "sequence.from and sequence.to must differ")] })
      .optional(),
  })
  .meta({
    "x-kubernetes-validations": [
      cel(
        `${RULE_KINDS.map((k) => `(has(self.${k}) ? 1 : 0)`).join(" + ")} == 1`,
        `a rule sets exactly one of ${RULE_KINDS.join(", ")}`,
      ),
    ],
  });

export const alarm = z.object({
  webhookSecretRef: z
    .object({ name: dnsLabel.describe("Secret name, in the camera's namespace.") })
    .optional()
    .describe(
      "Secret holding the webhook: `url` (the endpoint) and `secret` (the Standard Webhooks signing key, whsec_…).",
    ),
  clip: z
    .object({
      preSeconds: z.number().min(0).max(120).default(10),
      postSeconds: z.number().min(0).max(120).default(20),
    })
    .meta({
      "x-kubernetes-validations": [
        cel("self.preSeconds + self.postSeconds <= 120", "clip.preSeconds + clip.postSeconds must be at most 120"),
      ],
    })
    // A complete default: the apiserver checks a default against the CEL rules before nested defaults fill it.
    .default({ preSeconds: 10, postSeconds: 20 }),
  dedupWindowSeconds: z.number().min(0).max(86400).default(60),
  minSeverity: z.enum(["info", "warning", "critical"]).default("warning"),
});

export const assessment = z
  .object({
    poolRef: z.object({ name: dnsLabel.describe("AssessmentPool in the same namespace.") }),
    prompt: z
      .string()
      .min(1)
      .max(4096)
      .optional()
      .describe("What to ask about the crops and frame; Vigil adds the JSON answer format (risk 0-3, labels, reason)."),
    threshold: z
      .int()
      .min(0)
      .max(3)
      .optional()
      .describe("A result at or above this risk raises an alarm (needs spec.alarm); absent: never."),
    sampleIntervalSeconds: z
      .int()
      .min(1)
      .max(86400)
      .optional()
      .describe("Also assess a frame this often while people are in view; absent: only on events."),
    onEvents: z
      .array(z.string().min(1).max(63))
      .max(64)
      .optional()
      .describe("Names of the rules whose events are assessed; absent: every rule's."),
  })
  .describe("LLM risk assessment of rule events through an AssessmentPool.");

// Every zone a rule names must exist; said once here rather than per rule kind.
const zoneNamesOf = (r: string) =>
  `[${[
    `has(${r}.presence) ? ${r}.presence.zone : ''`,
    `has(${r}.dwell) ? ${r}.dwell.zone : ''`,
    `has(${r}.count) && has(${r}.count.zone) ? ${r}.count.zone : ''`,
    `has(${r}.ppeMissing) && has(${r}.ppeMissing.zone) ? ${r}.ppeMissing.zone : ''`,
    `has(${r}.sequence) ? ${r}.sequence.from : ''`,
    `has(${r}.sequence) ? ${r}.sequence.to : ''`,
  ].join(", ")}]`;

export const cameraDetectionSpec = z
  .object({
    source,
    poolRef: z.object({ name: dnsLabel.describe("DetectorPool in the same namespace.") }),
    detection: detection.prefault({}),
    zones: z
      .array(zone)
      .max(32)
      .default([])
      .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] }),
    rules: z
      .array(rule)
      .max(64)
      .default([])
      .meta({ "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"] }),
    alarm: alarm.optional(),
    assessment: assessment.optional(),
    paused: z.boolean().default(false).describe("Stop processing without deleting the camera."),
  })
  .meta({
    "x-kubernetes-validations": [
      cel(
        `self.rules.all(r, ${zoneNamesOf("r")}.all(n, n == '' || self.zones.exists(z, z.name == n)))`,
        "every zone a rule names must be defined in spec.zones",
        ".rules",
      ),
    ],
  });
export type CameraDetectionSpec = z.infer<typeof cameraDetectionSpec>;

/**
 * Set with spec.paused by whoever starts or stops a camera through the gateway (gateway/control-kube.ts): the API
 * token's name (never the token), and the spec.paused it set. The operator's Paused and Resumed Events name that
 * actor only while spec.paused still is that value, so a later `kubectl edit` is not put down to the token.
 */
export const CONTROL_ACTOR_ANNOTATION = "vigil.dev/control-actor";
export const CONTROL_PAUSED_ANNOTATION = "vigil.dev/control-paused";

export const CAMERA_PHASES = ["Pending", "Scheduled", "Running", "Degraded", "Unschedulable", "Paused"] as const;

export const cameraDetectionStatus = z.object({
  observedGeneration: z.int().min(0).optional(),
  phase: z.enum(CAMERA_PHASES).optional(),
  pool: z.string().optional(),
  worker: z.string().optional().describe("Worker pod serving this camera."),
  fps: z.number().min(0).optional().describe("Processed frames per second, as last reported."),
  lastFrameTime: z.string().optional().describe("When the worker last decoded a frame."),
  reconnects: z.int().min(0).optional(),
  conditions: conditions.optional(),
});
export type CameraDetectionStatus = z.infer<typeof cameraDetectionStatus>;

export const cameraDetection = z.object({
  apiVersion: z.string(),
  kind: z.literal("CameraDetection"),
  metadata: objectMeta,
  spec: cameraDetectionSpec,
  status: cameraDetectionStatus.optional(),
});
export type CameraDetection = z.infer<typeof cameraDetection>;
