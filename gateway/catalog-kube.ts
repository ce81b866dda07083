// The camera catalog from the Kubernetes API: list+watch caches (operator/kube/informer.ts: watchdog, relist on
// 410 and on errors with backoff) over CameraDetections and DetectorPools, in one namespace or all of them.
// Camera ids are `<namespace>/<name>`, so two namespaces' cameras of the same name are two cameras.
import type { KubeConfig, KubernetesObject } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { cameraDetectionSpec } from "../operator/api/camera-detection.ts";
import { detectorPoolSpec } from "../operator/api/detector-pool.ts";
import { GROUP, VERSION } from "../operator/api/meta.ts";
import { cameraDetections, collectionPath, detectorPools, type ResourceDef } from "../operator/api/resources.ts";
import { makeClients } from "../operator/kube/client.ts";
import { Informer, type ListResult, objectKey } from "../operator/kube/informer.ts";
import type { CameraCatalog, CameraSummary, PoolSummary } from "./feed.ts";
import { cameraSummary, indexCameras, poolSummary } from "./summaries.ts";

type Obj = KubernetesObject & { spec?: unknown; status?: Record<string, unknown> };

export type KubeCatalogOptions = {
  /** Only this namespace; all namespaces when unset (needs cluster-wide list/watch). */
  namespace?: string;
  relistMs?: number;
  log?: Logger;
};

export type KubeCatalog = CameraCatalog & {
  /** Resolves once both caches have listed. */
  synced(): Promise<void>;
};

export function createKubeCatalog(kc: KubeConfig, opts: KubeCatalogOptions = {}): KubeCatalog {
  const clients = makeClients(kc);
  const ns = opts.namespace;
  const informer = (def: ResourceDef) =>
    new Informer<Obj>(kc, {
      path: collectionPath(def, ns),
      ...(opts.relistMs ? { relistMs: opts.relistMs } : {}),
      ...(opts.log ? { log: opts.log } : {}),
      list: async () =>
        (ns
          ? await clients.custom.listNamespacedCustomObject({
              group: GROUP,
              version: VERSION,
              namespace: ns,
              plural: def.plural,
            })
          : await clients.custom.listClusterCustomObject({
              group: GROUP,
              version: VERSION,
              plural: def.plural,
            })) as ListResult<Obj>,
    });
  const cams = informer(cameraDetections);
  const pools = informer(detectorPools);

  // Each object is parsed once per change (a status update included); the id index and the pool list are rebuilt
  // lazily after changes, so a burst of watch events costs one rebuild, and a rebuild is a sort.
  const cameraSummaries = new Map<string, CameraSummary>();
  const poolSummaries = new Map<string, PoolSummary>();
  let cameraIndex: Map<string, CameraSummary> | undefined;
  let cameraList: CameraSummary[] = [];
  let poolList: PoolSummary[] | undefined;
  const invalid = (kind: string, o: Obj, why: string) =>
    opts.log?.warn({ kind, object: `${o.metadata?.namespace}/${o.metadata?.name}`, why }, "skipped: does not parse");

  cams.on({
    add: (o) => upsertCamera(o),
    update: (o) => upsertCamera(o),
    delete: (o) => {
      cameraSummaries.delete(objectKey(o));
      cameraIndex = undefined;
    },
  });
  pools.on({
    add: (o) => upsertPool(o),
    update: (o) => upsertPool(o),
    delete: (o) => {
      poolSummaries.delete(objectKey(o));
      poolList = undefined;
    },
  });

  function upsertCamera(o: Obj): void {
    const key = objectKey(o);
    cameraIndex = undefined;
    const spec = cameraDetectionSpec.safeParse(o.spec);
    if (!spec.success) {
      cameraSummaries.delete(key);
      return void invalid("CameraDetection", o, spec.error.message);
    }
    cameraSummaries.set(
      key,
      cameraSummary(o.metadata?.name ?? "", o.metadata?.namespace ?? "", spec.data, o.status ?? {}),
    );
  }

  function upsertPool(o: Obj): void {
    const key = objectKey(o);
    poolList = undefined;
    const spec = detectorPoolSpec.safeParse(o.spec);
    if (!spec.success) {
      poolSummaries.delete(key);
      return void invalid("DetectorPool", o, spec.error.message);
    }
    poolSummaries.set(key, poolSummary(o.metadata?.name ?? "", o.metadata?.namespace ?? "", spec.data, o.status ?? {}));
  }

  const index = () => {
    if (cameraIndex) return cameraIndex;
    cameraIndex = indexCameras([...cameraSummaries.values()]);
    cameraList = [...cameraIndex.values()];
    return cameraIndex;
  };

  cams.start();
  pools.start();

  return {
    cameras: () => {
      index();
      return cameraList;
    },
    camera: (id) => index().get(id),
    pools: () => {
      poolList ??= [...poolSummaries.values()].sort(
        (a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name),
      );
      return poolList;
    },
    ready: () => cams.hasSynced() && pools.hasSynced(),
    synced: async () => {
      await Promise.all([cams.waitForSync(), pools.waitForSync()]);
    },
    close: async () => {
      cams.stop();
      pools.stop();
    },
  };
}
