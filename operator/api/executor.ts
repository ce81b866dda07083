// Where workers run, behind one interface. In a cluster the operator is the executor (a StatefulSet per
// DetectorPool, cameras labelled onto its pods: operator/executor.ts); on a single host `vigil up` runs them as
// supervised local processes (single/local-executor.ts). Both import this contract; neither imports the other.

/** starting (no stats or readiness yet), running, backoff (exited or unready, restart pending), stopped. */
export type WorkerState = "starting" | "running" | "backoff" | "stopped";

export type WorkerInfo = {
  /** Like a StatefulSet pod: `<pool>-<ordinal>`. */
  name: string;
  pool: string;
  cameras: string[];
  /** The local process id while it is up; pods have none to give. */
  pid?: number | undefined;
  /** Times it was started again after exiting (a pod's container restartCount). */
  restarts: number;
  state: WorkerState;
  lastExit?: { code: number | null; signal: string | null; at: string } | undefined;
};

export interface Executor {
  start(): Promise<void>;
  stop(): Promise<void>;
  workers(): WorkerInfo[];
}

/**
 * What a camera control did: done (also when it already was so), no such camera, or refused by what stands behind
 * the gateway (the Kubernetes API answered 403, 409 or 5xx, or could not be reached), with the cause.
 */
export type CameraControlResult = "done" | "not-found" | { refused: string };

/**
 * The intent half of the scheduler (the gateway's POST /cameras/{id}/start and /stop): the caller says what it wants
 * and the executor decides how. In a cluster the gateway sets the camera's spec.paused and the operator does the
 * rest (gateway/control-kube.ts); under `vigil up` the local executor stops or starts that camera's pipeline in its
 * worker (single/local-executor.ts). Idempotent: pausing a paused camera is done, not an error.
 */
export interface CameraControl {
  /** `actor` says who asked (an API token's name, never the token), for the record. */
  setPaused(cameraId: string, paused: boolean, actor: string): Promise<CameraControlResult>;
}
