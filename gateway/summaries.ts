// CameraDetection and DetectorPool objects (from the API or from manifests) as the gateway lists them.
import type { CameraDetectionSpec } from "../operator/api/camera-detection.ts";
import type { DetectorPoolSpec } from "../operator/api/detector-pool.ts";
import { redact } from "../worker/ingest/source-url.ts";
import { cameraId } from "../worker/publish/camera-id.ts";
import type { CameraSummary, PoolSummary } from "./feed.ts";

const RULE_KINDS = ["presence", "dwell", "count", "ppeMissing", "sequence"] as const;

/**
 * A source URL safe to show: user:password@ masked (the CRD forbids it, manifests may not) and every query value
 * masked too, since cameras often take credentials or tokens there (?user=…&pwd=…).
 */
export function redactSource(url: string): string {
  const masked = redact(url);
  const q = masked.indexOf("?");
  if (q < 0) return masked;
  const query = masked
    .slice(q + 1)
    .split("&")
    .map((kv) => {
      const eq = kv.indexOf("=");
      return eq < 0 ? kv : `${kv.slice(0, eq)}=***`;
    })
    .join("&");
  return `${masked.slice(0, q)}?${query}`;
}

export function cameraSummary(
  name: string,
  namespace: string,
  spec: CameraDetectionSpec,
  status: Record<string, unknown> = {},
): CameraSummary {
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  const num = (v: unknown) => (typeof v === "number" ? v : undefined);
  const s: CameraSummary["status"] = {};
  const phase = str(status.phase);
  const worker = str(status.worker);
  const fps = num(status.fps);
  const lastFrameTime = str(status.lastFrameTime);
  if (phase !== undefined) s.phase = phase;
  if (worker !== undefined) s.worker = worker;
  if (fps !== undefined) s.fps = fps;
  if (lastFrameTime !== undefined) s.lastFrameTime = lastFrameTime;
  if (Array.isArray(status.conditions)) s.conditions = status.conditions;
  return {
    id: cameraId(namespace, name),
    name,
    namespace,
    pool: spec.poolRef.name,
    source: redactSource(spec.source.url),
    targetFps: spec.detection.targetFps,
    zones: spec.zones.map((z) => ({ name: z.name, polygon: z.polygon })),
    rules: spec.rules.map((r) => ({
      name: r.name,
      kind: RULE_KINDS.find((k) => r[k] !== undefined) ?? "unknown",
      severity: r.severity,
    })),
    paused: spec.paused,
    status: s,
  };
}

export function poolSummary(
  name: string,
  namespace: string,
  spec: DetectorPoolSpec,
  status: Record<string, unknown> = {},
): PoolSummary {
  return {
    name,
    namespace,
    model: {
      uri: redactSource(spec.model.uri),
      format: spec.model.format,
      inputSize: spec.model.inputSize,
      inputWidth: spec.model.inputWidth,
      inputHeight: spec.model.inputHeight,
    },
    camerasPerWorker: spec.camerasPerWorker,
    minWorkers: spec.minWorkers,
    maxWorkers: spec.maxWorkers,
    status,
  };
}

/** Cameras by id, in the order they are listed: by namespace, then name. */
export function indexCameras(all: CameraSummary[]): Map<string, CameraSummary> {
  const sorted = [...all].sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  return new Map(sorted.map((c) => [c.id, c]));
}
