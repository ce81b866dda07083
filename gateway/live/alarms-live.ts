// Live alarms: GET /api/v1/alarms/stream (Server-Sent Events) and GET /api/v1/alarms/ws (WebSocket), one alarm
// view (alarm-views.ts) per message, sent when an alarm is admitted and again at every step and delivery attempt.
// The alarm service writes to the records, not to the bus, so one poller per gateway reads what changed
// (records.changedSince, every second while anyone listens) and fans it out. Each poll looks back OVERLAP_MS
// behind the newest change it saw: a transaction that commits late with an older updated_ms (another replica's
// clock, a slow commit) is still found, and the updated_ms each alarm was last sent at keeps repeats out.
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { WebSocket } from "ws";
import { z } from "zod";
import type { AlarmRecord, AlarmRecords } from "../../alarms/records.ts";
import { cameraIdSchema } from "../../worker/publish/camera-id.ts";
import { toAlarmView } from "../alarm-views.ts";
import { cameraNotFound, servedCamera, type WithContext } from "../context.ts";
import { errorBody } from "../schemas.ts";
import { openStream } from "./stream.ts";
import { keepAlive } from "./ws.ts";

const OVERLAP_MS = 5_000;
const BATCH = 500;

type Listener = (r: AlarmRecord) => void;

/** One poller per gateway: runs while someone listens. */
export class AlarmChanges {
  private readonly listeners = new Set<Listener>();
  private readonly sent = new Map<string, number>();
  private watermark = 0;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private failing = false;

  private readonly records: AlarmRecords;
  private readonly pollMs: number;
  private readonly log: FastifyBaseLogger | undefined;

  constructor(records: AlarmRecords, pollMs: number, log?: FastifyBaseLogger) {
    this.records = records;
    this.pollMs = pollMs;
    this.log = log;
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    if (this.listeners.size === 1) {
      this.watermark = Math.max(this.watermark, Date.now() - OVERLAP_MS);
      this.schedule(0);
    }
    return () => {
      this.listeners.delete(fn);
      if (this.listeners.size === 0) this.stop();
    };
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(ms: number) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.poll(), ms);
  }

  private async poll() {
    if (this.running || this.listeners.size === 0) return;
    this.running = true;
    let full = false;
    try {
      const rows = await this.records.changedSince(this.watermark - OVERLAP_MS, BATCH);
      if (this.failing) this.log?.info("alarm records reachable again; live alarms resume");
      this.failing = false;
      for (const r of rows) {
        this.watermark = Math.max(this.watermark, r.updated_ms);
        if ((this.sent.get(r.id) ?? -1) >= r.updated_ms) continue;
        this.sent.set(r.id, r.updated_ms);
        for (const fn of this.listeners) fn(r);
      }
      // What was sent before the look-back window cannot come back unchanged; a change has a later updated_ms.
      for (const [id, ms] of this.sent) if (ms < this.watermark - 2 * OVERLAP_MS) this.sent.delete(id);
      full = rows.length === BATCH;
    } catch (err) {
      if (!this.failing) this.log?.warn({ err: (err as Error).message }, "live alarms: reading the records failed");
      this.failing = true;
    } finally {
      this.running = false;
    }
    // A full batch: more changed than one read holds, read on at once.
    if (this.listeners.size > 0) this.schedule(full ? 0 : this.pollMs);
  }
}

const streamQuery = z.object({
  camera: cameraIdSchema.optional().describe("Only this camera's alarms (its id, `<namespace>/<name>`)."),
});

