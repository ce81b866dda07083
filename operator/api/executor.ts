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
