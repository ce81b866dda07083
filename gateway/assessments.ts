// Where the gateway reads assessment results (`vigil assessor`'s answers): recent ones per camera and over all
// cameras, each camera's latest, and new ones as they are published. The assessor writes them to Redis
// (assessor/messages.ts ASSESSMENT_REDIS; assessments-redis.ts reads them). Under `vigil up` without Redis there
// is no assessor: `noAssessments` answers empty lists, and the routes answer them rather than an error.
import type { AssessmentResult } from "../assessor/messages.ts";

export type AssessmentQuery = {
  /** One camera's list; all cameras' when unset. */
  camera?: string | undefined;
  limit: number;
  /** Only results with risk ≥ this. */
  minRisk?: number | undefined;
  /** Results the caller may see (the cameras its catalog serves). */
  keep?: (r: AssessmentResult) => boolean;
};

export interface AssessmentSource {
  /** Recent results, newest first (by completion), at most `limit`. Rejects when the store is unreachable. */
  recent(q: AssessmentQuery): Promise<AssessmentResult[]>;
  /** The camera's latest result, or null before its first. */
  latest(cameraId: string): Promise<AssessmentResult | null>;
  /** New results as they are published, each once; returns the unsubscribe function. */
  onResult(fn: (r: AssessmentResult) => void): () => void;
  /** Connected and receiving (false for none at all). */
  ready(): boolean;
  close(): Promise<void>;
}

/** No assessor behind this gateway: every list is empty, and nothing is ever pushed. */
export function noAssessments(): AssessmentSource {
  return {
    recent: async () => [],
    latest: async () => null,
    onResult: () => () => {},
    ready: () => false,
    close: async () => {},
  };
}

/** Whether a result passes a query's filters (pure). */
export function matches(r: AssessmentResult, q: Omit<AssessmentQuery, "limit">): boolean {
  return (
    (q.camera === undefined || r.camera_id === q.camera) &&
    (q.minRisk === undefined || r.risk >= q.minRisk) &&
    (q.keep === undefined || q.keep(r))
  );
}
