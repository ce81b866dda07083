// The alarm records: the state of every alarm, and each delivery attempt. The record *is* the state machine's
// state (state.ts): a redelivered message reads which steps are done and resumes at the next one. Two backends
// behind this interface: MySQL/MariaDB (mysql2, records-mysql.ts) in a cluster, node:sqlite (records-sqlite.ts)
// under `vigil up`. Versioned migrations live in alarms/migrations/<dialect>/NNN_name.sql, applied at start.
import type { AlarmMessage, DeliveryType } from "./messages.ts";

export const ALARM_STATUSES = ["open", "delivered", "dead"] as const;
export type AlarmStatus = (typeof ALARM_STATUSES)[number];

export type AlarmRecord = {
  id: string;
  camera_id: string;
  rule: string;
  kind: AlarmMessage["kind"];
  severity: AlarmMessage["severity"];
  track_id: number;
  zone: string | null;
  box: [number, number, number, number] | null;
  detail: string;
  event_ms: number;
  received_ms: number;
  snapshot_key: string | null;
  clip_key: string;
  pre_seconds: number;
  post_seconds: number;
  /** Steps done (null: not yet). `completed_ms` is the final commit; the message is acked after it. */
  raised_delivered_ms: number | null;
  clip_ready_ms: number | null;
  clip_delivered_ms: number | null;
  completed_ms: number | null;
  status: AlarmStatus;
  dead_reason: string | null;
  /** Later events folded into this alarm by dedup. */
  duplicates: number;
  updated_ms: number;
};

export type DeliveryAttempt = {
  id: number;
  alarm_id: string;
  type: DeliveryType;
  webhook_id: string;
  started_ms: number;
  /** Null while in flight; an attempt left unfinished by a crash makes the next send a counted repeat. */
  finished_ms: number | null;
  status_code: number | null;
  latency_ms: number | null;
  error: string | null;
};

export type AdmitResult =
  | { kind: "new"; record: AlarmRecord }
  /** Seen before (a redelivery or the same event published twice): resume from its steps. */
  | { kind: "resumed"; record: AlarmRecord }
  /** Another alarm holds the (camera, rule, track) dedup key within its window. */
  | { kind: "duplicate"; of: string };

export type AlarmStep = "raised_delivered" | "clip_ready" | "clip_delivered" | "completed";

export type AlarmFilter = {
  camera?: string;
  rule?: string;
  severity?: AlarmMessage["severity"];
  /** Event time bounds, ms since epoch: [since, until). */
  since?: number;
  until?: number;
  limit: number;
  /** Opaque, from a previous page's `next`. Newest first. */
  cursor?: string;
};

export interface AlarmRecords {
  /** Applies the migrations not yet applied (idempotent; safe with several replicas starting at once). */
  migrate(): Promise<void>;
  /**
   * One transaction: the alarm row if its id is new, and the dedup decision across every replica (a unique key on
   * (camera, rule, track) with an expiry at event time + window). Idempotent per alarm id.
   */
  admit(m: AlarmMessage, nowMs: number): Promise<AdmitResult>;
  markStep(id: string, step: AlarmStep, atMs: number): Promise<void>;
  markDead(id: string, reason: string, atMs: number): Promise<void>;
  startAttempt(a: { alarm_id: string; type: DeliveryType; webhook_id: string; started_ms: number }): Promise<number>;
  finishAttempt(
    attemptId: number,
    r: { finished_ms: number; status_code: number | null; latency_ms: number; error: string | null },
  ): Promise<void>;
  get(id: string): Promise<AlarmRecord | undefined>;
  attempts(alarmId: string): Promise<DeliveryAttempt[]>;
  list(filter: AlarmFilter): Promise<{ items: AlarmRecord[]; next: string | null }>;
  /**
   * Records changed after `sinceMs` (updated_ms), oldest first: the gateway's live alarm feed polls this. Every
   * change moves a record's updated_ms forward (by at least 1 ms), so a later change is always a later updated_ms.
   */
  changedSince(sinceMs: number, limit: number): Promise<AlarmRecord[]>;
  /** A webhook endpoint that answered 410 Gone, by a key of (Secret, url); cleared when the url changes. */
  disableEndpoint(key: string, reason: string, atMs: number): Promise<void>;
  endpointDisabled(key: string): Promise<string | undefined>;
  /**
   * Takes (or renews) the alarm for `owner` until nowMs + leaseMs, when nobody holds it or the holder's lease has
   * run out: two replicas that each got a copy of the same alarm (published twice) do not both deliver it. False
   * when another owner holds a live lease. Optional: added by the records backends (records-sql.ts).
   */
  claim?(id: string, owner: string, nowMs: number, leaseMs: number): Promise<boolean>;
  /** Gives the claim up (only the owner's). */
  release?(id: string, owner: string): Promise<void>;
  close(): Promise<void>;
}
