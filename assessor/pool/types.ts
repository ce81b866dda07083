// The key pool as the assessor's scheduler sees it: one `assess` per task, which picks keys, waits for quota, calls
// the model, retries on other keys and settles the shared key state. The scheduler decides which task goes next
// (fairness, deadlines, acks); the pool decides which key carries it and when.
import type {
  AssessmentKeyStatus,
  AssessmentKeys,
  AssessmentPoolSpec,
  AssessmentPoolStatus,
} from "../../operator/api/assessment-pool.ts";
import type { AssessmentTask, ModelAnswer } from "../messages.ts";

/** A pool as `vigil assessor` runs it: the AssessmentPool's spec and its Secret's keys (parsed, never logged). */
export type PoolConfig = {
  namespace: string;
  name: string;
  /** metadata.generation, for status.observedGeneration. */
  generation?: number;
  spec: AssessmentPoolSpec;
  keys: AssessmentKeys;
};

export type AssessUsage = { prompt_tokens: number; completion_tokens: number; total_tokens: number };

export type AssessOutcome =
  | {
      kind: "ok";
      answer: ModelAnswer;
      usage: AssessUsage;
      model: string;
      fingerprint: string;
      scope: string;
      /** Calls made (1 when the first answered). */
      attempts: number;
    }
  /** Give up: to the DLQ with this reason (a 400, output invalid after the repair retry, maxAttempts spent). */
  | { kind: "dead"; reason: string; attempts: number }
  /** The deadline passed before any key could take it (or while it retried): dropped and counted, never sent again. */
  | { kind: "stale"; reason: string; attempts: number }
  /** A periodic sample refused because every scope it could use is over its daily token budget. */
  | { kind: "budget"; reason: string }
  /** The signal aborted it (shutdown): leave the message unacked so the broker gives it to another replica. */
  | { kind: "aborted" };

export interface KeyPool {
  /** Runs one task to an outcome; never throws (an unexpected error is `dead` with its message, keys scrubbed). */
  assess(task: AssessmentTask, signal?: AbortSignal): Promise<AssessOutcome>;
  /** A new spec or Secret: keys that stay keep their state (cooldowns, counters). */
  update(config: PoolConfig): void;
  /** Keys and scopes by fingerprint, for status and metrics (AssessmentPoolStatus's `keys` and `scopes`). */
  status(): Promise<{
    keys: AssessmentKeyStatus[];
    scopes: AssessmentPoolStatus["scopes"];
  }>;
  close(): Promise<void>;
}
