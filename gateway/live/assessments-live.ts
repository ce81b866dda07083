// Live assessments: GET /api/v1/assessments/stream (Server-Sent Events) and GET /api/v1/assessments/ws (WebSocket),
// one assessment result (assessor/messages.ts) per message as the assessor publishes it, the same way events are
// pushed (sse.ts, ws.ts): `?camera=` must be a served camera, a client that lags by more than eventBufferBytes is
// closed, tokens in ?access_token= where a browser cannot send headers. An SSE client that reconnects with
// Last-Event-ID (a result id) gets the results after it from the store's recent list first. The dashboard uses the
// WebSocket: a browser's six HTTP/1.1 connections per host are already taken by the event stream, the polling
// and the MJPEG tiles, and WebSockets do not count against them.
import type { FastifyReply, FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { WebSocket } from "ws";
import { z } from "zod";
import { ASSESSMENT_REDIS, type AssessmentResult } from "../../assessor/messages.ts";
import { matches } from "../assessments.ts";
import { cameraNotFound, servedCamera, type WithContext } from "../context.ts";
import { assessmentsStreamQuery, errorBody } from "../schemas.ts";
import { openStream } from "./stream.ts";
import { keepAlive } from "./ws.ts";

type StreamQuery = z.infer<typeof assessmentsStreamQuery>;

const frame = (r: AssessmentResult) => `id: ${r.id}\ndata: ${JSON.stringify(r)}\n\n`;

export const assessmentsLiveRoutes: FastifyPluginAsyncZod<WithContext> = async (app, { ctx }) => {
  const served = servedCamera(ctx);
  const { metrics } = ctx;
  // Served is checked per result too: a camera deleted while its stream is open stops there.
  const filter = (q: StreamQuery) => (r: AssessmentResult) =>
    matches(r, { camera: q.camera, minRisk: q.minRisk, keep: (x) => served(x.camera_id) });
  const checkCamera = async (req: FastifyRequest, reply: FastifyReply) => {
    const camera = (req.query as StreamQuery).camera;
    if (camera !== undefined && !served(camera)) return cameraNotFound(reply, camera);
  };

  app.get(
    "/assessments/stream",
    {
      schema: {
        summary: "Live risk assessments as Server-Sent Events",
        description:
          "Each is `id: <result id>` and `data: <assessment result JSON>`. Reconnect with Last-Event-ID to get the results after it from the assessor's recent list. Comment lines (`: ping`) are heartbeats. Without an assessor behind the gateway the stream stays open and quiet.",
        tags: ["live", "assessments"],
        querystring: assessmentsStreamQuery,
        headers: z.looseObject({ "last-event-id": z.string().optional() }),
        response: {
          200: { description: "An endless stream", content: { "text/event-stream": { schema: z.string() } } },
          400: errorBody,
          401: errorBody,
          404: errorBody,
        },
      },
      preHandler: checkCamera,
    },
    async (req, reply) => {
      const keep = filter(req.query);
      metrics.streamClients.inc({ stream: "assessments" });
      let unsubscribe = () => {};
      const heartbeat = setInterval(() => stream.write(": ping\n\n"), ctx.heartbeatMs);
      const stream = openStream(ctx, reply, "text/event-stream; charset=utf-8", () => {
        clearInterval(heartbeat);
        unsubscribe();
        metrics.streamClients.dec({ stream: "assessments" });
      });
      stream.write("retry: 2000\n: connected\n\n");
      const send = (r: AssessmentResult) => {
        if (!keep(r)) return;
        if (stream.buffered() > ctx.eventBufferBytes) {
          metrics.streamsClosedSlow.inc({ transport: "sse" });
          return stream.end();
        }
        stream.write(frame(r));
      };
      const lastId = req.headers["last-event-id"];
      if (!lastId) {
        unsubscribe = ctx.assessments.onResult(send);
        return reply;
      }
      // Live ones that arrive while the catch-up is read wait for it, then go out unless it already sent them.
      const held: AssessmentResult[] = [];
      unsubscribe = ctx.assessments.onResult((r) => held.push(r));
      const sent = new Set<string>();
      try {
        const recent = await ctx.assessments.recent({ limit: ASSESSMENT_REDIS.recentMax });
        const i = recent.findIndex((r) => r.id === lastId);
        for (const r of (i < 0 ? [] : recent.slice(0, i)).reverse()) {
          sent.add(r.id);
          send(r);
        }
      } catch (err) {
        req.log.warn({ err: String(err) }, "assessments: catch-up after Last-Event-ID not read");
      }
      if (stream.closed()) return reply;
      unsubscribe();
      for (const r of held) if (!sent.has(r.id)) send(r);
      unsubscribe = ctx.assessments.onResult(send);
      return reply;
    },
  );

  app.route({
    method: "GET",
    url: "/assessments/ws",
    schema: {
      summary: "Live risk assessments over a WebSocket (one assessment result JSON per text frame)",
      tags: ["live", "assessments"],
      querystring: assessmentsStreamQuery,
      response: {
        101: z.null().describe("Switching to WebSocket"),
        400: errorBody,
        401: errorBody,
        404: errorBody,
        426: errorBody,
      },
    },
    preHandler: checkCamera,
    handler: async (_req, reply) =>
      reply
        .code(426)
        .header("upgrade", "websocket")
        .send({ error: "upgrade_required", message: "this endpoint is a WebSocket; connect with a WebSocket client" }),
    wsHandler: (socket, req) => {
      const keep = filter(req.query as StreamQuery);
      metrics.wsClients.inc({ stream: "assessments" });
      const stopPing = keepAlive(socket);
      const unsubscribe = ctx.assessments.onResult((r) => {
        if (!keep(r) || socket.readyState !== WebSocket.OPEN) return;
        if (socket.bufferedAmount > ctx.eventBufferBytes) {
          metrics.streamsClosedSlow.inc({ transport: "ws" });
          return void socket.close(1013, "too far behind; reconnect");
        }
        socket.send(JSON.stringify(r));
      });
      socket.once("close", () => {
        stopPing();
        unsubscribe();
        metrics.wsClients.dec({ stream: "assessments" });
      });
    },
  });
};