export const alarmsLiveRoutes: FastifyPluginAsyncZod<WithContext> = async (app, { ctx }) => {
  const prefix = app.prefix;
  const served = servedCamera(ctx);
  const records = ctx.alarms.records;
  const changes = records ? new AlarmChanges(records, ctx.alarms.pollMs ?? 1000, app.log) : undefined;
  app.addHook("onClose", async () => changes?.stop());
  for (const stream of ["alarms"]) {
    ctx.metrics.streamClients.set({ stream }, 0);
    ctx.metrics.wsClients.set({ stream }, 0);
  }
  const keepFor = (camera: string | undefined) => (r: AlarmRecord) =>
    served(r.camera_id) && (camera === undefined || r.camera_id === camera);
  const json = (r: AlarmRecord) => JSON.stringify(toAlarmView(r, prefix));

  /** Before the stream opens: 503 without records, 404 for a camera not served. */
  const check = async (req: FastifyRequest, reply: FastifyReply) => {
    if (!records)
      return reply.code(503).send({
        error: "unavailable",
        message: "alarm records are not configured on this gateway: set MYSQL_URL or VIGIL_ALARMS_DB",
      });
    const camera = (req.query as { camera?: string }).camera;
    if (camera !== undefined && !served(camera)) return cameraNotFound(reply, camera);
  };

  app.get(
    "/alarms/stream",
    {
      schema: {
        summary: "Live alarms as Server-Sent Events",
        description:
          "Each message is `id: <updated_ms>` and `data: <alarm JSON>` (as in the list), sent when an alarm is admitted and at each step or delivery attempt after. Reconnect with Last-Event-ID to get what changed since (at least; repeats carry the same updated_ms). Comment lines (`: ping`) are heartbeats.",
        tags: ["live", "alarms"],
        querystring: streamQuery,
        headers: z.looseObject({ "last-event-id": z.string().optional() }),
        response: {
          200: { description: "An endless event stream", content: { "text/event-stream": { schema: z.string() } } },
          400: errorBody,
          401: errorBody,
          404: errorBody,
          503: errorBody,
        },
      },
      preHandler: check,
    },
    async (req, reply) => {
      if (!changes || !records) return reply;
      const keep = keepFor(req.query.camera);
      ctx.metrics.streamClients.inc({ stream: "alarms" });
      let unsubscribe = () => {};
      const heartbeat = setInterval(() => stream.write(": ping\n\n"), ctx.heartbeatMs);
      const stream = openStream(ctx, reply, "text/event-stream; charset=utf-8", () => {
        clearInterval(heartbeat);
        unsubscribe();
        ctx.metrics.streamClients.dec({ stream: "alarms" });
      });
      const send = (r: AlarmRecord) => {
        if (!keep(r)) return;
        if (stream.buffered() > ctx.eventBufferBytes) {
          ctx.metrics.streamsClosedSlow.inc({ transport: "sse" });
          return stream.end();
        }
        stream.write(`id: ${r.updated_ms}\ndata: ${json(r)}\n\n`);
      };
      stream.write("retry: 2000\n: connected\n\n");
      const last = Number(req.headers["last-event-id"]);
      if (Number.isSafeInteger(last) && last > 0) {
        // What changed while the client was away; the live poller's look-back may send some of it again.
        const missed = await records.changedSince(last - OVERLAP_MS, 1000).catch(() => []);
        for (const r of missed) send(r);
      }
      unsubscribe = changes.subscribe(send);
      return reply;
    },
  );

  app.route({
    method: "GET",
    url: "/alarms/ws",
    schema: {
      summary: "Live alarms over a WebSocket (one alarm JSON per text frame, as in the list)",
      tags: ["live", "alarms"],
      querystring: streamQuery,
      response: {
        101: z.null().describe("Switching to WebSocket"),
        400: errorBody,
        401: errorBody,
        404: errorBody,
        426: errorBody,
        503: errorBody,
      },
    },
    preHandler: check,
    handler: async (_req, reply) =>
      reply
        .code(426)
        .header("upgrade", "websocket")
        .send({ error: "upgrade_required", message: "this endpoint is a WebSocket; connect with a WebSocket client" }),
    wsHandler: (socket, req) => {
      if (!changes) return void socket.close(1011, "alarm records not configured");
      const keep = keepFor((req.query as { camera?: string }).camera);
      ctx.metrics.wsClients.inc({ stream: "alarms" });
      const stopPing = keepAlive(socket);
      const unsubscribe = changes.subscribe((r) => {
        if (!keep(r) || socket.readyState !== WebSocket.OPEN) return;
        if (socket.bufferedAmount > ctx.eventBufferBytes) {
          ctx.metrics.streamsClosedSlow.inc({ transport: "ws" });
          return void socket.close(1013, "too far behind; reconnect");
        }
        socket.send(json(r));
      });
      socket.once("close", () => {
        stopPing();
        unsubscribe();
        ctx.metrics.wsClients.dec({ stream: "alarms" });
      });
    },
  });
};
