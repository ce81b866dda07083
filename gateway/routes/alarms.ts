// The alarms under /api/v1: the list (filters, cursor pages), one alarm with its delivery attempts, its snapshot
// (image/jpeg) and its replay clip (video/mp4 with range requests, so a <video> can seek), all read from the alarm
// records and the clip store the alarm service writes. As on every other route, only cameras this gateway serves:
// an alarm of another namespace's camera (one database may hold several) is "not found", never shown.
// Registered inside apiRoutes, so the same per-client rate limit counts these requests too.
import type { FastifyReply, FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { AlarmFilter, AlarmRecord, AlarmRecords } from "../../alarms/records.ts";
import { BadFilterError, encodeCursor, MAX_ALARM_ID, RecordsError } from "../../alarms/records-core.ts";
import { cameraIdSchema } from "../../worker/publish/camera-id.ts";
import { alarmDetailView, alarmView, toAlarmView, toAttemptView } from "../alarm-views.ts";
import { type AlarmSources, cameraNotFound, servedCamera, type WithContext } from "../context.ts";
import { answerRange } from "../http-range.ts";
import { errorBody, parseSince } from "../schemas.ts";

/** A page of a filtered list may take this many reads of the records to fill with served cameras' alarms. */
const MAX_SCANS = 8;

const time = (what: string) =>
  z
    .string()
    .refine((v) => parseSince(v) !== undefined, "must be an RFC 3339 time (2025-01-31T12:00:00Z) or epoch milliseconds")
    .optional()
    .describe(what);

export const alarmsQuery = z.object({
  camera: cameraIdSchema.optional().describe("Only this camera's alarms (its id, `<namespace>/<name>`)."),
  rule: z.string().min(1).max(253).optional().describe("Only this rule's alarms."),
  severity: z.enum(["info", "warning", "critical"]).optional(),
  since: time("Only alarms whose event happened at or after this time."),
  until: time("Only alarms whose event happened before this time."),
  limit: z.coerce.number().int().min(1).max(1000).default(50).describe("1 to 1000, default 50."),
  cursor: z
    .string()
    .min(1)
    .max(2000)
    .optional()
    .describe("`next` of the previous page: pages go newest first. A page may hold fewer than `limit`."),
});

export const alarmParams = z.object({
  id: z
    .string()
    .min(1)
    .max(MAX_ALARM_ID)
    .describe("Alarm id, `<camera id>:<rule>:<track>:<start ms>`, URL-encoded as one path segment."),
});

const unavailable = (reply: FastifyReply, message: string) =>
  reply.code(503).header("retry-after", "5").send({ error: "unavailable", message });

/** Why the alarm routes cannot answer, when a source is not configured. */
export const NO_RECORDS =
  "alarm records are not configured on this gateway: set MYSQL_URL (mysql://…) or VIGIL_ALARMS_DB (a sqlite file)";
export const NO_CLIPS = "the clip store is not configured on this gateway: set VIGIL_CLIP_DIR";

export const alarmRoutes: FastifyPluginAsyncZod<WithContext> = async (app, { ctx }) => {
  const prefix = app.prefix;
  const served = servedCamera(ctx);
  const sources: AlarmSources = ctx.alarms;
  const tags = ["alarms"];
  const errors = { 400: errorBody, 401: errorBody, 404: errorBody, 429: errorBody, 503: errorBody };
  const view = (r: AlarmRecord) => toAlarmView(r, prefix);

  /** Runs a records read, answering 503 when the database is away (the detail goes to the log, not the client). */
  async function read<T>(req: FastifyRequest, reply: FastifyReply, fn: (r: AlarmRecords) => Promise<T>) {
    const records = sources.records;
    if (!records) return void unavailable(reply, NO_RECORDS);
    try {
      return await fn(records);
    } catch (err) {
      if (err instanceof BadFilterError)
        return void reply.code(400).send({ error: "bad_request", message: `invalid query parameter ${err.message}` });
      if (err instanceof RecordsError) {
        req.log.warn({ err: err.message }, "alarm records unavailable");
        return void unavailable(reply, "the alarm records are unreachable just now; retry shortly");
      }
      throw err;
    }
  }

  /** The alarm, when it exists and its camera is served; otherwise the reply is sent (404 or 503). */
  async function alarmOf(req: FastifyRequest, reply: FastifyReply, id: string) {
    const r = await read(req, reply, (records) => records.get(id));
    if (reply.sent) return undefined;
    if (!r || !served(r.camera_id)) return void reply.code(404).send({ error: "not_found", message: `no alarm ${id}` });
    return r;
  }

  app.get(
    "/alarms",
    {
      schema: {
        summary: "Alarms, newest first, with filters and cursor pages",
        description:
          "From the alarm records (MySQL, or sqlite under `vigil up`). Filter by camera, rule, severity and event time `[since, until)`; follow `next` for the following page until it is null.",
        tags,
        querystring: alarmsQuery,
        response: { 200: z.object({ alarms: z.array(alarmView), next: z.string().nullable() }), ...errors },
      },
    },
    async (req, reply) => {
      const q = req.query;
      if (q.camera !== undefined && !served(q.camera)) return cameraNotFound(reply, q.camera);
      const filter: AlarmFilter = {
        limit: q.limit,
        ...(q.camera !== undefined ? { camera: q.camera } : {}),
        ...(q.rule !== undefined ? { rule: q.rule } : {}),
        ...(q.severity !== undefined ? { severity: q.severity } : {}),
        ...(q.since !== undefined ? { since: parseSince(q.since) as number } : {}),
        ...(q.until !== undefined ? { until: parseSince(q.until) as number } : {}),
        ...(q.cursor !== undefined ? { cursor: q.cursor } : {}),
      };
      const page = await read(req, reply, async (records) => {
        if (filter.camera !== undefined) return records.list(filter);
        // All cameras: skip those this gateway does not serve, reading on until the page is full.
        const items: AlarmRecord[] = [];
        let cursor = filter.cursor;
        for (let scan = 0; scan < MAX_SCANS; scan++) {
          const p = await records.list({ ...filter, ...(cursor !== undefined ? { cursor } : {}) });
          for (const [i, r] of p.items.entries()) {
            if (!served(r.camera_id)) continue;
            items.push(r);
            if (items.length === filter.limit) {
              const more = i < p.items.length - 1 || p.next !== null;
              return { items, next: more ? encodeCursor(r) : null };
            }
          }
          if (p.next === null) return { items, next: null };
          cursor = p.next;
        }
        return { items, next: cursor ?? null };
      });
      if (!page) return reply;
      return { alarms: page.items.map(view), next: page.next };
    },
  );

  app.get(
    "/alarms/:id",
    {
      schema: {
        summary: "One alarm, with every delivery attempt",
        tags,
        params: alarmParams,
        response: { 200: alarmDetailView, ...errors },
      },
    },
    async (req, reply) => {
      const r = await alarmOf(req, reply, req.params.id);
      if (!r) return reply;
      const attempts = await read(req, reply, (records) => records.attempts(r.id));
      if (!attempts) return reply;
      return { ...view(r), attempts: attempts.map(toAttemptView) };
    },
  );

  /** Sends a clip-store object, whole or the one byte range asked for. */
  async function sendObject(req: FastifyRequest, reply: FastifyReply, key: string, type: string, what: string) {
    const clips = sources.clips;
    if (!clips) return unavailable(reply, NO_CLIPS);
    const o = await clips.stat(key);
    if (!o) return reply.code(404).send({ error: "not_found", message: what });
    const etag = `"${o.size.toString(16)}-${Math.floor(o.modifiedMs).toString(16)}"`;
    const lastModified = new Date(o.modifiedMs).toUTCString();
    reply
      .header("content-type", type)
      .header("accept-ranges", "bytes")
      .header("etag", etag)
      .header("last-modified", lastModified)
      // An object never changes once written (the store's put is atomic); it may only be removed by retention.
      .header("cache-control", "private, max-age=86400")
      .header("x-content-type-options", "nosniff");
    const range = answerRange(req.headers.range, o.size, {
      ifRange: req.headers["if-range"] as string | undefined,
      etag,
      lastModified,
    });
    if (range.kind === "unsatisfiable")
      return reply
        .code(416)
        .header("content-range", `bytes */${o.size}`)
        .header("content-type", "application/json; charset=utf-8")
        .send({ error: "range_not_satisfiable", message: `the object has ${o.size} bytes` });
    if (range.kind === "partial")
      return reply
        .code(206)
        .header("content-range", `bytes ${range.start}-${range.end}/${o.size}`)
        .header("content-length", range.end - range.start + 1)
        .send(clips.read(key, range));
    return reply.code(200).header("content-length", o.size).send(clips.read(key));
  }

  const binary = (type: string, description: string) => ({
    200: { description, content: { [type]: { schema: z.string() } } },
    ...errors,
  });

  app.get(
    "/alarms/:id/snapshot",
    {
      schema: {
        summary: "The alarm's snapshot: the annotated frame of the event",
        tags,
        params: alarmParams,
        response: binary("image/jpeg", "The JPEG"),
      },
    },
    async (req, reply) => {
      const r = await alarmOf(req, reply, req.params.id);
      if (!r) return reply;
      if (!r.snapshot_key)
        return reply.code(404).send({ error: "not_found", message: `alarm ${r.id} has no snapshot` });
      return sendObject(
        req,
        reply,
        r.snapshot_key,
        "image/jpeg",
        `the snapshot of alarm ${r.id} is not in the clip store (removed by retention?)`,
      );
    },
  );

  app.get(
    "/alarms/:id/clip",
    {
      schema: {
        summary: "The alarm's replay clip (MP4), with HTTP range requests",
        description:
          "`Range: bytes=N-` answers 206 with that part (a browser's <video> seeks this way), a range past the end 416. 404 until the clip is ready.",
        tags,
        params: alarmParams,
        headers: z.looseObject({ range: z.string().optional(), "if-range": z.string().optional() }),
        response: {
          ...binary("video/mp4", "The whole MP4"),
          206: { description: "The byte range asked for", content: { "video/mp4": { schema: z.string() } } },
          416: errorBody,
        },
      },
    },
    async (req, reply) => {
      const r = await alarmOf(req, reply, req.params.id);
      if (!r) return reply;
      // Presence in the store is the signal: a clip is put there whole once it is cut and checked.
      return sendObject(
        req,
        reply,
        r.clip_key,
        "video/mp4",
        r.clip_ready_ms === null
          ? `the clip of alarm ${r.id} is not ready yet`
          : `the clip of alarm ${r.id} is not in the clip store (removed by retention?)`,
      );
    },
  );
};
