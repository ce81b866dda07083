// The gateway's CameraCatalog on a single host: cameras and pools from the manifests `vigil up` loaded, with a
// status built like the operator's (phase, worker, fps, last frame, Conditions) from the local workers and the
// stats they stream.
import type { BusFeed, CameraCatalog, CameraSummary, PoolSummary } from "../gateway/feed.ts";
import { cameraSummary, poolSummary } from "../gateway/summaries.ts";
import type { WorkerInfo } from "../operator/api/executor.ts";
import type { Condition } from "../operator/api/meta.ts";
import type { LocalManifests } from "../worker/manifests.ts";
import { parseCameraId } from "../worker/publish/camera-id.ts";
import type { StatsMessage } from "../worker/publish/messages.ts";
import type { Placement } from "./local-executor.ts";

export type LocalCatalogOptions = {
  manifests: LocalManifests;
  feed: BusFeed;
  placements: () => Map<string, Placement>;
  workers: () => WorkerInfo[];
  /** Stats older than this mean the camera's worker stopped reporting. */
  staleMs?: number;
  now?: () => number;
};

type Transition = { status: Condition["status"]; reason: string; since: string };

export function createLocalCatalog(opts: LocalCatalogOptions): CameraCatalog {
  const now = opts.now ?? Date.now;
  const staleMs = opts.staleMs ?? 5000;
  const latest = new Map<string, { m: StatsMessage; at: number }>();
  const transitions = new Map<string, Transition>();
  let closed = false;
  opts.feed.on({
    stats: (m) => {
      if (!closed) latest.set(m.camera_id, { m, at: now() });
    },
  });

  // metav1.Condition keeps the time of the last status change, not of the last look.
  const condition = (camera: string, type: string, status: Condition["status"], reason: string, message: string) => {
    const key = `${camera}\u0000${type}`;
    let t = transitions.get(key);
    if (!t || t.status !== status) {
      t = { status, reason, since: new Date(now()).toISOString() };
      transitions.set(key, t);
    }
    return { type, status, lastTransitionTime: t.since, reason, message } satisfies Condition;
  };

  function summary(id: string): CameraSummary | undefined {
    const cam = opts.manifests.cameras.find((c) => c.id === id);
    if (!cam) return undefined;
    const placement = opts.placements().get(id);
    const worker = placement?.worker ? opts.workers().find((w) => w.name === placement.worker) : undefined;
    // Stats from before the camera was last started (through the API) are of its previous run.
    const received = latest.get(id);
    const stats = received && received.at >= (placement?.since ?? 0) ? received : undefined;
    const fresh = stats && now() - stats.at <= staleMs ? stats.m : undefined;
    const conditions: Condition[] = [];
    let phase: string;
    if (placement?.reason !== "Assigned") {
      const reason = placement?.reason ?? "PoolNotFound";
      const message = placement?.message ?? "not placed";
      phase = reason === "Paused" ? "Paused" : "Unschedulable";
      conditions.push(condition(id, "Scheduled", "False", reason, message));
      conditions.push(condition(id, "Ready", "False", reason, message));
    } else {
      conditions.push(condition(id, "Scheduled", "True", "Assigned", placement.message));
      if (fresh) {
        const healthy = fresh.data.stream === "streaming";
        const message = healthy ? "frames are arriving" : (fresh.data.error ?? `stream is ${fresh.data.stream}`);
        conditions.push(
          condition(id, "StreamHealthy", healthy ? "True" : "False", healthy ? "Streaming" : "StreamDown", message),
        );
        conditions.push(
          condition(id, "Ready", healthy ? "True" : "False", healthy ? "Running" : "StreamNotHealthy", message),
        );
        phase = healthy ? "Running" : "Degraded";
      } else if (stats) {
        const message = `worker ${placement.worker} stopped reporting (${worker?.state ?? "gone"})`;
        conditions.push(condition(id, "StreamHealthy", "Unknown", "WorkerNotReporting", message));
        conditions.push(condition(id, "Ready", "False", "WorkerNotReporting", message));
        phase = "Degraded";
      } else {
        conditions.push(condition(id, "Ready", "False", "AwaitingWorker", "no frames reported yet"));
        phase = "Scheduled";
      }
    }
    const m = stats?.m;
    const lastFrameTime =
      m && m.data.last_frame_age_ms !== null
        ? new Date(Date.parse(m.timestamp) - m.data.last_frame_age_ms).toISOString()
        : undefined;
    const { namespace, name } = parseCameraId(id);
    // Stopped through the API reads as spec.paused does in a cluster, where the gateway sets it.
    const spec = { ...cam.spec, paused: placement?.reason === "Paused" };
    return cameraSummary(name, namespace, spec, {
      phase,
      worker: placement?.worker,
      fps: fresh?.data.fps,
      lastFrameTime,
      conditions,
    });
  }

  function pools(): PoolSummary[] {
    const placements = opts.placements();
    const workers = opts.workers();
    return opts.manifests.pools.map((p) => {
      const name = p.metadata.name;
      const mine = workers.filter((w) => w.pool === name);
      const placed = [...placements.values()].filter((x) => x.pool === name);
      return poolSummary(name, p.metadata.namespace ?? "default", p.spec, {
        replicas: mine.length,
        readyWorkers: mine.filter((w) => w.state === "running").length,
        capacity: p.spec.maxWorkers * p.spec.camerasPerWorker,
        assignedCameras: placed.filter((x) => x.reason === "Assigned").length,
        unassignedCameras: placed.filter((x) => x.reason === "PoolFull").length,
        workers: mine.map((w) => ({
          name: w.name,
          phase: w.state === "running" ? "Ready" : w.state === "starting" ? "Starting" : "Unready",
          cameras: w.cameras.length,
          pid: w.pid,
          restarts: w.restarts,
          ...(w.lastExit ? { lastExit: w.lastExit } : {}),
        })),
      });
    });
  }

  return {
    cameras: () => opts.manifests.cameras.map((c) => summary(c.id)).filter((c) => c !== undefined),
    camera: summary,
    pools,
    ready: () => !closed,
    async close() {
      closed = true;
    },
  };
}
