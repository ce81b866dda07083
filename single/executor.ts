// Where workers run. In a cluster the operator is the executor (a StatefulSet per DetectorPool, cameras labelled
// onto its pods); on a single host `vigil up` runs them as supervised local processes (local-executor.ts).
import type { SupervisedState } from "./supervisor.ts";

export type WorkerInfo = {
  /** Like a StatefulSet pod: `<pool>-<ordinal>`. */
  name: string;
  pool: string;
  cameras: string[];
  /** While the process is up. */
  pid: number | undefined;
  /** Times it was started again after exiting. */
  restarts: number;
  /** starting (forked, no stats yet), running, backoff (exited, restart pending), stopped. */
  state: SupervisedState;
  lastExit?: { code: number | null; signal: string | null; at: string } | undefined;
};

export interface Executor {
  start(): Promise<void>;
  stop(): Promise<void>;
  workers(): WorkerInfo[];
}
