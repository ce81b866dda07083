// Every message Vigil puts on the bus, as zod schemas shared by producers (workers) and consumers (gateway,
// dashboards). Versioned by `v`; consumers drop what does not parse, with a metric, and never crash.
// v2: camera_id (and so the event id, the video channel and the latest-stats field) is `<namespace>/<name>`
// (camera-id.ts), where v1 had the bare name. A v1 consumer could not tell two namespaces' `entrance` apart, nor
// find a v2 id in its catalog, so the version changes and each side drops the other's messages with a metric.
// A new optional field keeps `v` (a v(n) consumer still parses the message); removing or changing a field bumps it.
import { z } from "zod";
import { cameraIdSchema } from "./camera-id.ts";

export const MESSAGE_VERSION = 2;

export const CHANNELS = {
  stats: "hbd:stats",
  events: "hbd:events",
  /** Latest stats per camera, a hash field per camera id. */
  latestStats: "hbd:stats:latest",
  video: (cameraId: string) => `video:${cameraId}`,
} as const;

const box = z.tuple([z.number(), z.number(), z.number(), z.number()]);

/** The shape existing dashboards read (`type`, `camera_id`, `timestamp`, `data.fps`, `data.persons`, per-class
 * counts), with Vigil's own fields added inside `data`. */
export const statsMessage = z.object({
  v: z.literal(MESSAGE_VERSION),
  type: z.literal("stats"),
  camera_id: cameraIdSchema,
  timestamp: z.string().describe("RFC 3339"),
  data: z
    .object({
      fps: z.number().min(0),
      persons: z.int().min(0),
      inference_ms: z.number().min(0),
      skipped_frames: z.int().min(0),
      reconnects: z.int().min(0),
      provider: z.string(),
      batch_size: z.number().min(0).optional().describe("Mean frames per model run (cross-camera batching)"),
      frames: z.int().min(0),
      last_frame_age_ms: z.number().min(0).nullable(),
      stream: z.string().describe("streaming, connecting, stalled, backoff, ended"),
      error: z.string().optional(),
      model_error: z
        .string()
        .optional()
        .describe("Why the model cannot run frames (its thread died, or answers nothing): the worker's liveness fails"),
    })
    // Per-class counts ("car": 2, …) sit beside the named fields, as dashboards expect.
    .catchall(z.union([z.number(), z.string(), z.null()])),
});
export type StatsMessage = z.infer<typeof statsMessage>;

export const eventMessage = z.object({
  v: z.literal(MESSAGE_VERSION),
  type: z.literal("event"),
  id: z.string().min(1).describe("Stable: `<camera_id>:<rule>:<track>:<start ms>`; consumers deduplicate on it."),
  camera_id: cameraIdSchema,
  timestamp: z.string(),
  rule: z.string(),
  kind: z.enum(["presence", "dwell", "count", "ppeMissing", "sequence"]),
  severity: z.enum(["info", "warning", "critical"]),
  track_id: z.int().min(0),
  zone: z.string().nullable(),
  box: box.nullable().describe("x1, y1, x2, y2 in source pixels"),
  snapshot_key: z.string().nullable(),
  detail: z.string(),
});
export type EventMessage = z.infer<typeof eventMessage>;

/** Parses a bus message, or says why not; never throws. */
export function parseMessage<T>(
  schema: z.ZodType<T>,
  raw: string,
): { ok: true; value: T } | { ok: false; error: string } {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return { ok: false, error: "not JSON" };
  }
  const r = schema.safeParse(json);
  return r.success
    ? { ok: true, value: r.data }
    : { ok: false, error: r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ") };
}
