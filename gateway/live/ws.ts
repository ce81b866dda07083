// WebSockets: GET /api/v1/events/ws (JSON events) and GET /api/v1/cameras/:id/video (binary JPEG frames).
// Frames are never queued behind a slow client: a frame is skipped for a client whose send buffer still holds
// more than frameBufferFrames frames' worth, so one stalled viewer costs the others nothing. An events client
// that lags by more than eventBufferBytes is closed with 1013 (try again later) instead of buffered.
// Browsers cannot set headers on a WebSocket: the token goes in ?access_token=. A plain GET gets 426.
import type { FastifyReply, FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { WebSocket } from "ws";
import { z } from "zod";
import type { EventMessage } from "../../worker/publish/messages.ts";
import { cameraNotFound, servedCamera, type WithContext } from "../context.ts";
import { cameraParams, errorBody, eventsStreamQuery } from "../schemas.ts";

const PING_MS = 30_000;

const upgradeRequired = async (_req: FastifyRequest, reply: FastifyReply) =>
  reply
    .code(426)
    .header("upgrade", "websocket")
    .send({ error: "upgrade_required", message: "this endpoint is a WebSocket; connect with a WebSocket client" });

/** Pings every 30 s and drops a peer that did not answer the previous ping (half-open TCP, vanished proxies). */
export function keepAlive(socket: WebSocket): () => void {
  let alive = true;
  socket.on("pong", () => {
    alive = true;
  });
  const t = setInterval(() => {
    if (!alive) return void socket.terminate();
    alive = false;
    socket.ping();
  }, PING_MS);
  t.unref();
  return () => clearInterval(t);
}

export const wsRoutes: FastifyPluginAsyncZod<WithContext> = async (app, { ctx }) => {
  const served = servedCamera(ctx);
  const { metrics } = ctx;

  app.route({
    method: "GET",
    url: "/events/ws",
    schema: {
      summary: "Live events over a WebSocket (one JSON event message per text frame)",
      tags: ["live"],
      querystring: eventsStreamQuery,
      response: {
        101: z.null().describe("Switching to WebSocket"),
        400: errorBody,
        401: errorBody,
        404: errorBody,
        426: errorBody,
      },
    },
    // Before the upgrade, as REST: `?camera=` must name a camera the catalog serves.
    preHandler: async (req, reply) => {
      const camera = (req.query as { camera?: string }).camera;
      if (camera !== undefined && !served(camera)) return cameraNotFound(reply, camera);
    },
    handler: upgradeRequired,
    wsHandler: (socket, req) => {
      const camera = (req.query as { camera?: string }).camera;
      const keep = (e: EventMessage) => served(e.camera_id) && (camera === undefined || e.camera_id === camera);
      metrics.wsClients.inc({ stream: "events" });
      const stopPing = keepAlive(socket);
      const unsubscribe = ctx.cache.onEvent((e) => {
        if (!keep(e) || socket.readyState !== WebSocket.OPEN) return;
        if (socket.bufferedAmount > ctx.eventBufferBytes) {
          metrics.streamsClosedSlow.inc({ transport: "ws" });
          return void socket.close(1013, "too far behind; reconnect");
        }
        socket.send(JSON.stringify(e));
      });
      socket.once("close", () => {
        stopPing();
        unsubscribe();
        metrics.wsClients.dec({ stream: "events" });
      });
    },
  });

  app.route({
    method: "GET",
    url: "/cameras/:id/video",
    schema: {
      summary: "A camera's live annotated video over a WebSocket (one JPEG per binary frame)",
      description:
        "Frames flow while at least one client watches (workers encode only then), at most 5 per second. A client too slow for the stream misses frames rather than falling behind.",
      tags: ["live"],
      params: cameraParams,
      response: { 101: z.null().describe("Switching to WebSocket"), 401: errorBody, 404: errorBody, 426: errorBody },
    },
    // Before the upgrade: an unknown camera is a plain 404.
    preHandler: async (req, reply) => {
      const { id } = req.params as { id: string };
      if (!ctx.catalog.camera(id)) return cameraNotFound(reply, id);
    },
    handler: upgradeRequired,
    wsHandler: (socket, req) => {
      const { id } = req.params as { id: string };
      metrics.wsClients.inc({ stream: "video" });
      const stopPing = keepAlive(socket);
      const leave = ctx.hub.join(id, (jpeg) => {
        if (socket.readyState !== WebSocket.OPEN) return;
        if (socket.bufferedAmount > ctx.frameBufferFrames * jpeg.length)
          return void metrics.framesDropped.inc({ transport: "ws" });
        socket.send(jpeg, { binary: true });
      });
      socket.once("close", () => {
        stopPing();
        leave();
        metrics.wsClients.dec({ stream: "video" });
      });
    },
  });
};
