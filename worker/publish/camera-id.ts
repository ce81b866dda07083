// A camera's id wherever Vigil names one: bus messages (`camera_id`), Redis channels and hash fields, event ids,
// metric labels, the gateway's routes and catalogs, single-host mode. It is `<namespace>/<name>` of the
// CameraDetection, the key form Kubernetes itself prints (kubectl, controller-runtime's NamespacedName), so two
// namespaces that each have an `entrance` never share one identity. In a URL path it is one segment, encoded:
// `/api/v1/cameras/shop%2Fentrance` (Fastify's router decodes %2F inside a parameter and never splits on it).
// Unambiguous because a namespace is a DNS-1123 label (no '/', no '.') and a name a DNS-1123 subdomain (no '/').
import { z } from "zod";

/** The namespace of a manifest that names none, as kubectl applies it. */
export const DEFAULT_NAMESPACE = "default";

export type CameraRef = { namespace: string; name: string };

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function namespaceProblem(namespace: string): string | undefined {
  if (namespace.length <= 63 && LABEL.test(namespace)) return undefined;
  return `namespace ${JSON.stringify(namespace)}: must be a DNS-1123 label (at most 63 lower-case letters, digits and '-')`;
}

function nameProblem(name: string): string | undefined {
  if (name.length <= 253 && SUBDOMAIN.test(name)) return undefined;
  return `name ${JSON.stringify(name)}: must be a DNS-1123 subdomain (at most 253 characters: lower-case letters, digits, '-' and '.')`;
}

/** Why a string is not a camera id, or undefined when it is one. */
export function cameraIdProblem(id: string): string | undefined {
  const slash = id.indexOf("/");
  if (slash < 0 || id.indexOf("/", slash + 1) >= 0)
    return `camera id ${JSON.stringify(id)}: must be <namespace>/<name>, e.g. default/${id.replaceAll("/", "") || "entrance"}`;
  return namespaceProblem(id.slice(0, slash)) ?? nameProblem(id.slice(slash + 1));
}

/** The id of the CameraDetection `name` in `namespace` (none or empty: "default"). Throws on a malformed part. */
export function cameraId(namespace: string | undefined, name: string): string {
  const ns = namespace || DEFAULT_NAMESPACE;
  const problem = namespaceProblem(ns) ?? nameProblem(name);
  if (problem) throw new Error(problem);
  return `${ns}/${name}`;
}

/** A camera id's namespace and name. Throws, saying what is wrong, on anything else. */
export function parseCameraId(id: string): CameraRef {
  const problem = cameraIdProblem(id);
  if (problem) throw new Error(problem);
  const slash = id.indexOf("/");
  return { namespace: id.slice(0, slash), name: id.slice(slash + 1) };
}

/** A camera id, validated (bus messages, route parameters, query parameters). */
export const cameraIdSchema = z
  .string()
  .superRefine((id, ctx) => {
    const problem = cameraIdProblem(id);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .describe("Camera id: <namespace>/<name> of the CameraDetection (URL-encoded in paths: default%2Fentrance).");
