// The gateway's HTTP contract as zod schemas: they validate requests, serialize responses (fastify-type-provider-zod)
// and become the OpenAPI document at /docs/json. Bus messages reuse the workers' own schemas.
import { z } from "zod";
import { assessmentResult } from "../assessor/messages.ts";
import { cameraIdSchema } from "../worker/publish/camera-id.ts";
import { eventMessage, statsMessage } from "../worker/publish/messages.ts";
import { TOKEN_SCOPES } from "./auth.ts";
import type { CameraSummary, PoolSummary } from "./feed.ts";

export const errorBody = z
  .object({
    error: z
      .string()
      .describe("Machine-readable code: unauthorized, forbidden, not_found, bad_request, rate_limited, unavailable, …"),
    message: z.string().describe("What went wrong, for people."),
  })
  .describe("An error");
export type ErrorBody = z.infer<typeof errorBody>;

export const cameraSummary = z.object({
  id: z.string().describe("Camera id: `<namespace>/<name>`, as in bus messages' camera_id; URL-encoded in paths."),
  name: z.string().describe("The CameraDetection's name."),
  namespace: z.string(),
  pool: z.string(),
  source: z.string().describe("Stream URL with credentials and query values masked."),
  targetFps: z.number(),
  zones: z.array(z.object({ name: z.string(), polygon: z.array(z.array(z.number())) })),
  rules: z.array(z.object({ name: z.string(), kind: z.string(), severity: z.string() })),
  paused: z.boolean(),
  status: z.object({
    phase: z.string().optional(),
    worker: z.string().optional(),
    fps: z.number().optional(),
    lastFrameTime: z.string().optional(),
    conditions: z.array(z.unknown()).optional(),
  }),
});

export const cameraView = cameraSummary.extend({
  stats: statsMessage.nullable().describe("The camera's latest stats message from the bus, null before the first."),
});
export type CameraView = z.infer<typeof cameraView>;

export const poolSummary = z.object({
  name: z.string(),
  namespace: z.string(),
  model: z.object({
    uri: z.string(),
    format: z.string().optional(),
    inputSize: z.number().optional(),
    inputWidth: z.number().optional(),
    inputHeight: z.number().optional(),
  }),
  camerasPerWorker: z.number(),
  minWorkers: z.number(),
  maxWorkers: z.number(),
  status: z.record(z.string(), z.unknown()),
});

const EPOCH_MS = /^\d{1,15}$/;
const RFC3339 = z.iso.datetime({ offset: true });

/** `since` as epoch milliseconds or an RFC 3339 time; undefined when absent or invalid (the schema rejects those). */
export function parseSince(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (EPOCH_MS.test(v)) return Number(v);
  return RFC3339.safeParse(v).success ? Date.parse(v) : undefined;
}

export const eventsQuery = z.object({
  since: z
    .string()
    .refine((v) => parseSince(v) !== undefined, "must be an RFC 3339 time (2025-01-31T12:00:00Z) or epoch milliseconds")
    .optional()
    .describe(
      "Only events after this time (exclusive), oldest first, at most `limit` of them: page forward with the last timestamp seen. Without it: the latest `limit` events.",
    ),
  limit: z.coerce.number().int().min(1).max(1000).default(100).describe("1 to 1000, default 100."),
});

export const cameraParams = z.object({
  id: cameraIdSchema.describe("Camera id, `<namespace>/<name>`, URL-encoded as one path segment: `shop%2Fentrance`."),
});

export const tokenIdentity = z
  .object({
    name: z.string().describe("The token's name, from VIGIL_API_TOKEN (`name:token[:read|write]`); never the token."),
    scope: z.enum(TOKEN_SCOPES).describe("`read`: every GET route. `write`: also starting and stopping cameras."),
  })
  .describe("The token a request was made with");

export const eventsStreamQuery = z.object({
  camera: cameraIdSchema.optional().describe("Only this camera's events (its id, `<namespace>/<name>`)."),
});

export const readyBody = z.object({
  ready: z.boolean(),
  feed: z.boolean().describe("The bus feed is connected."),
  catalog: z.boolean().describe("The camera catalog has synced."),
  message: z.string(),
});

const minRisk = z.coerce
  .number()
  .int()
  .min(0)
  .max(3)
  .optional()
  .describe("Only results with risk at or above this (0 to 3).");

export const assessmentsQuery = z.object({
  camera: cameraIdSchema.optional().describe("Only this camera's results (its id, `<namespace>/<name>`)."),
  minRisk,
  limit: z.coerce.number().int().min(1).max(1000).default(100).describe("1 to 1000, default 100."),
});

export const cameraAssessmentsQuery = z.object({
  minRisk,
  limit: z.coerce.number().int().min(1).max(100).default(20).describe("1 to 100, default 20."),
});

export const assessmentsStreamQuery = z.object({
  camera: cameraIdSchema.optional().describe("Only this camera's results (its id, `<namespace>/<name>`)."),
  minRisk,
});

export const assessmentList = z.object({
  assessments: z.array(assessmentResult).describe("Newest first (by completion)."),
});

export const cameraAssessments = z.object({
  camera: z.string().describe("The camera's id."),
  latest: assessmentResult.nullable().describe("The camera's latest result whatever its risk; null before the first."),
  assessments: z.array(assessmentResult).describe("Its recent results, newest first (the assessor keeps 100)."),
});

export { assessmentResult, eventMessage, statsMessage };

// The feed's types and these schemas describe the same objects: this fails to compile when they drift apart.
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const _camera: Same<z.infer<typeof cameraSummary>, CameraSummary> = true;
const _pool: Same<z.infer<typeof poolSummary>, PoolSummary> = true;
void _camera;
void _pool;
