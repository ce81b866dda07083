// Cameras from the same YAML a user would `kubectl apply` (CameraDetections, DetectorPools, Secrets), for
// running workers without a cluster. Every document is validated with the API's own zod schemas. A document without
// a namespace is in "default", as kubectl would put it: cameras are `<namespace>/<name>` (camera-id.ts), and a
// camera's Secret is looked up in its own namespace.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import { cameraDetection } from "../operator/api/camera-detection.ts";
import { detectorPool } from "../operator/api/detector-pool.ts";
import type { ModelCredentials } from "./infer/model-source.ts";
import type { CameraConfig } from "./pipeline.ts";
import { cameraId, DEFAULT_NAMESPACE } from "./publish/camera-id.ts";

const secret = z.object({
  apiVersion: z.literal("v1"),
  kind: z.literal("Secret"),
  metadata: z.object({ name: z.string(), namespace: z.string().optional() }),
  stringData: z.record(z.string(), z.string()).optional(),
  data: z.record(z.string(), z.string()).optional(),
});

export type LocalManifests = {
  cameras: CameraConfig[];
  pools: z.infer<typeof detectorPool>[];
  /** Per pool with spec.model.credentialsSecretRef: the Secret's keys, as the pod would get them. */
  modelCredentials?: Map<string, ModelCredentials>;
  /** Every Secret in the file, decoded, by `<namespace>/<name>` (the alarm service's webhook Secrets). */
  secrets?: Map<string, Record<string, string>>;
};

/** A namespaced object's key; objects without a namespace are in "default". */
const keyOf = (namespace: string | undefined, name: string) => `${namespace || DEFAULT_NAMESPACE}/${name}`;

export function loadManifests(file: string): LocalManifests {
  const docs = parseAllDocuments(readFileSync(file, "utf8")).map((d, i) => {
    if (d.errors.length) throw new Error(`${file}: document ${i + 1}: ${d.errors[0]?.message}`);
    return d.toJSON() as { kind?: string } | null;
  });
  const secrets = new Map<string, Record<string, string>>();
  const pools: LocalManifests["pools"] = [];
  const cams: { doc: z.infer<typeof cameraDetection>; id: string; where: string }[] = [];
  docs.forEach((doc, i) => {
    if (!doc) return;
    const where = `${file}: document ${i + 1} (${doc.kind ?? "no kind"})`;
    const schema =
      doc.kind === "Secret"
        ? secret
        : doc.kind === "DetectorPool"
          ? detectorPool
          : doc.kind === "CameraDetection"
            ? cameraDetection
            : undefined;
    if (!schema) throw new Error(`${where}: only CameraDetection, DetectorPool and Secret are understood here`);
    const r = schema.safeParse(doc);
    if (!r.success)
      throw new Error(`${where}: ${r.error.issues.map((x) => `${x.path.join(".")}: ${x.message}`).join("; ")}`);
    if (doc.kind === "Secret") {
      const s = r.data as z.infer<typeof secret>;
      const decoded = Object.fromEntries(
        Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64").toString("utf8")]),
      );
      secrets.set(keyOf(s.metadata.namespace, s.metadata.name), { ...decoded, ...s.stringData });
    } else if (doc.kind === "DetectorPool") pools.push(r.data as z.infer<typeof detectorPool>);
    else {
      const cam = r.data as z.infer<typeof cameraDetection>;
      let id: string;
      try {
        id = cameraId(cam.metadata.namespace, cam.metadata.name);
      } catch (err) {
        throw new Error(`${where}: metadata.${(err as Error).message}`);
      }
      const twin = cams.find((c) => c.id === id);
      if (twin) throw new Error(`${where}: metadata: CameraDetection ${id} is already defined in ${twin.where}`);
      cams.push({ doc: cam, id, where: `document ${i + 1}` });
    }
  });
  const cameras = cams.map(({ doc: c, id }): CameraConfig => {
    const ref = c.spec.source.credentialsSecretRef;
    if (!ref) return { id, spec: c.spec };
    const s = secrets.get(keyOf(c.metadata.namespace, ref.name));
    const username = s?.[ref.usernameKey];
    const password = s?.[ref.passwordKey];
    if (username === undefined || password === undefined)
      throw new Error(
        `${file}: CameraDetection ${id}: Secret ${ref.name} with keys ${ref.usernameKey} and ${ref.passwordKey} is not in its namespace in the file`,
      );
    return { id, spec: c.spec, credentials: { username, password } };
  });
  const modelCredentials = new Map<string, ModelCredentials>();
  for (const p of pools) {
    const ref = p.spec.model.credentialsSecretRef;
    if (!ref) continue;
    const s = secrets.get(keyOf(p.metadata.namespace, ref.name));
    if (!s)
      throw new Error(
        `${file}: DetectorPool ${p.metadata.name}: spec.model.credentialsSecretRef: Secret ${ref.name} is not in the file`,
      );
    modelCredentials.set(p.metadata.name, { token: s.token, username: s.username, password: s.password });
  }
  return { cameras, pools, modelCredentials, secrets };
}
