// What the gateway consumes, whatever carries it: Redis (a cluster, or single-host with REDIS_URL) or the
// embedded IPC bus of single-host mode. Messages arrive already validated against worker/publish/messages.ts.
import type { EventMessage, StatsMessage } from "../worker/publish/messages.ts";

export type FeedHandlers = {
  stats?: (m: StatsMessage) => void;
  event?: (m: EventMessage) => void;
  /** An annotated JPEG frame of a camera's live view. */
  frame?: (cameraId: string, jpeg: Buffer) => void;
};

export interface BusFeed {
  /** Registers handlers; several consumers may register. */
  on(handlers: FeedHandlers): void;
  /**
   * Tells the producers someone watches (or stopped watching) a camera's video, so workers encode frames only
   * while needed. With Redis this is the subscription itself; the IPC bus forwards it to the workers.
   */
  watch(cameraId: string, watching: boolean): void;
  /** Connected and receiving (for /readyz). */
  ready(): boolean;
  close(): Promise<void>;
}

/** A camera as the gateway lists it: spec summary and status, from the Kubernetes API or local manifests. */
export type CameraSummary = {
  /** `<namespace>/<name>` (worker/publish/camera-id.ts), as on the bus. */
  id: string;
  name: string;
  namespace: string;
  pool: string;
  source: string; // redacted: never credentials
  targetFps: number;
  zones: { name: string; polygon: number[][] }[];
  rules: { name: string; kind: string; severity: string }[];
  paused: boolean;
  status: { phase?: string; worker?: string; fps?: number; lastFrameTime?: string; conditions?: unknown[] };
};

export type PoolSummary = {
  name: string;
  namespace: string;
  /** format and the input size as the pool gives them; absent when the worker reads them from the model. */
  model: {
    uri: string;
    format?: string | undefined;
    inputSize?: number | undefined;
    inputWidth?: number | undefined;
    inputHeight?: number | undefined;
  };
  camerasPerWorker: number;
  minWorkers: number;
  maxWorkers: number;
  status: Record<string, unknown>;
};

export interface CameraCatalog {
  cameras(): CameraSummary[];
  camera(id: string): CameraSummary | undefined;
  pools(): PoolSummary[];
  ready(): boolean;
  close(): Promise<void>;
}
