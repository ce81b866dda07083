// A fixed camera catalog: from the same manifests `vigil worker --cameras` runs (single-host mode), or from
// summaries built in code (benchmarks, tests). Always ready; statuses stay empty (there is no operator).
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { loadManifests } from "../worker/manifests.ts";
import type { CameraCatalog, CameraSummary, PoolSummary } from "./feed.ts";
import { cameraSummary, indexCameras, poolSummary } from "./summaries.ts";

export function memoryCatalog(cameras: CameraSummary[], pools: PoolSummary[] = []): CameraCatalog {
  const byId = indexCameras(cameras);
  const list = [...byId.values()];
  return {
    cameras: () => list,
    camera: (id) => byId.get(id),
    pools: () => pools,
    ready: () => true,
    close: async () => undefined,
  };
}

/** CameraDetections and DetectorPools from a manifest file (validated by loadManifests; credentials never shown). */
export function createStaticCatalog(file: string): CameraCatalog {
  const m = loadManifests(file);
  // loadManifests keeps names only; namespaces come from the documents themselves ("default" when unset).
  const namespaces = new Map<string, string>();
  for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
    const d = doc.toJSON() as { kind?: string; metadata?: { name?: string; namespace?: string } } | null;
    if (d?.kind === "CameraDetection" && d.metadata?.name && !namespaces.has(d.metadata.name))
      namespaces.set(d.metadata.name, d.metadata.namespace ?? "default");
  }
  return memoryCatalog(
    m.cameras.map((c) => cameraSummary(c.id, namespaces.get(c.id) ?? "default", c.spec)),
    m.pools.map((p) => poolSummary(p.metadata.name, p.metadata.namespace ?? "default", p.spec)),
  );
}
