// Cameras from the same YAML a user would `kubectl apply` (CameraDetections, DetectorPools, Secrets), for
// running workers without a cluster. Every document is validated with the API's own zod schemas.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { z } from "zod";
import { cameraDetection } from "../operator/api/camera-detection.ts";
import { detectorPool } from "../operator/api/detector-pool.ts";
import type { ModelCredentials } from "./infer/model-source.ts";
import type { CameraConfig } from "./pipeline.ts";

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
};

export function loadManifests(file: string): LocalManifests {
  const docs = parseAllDocuments(readFileSync(file, "utf8")).map((d, i) => {
    if (d.errors.length) throw new Error(`${file}: document ${i + 1}: ${d.errors[0]?.message}`);
    return d.toJSON() as { kind?: string } | null;
  });
  const secrets = new Map<string, Record<string, string>>();
  const pools: LocalManifests["pools"] = [];
  const cams: z.infer<typeof cameraDetection>[] = [];
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
      secrets.set(s.metadata.name, { ...decoded, ...s.stringData });
    } else if (doc.kind === "DetectorPool") pools.push(r.data as z.infer<typeof detectorPool>);
    else cams.push(r.data as z.infer<typeof cameraDetection>);
  });
  const cameras = cams.map((c): CameraConfig => {
    const ref = c.spec.source.credentialsSecretRef;
    if (!ref) return { id: c.metadata.name, spec: c.spec };
    const s = secrets.get(ref.name);
    const username = s?.[ref.usernameKey];
    const password = s?.[ref.passwordKey];
    if (username === undefined || password === undefined)
      throw new Error(
        `${file}: CameraDetection ${c.metadata.name}: Secret ${ref.name} with keys ${ref.usernameKey} and ${ref.passwordKey} is not in the file`,
      );
    return { id: c.metadata.name, spec: c.spec, credentials: { username, password } };
  });
  const modelCredentials = new Map<string, ModelCredentials>();
  for (const p of pools) {
    const ref = p.spec.model.credentialsSecretRef;
    if (!ref) continue;
    const s = secrets.get(ref.name);
    if (!s)
      throw new Error(
        `${file}: DetectorPool ${p.metadata.name}: spec.model.credentialsSecretRef: Secret ${ref.name} is not in the file`,
      );
    modelCredentials.set(p.metadata.name, { token: s.token, username: s.username, password: s.password });
  }
  return { cameras, pools, modelCredentials };
}
