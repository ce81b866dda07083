// The pure parts of the alarm records, shared by both backends (records-sql.ts over MySQL or node:sqlite): the
// dedup decision, the list cursor, and the mapping between a message, a row and an AlarmRecord. No I/O here.
import { z } from "zod";
import type { AlarmMessage } from "./messages.ts";
import type { AlarmRecord, AlarmStatus } from "./records.ts";

/** A records call that failed. `retryable`: the database is unreachable or busy, the same call may succeed later. */
export class RecordsError extends Error {
  readonly retryable: boolean;
  constructor(message: string, retryable: boolean, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "RecordsError";
    this.retryable = retryable;
  }
}

/** A list filter that cannot be served: a cursor no page handed out, a limit out of range (the gateway answers 400). */
export class BadFilterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BadFilterError";
  }
}

/** Longest alarm id the tables hold (mysql/001_init.sql explains the size). */
export const MAX_ALARM_ID = 400;

/** Who holds a dedup key, and until when (the holder's event time + its window). */
export type DedupHold = { alarm_id: string; event_ms: number; expires_ms: number };

export type DedupVerdict =
  /** Within the holder's window: fold into it. */
  | { kind: "duplicate"; of: string }
  /** A new alarm that takes the key (none held, or its window reaches further than the holder's). */
  | { kind: "take" }
  /** A new alarm, but the key stays with the holder: an older event, outside the holder's window, arriving late. */
  | { kind: "keep" };

/**
 * The same (camera, rule, track) within the window is one alarm. Decided at *event* time, not arrival time, so a
 * redelivery hours later gets the same answer. An event older than the holder is its duplicate when the holder
 * falls inside the older event's own window (it would have been the holder, had it arrived first).
 */
export function dedupVerdict(
  hold: DedupHold | undefined,
  a: { id: string; eventMs: number; windowMs: number },
): DedupVerdict {
  if (!hold || hold.alarm_id === a.id) return { kind: "take" };
  if (a.eventMs >= hold.event_ms ? a.eventMs < hold.expires_ms : hold.event_ms < a.eventMs + a.windowMs)
    return { kind: "duplicate", of: hold.alarm_id };
  return a.eventMs + a.windowMs >= hold.expires_ms ? { kind: "take" } : { kind: "keep" };
}

const cursorShape = z.tuple([z.int(), z.string().min(1).max(MAX_ALARM_ID)]);

/** The position after the last item of a page: newest first by (event_ms, id). */
export function encodeCursor(r: Pick<AlarmRecord, "event_ms" | "id">): string {
  return Buffer.from(JSON.stringify([r.event_ms, r.id])).toString("base64url");
}

export function decodeCursor(cursor: string): { event_ms: number; id: string } {
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw new BadFilterError("cursor: not one a previous page returned (not base64url JSON)");
  }
  const r = cursorShape.safeParse(json);
  if (!r.success) throw new BadFilterError("cursor: not one a previous page returned");
  return { event_ms: r.data[0], id: r.data[1] };
}

/** The event time of a message, ms since epoch. */
export function eventMsOf(m: Pick<AlarmMessage, "timestamp">): number {
  const ms = Date.parse(m.timestamp);
  if (!Number.isFinite(ms)) throw new RecordsError(`alarm timestamp ${JSON.stringify(m.timestamp)}: not a time`, false);
  return ms;
}

/** The row a new alarm starts as (status open, no steps done). */
export function recordOf(m: AlarmMessage, nowMs: number): AlarmRecord {
  if (m.id.length > MAX_ALARM_ID)
    throw new RecordsError(`alarm id: ${m.id.length} characters, the records hold at most ${MAX_ALARM_ID}`, false);
  return {
    id: m.id,
    camera_id: m.camera_id,
    rule: m.rule,
    kind: m.kind,
    severity: m.severity,
    track_id: m.track_id,
    zone: m.zone,
    box: m.box,
    detail: m.detail,
    event_ms: eventMsOf(m),
    received_ms: nowMs,
    snapshot_key: m.snapshot_key,
    clip_key: m.clip.key,
    pre_seconds: m.clip.pre_seconds,
    post_seconds: m.clip.post_seconds,
    raised_delivered_ms: null,
    clip_ready_ms: null,
    clip_delivered_ms: null,
    completed_ms: null,
    status: "open",
    dead_reason: null,
    duplicates: 0,
    updated_ms: nowMs,
  };
}

/** The columns of `alarms` an AlarmRecord maps to, in insert order. */
export const RECORD_COLUMNS = [
  "id",
  "camera_id",
  "rule",
  "kind",
  "severity",
  "track_id",
  "zone",
  "box",
  "detail",
  "event_ms",
  "received_ms",
  "snapshot_key",
  "clip_key",
  "pre_seconds",
  "post_seconds",
  "raised_delivered_ms",
  "clip_ready_ms",
  "clip_delivered_ms",
  "completed_ms",
  "status",
  "dead_reason",
  "duplicates",
  "updated_ms",
] as const satisfies readonly (keyof AlarmRecord)[];

/** Values for RECORD_COLUMNS (the box as JSON text). */
export function rowValues(r: AlarmRecord): (string | number | null)[] {
  return RECORD_COLUMNS.map((c) => (c === "box" ? (r.box ? JSON.stringify(r.box) : null) : r[c]));
}

const num = (v: unknown): number => (typeof v === "bigint" ? Number(v) : Number(v));
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

/** An `alarms` row (either driver's value types) as an AlarmRecord. */
export function recordFromRow(row: Record<string, unknown>): AlarmRecord {
  const box = strOrNull(row.box);
  return {
    id: String(row.id),
    camera_id: String(row.camera_id),
    rule: String(row.rule),
    kind: String(row.kind) as AlarmRecord["kind"],
    severity: String(row.severity) as AlarmRecord["severity"],
    track_id: num(row.track_id),
    zone: strOrNull(row.zone),
    box: box ? (JSON.parse(box) as AlarmRecord["box"]) : null,
    detail: String(row.detail),
    event_ms: num(row.event_ms),
    received_ms: num(row.received_ms),
    snapshot_key: strOrNull(row.snapshot_key),
    clip_key: String(row.clip_key),
    pre_seconds: num(row.pre_seconds),
    post_seconds: num(row.post_seconds),
    raised_delivered_ms: numOrNull(row.raised_delivered_ms),
    clip_ready_ms: numOrNull(row.clip_ready_ms),
    clip_delivered_ms: numOrNull(row.clip_delivered_ms),
    completed_ms: numOrNull(row.completed_ms),
    status: String(row.status) as AlarmStatus,
    dead_reason: strOrNull(row.dead_reason),
    duplicates: num(row.duplicates),
    updated_ms: num(row.updated_ms),
  };
}

export { numOrNull, strOrNull };
