// A fixed camera catalog: from the same manifests `vigil worker --cameras` runs (single-host mode), or from
// summaries built in code (benchmarks, tests). Always ready; statuses stay empty (there is no operator).
import { loadManifests } from "../worker/manifests.ts";
import { parseCameraId } from "../worker/publish/camera-id.ts";
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
  return memoryCatalog(
    m.cameras.map((c) => {
      const { namespace, name } = parseCameraId(c.id);
      return cameraSummary(name, namespace, c.spec);
    }),
    m.pools.map((p) => poolSummary(p.metadata.name, p.metadata.namespace ?? "default", p.spec)),
  );
}
