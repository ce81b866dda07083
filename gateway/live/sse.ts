// GET /api/v1/events/stream: events as Server-Sent Events, for EventSource (token in ?access_token=, since
// EventSource cannot send headers). Each event carries its id, so a reconnecting EventSource sends Last-Event-ID
// and gets what it missed from the cache. Comment heartbeats keep proxies from closing an idle stream. A client
// that falls more than eventBufferBytes behind is disconnected rather than buffered without bound; it reconnects.
// `?camera=` must name a camera the catalog serves, as REST requires: one Redis may carry other namespaces' cameras.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { EventMessage } from "../../worker/publish/messages.ts";
import { cameraNotFound, servedCamera, type WithContext } from "../context.ts";
import { errorBody, eventsStreamQuery } from "../schemas.ts";
import { openStream } from "./stream.ts";

const frame = (e: EventMessage) => `id: ${e.id}\ndata: ${JSON.stringify(e)}\n\n`;

export const sseRoutes: FastifyPluginAsyncZod<WithContext> = async (app, { ctx }) => {
  const served = servedCamera(ctx);
  app.get(
    "/events/stream",
    {
      schema: {
        summary: "Live events as Server-Sent Events",
        description:
          "Each event is `id: <event id>` and `data: <event JSON>`. Reconnect with Last-Event-ID to resume from the gateway's cache. Comment lines (`: ping`) are heartbeats.",
        tags: ["live"],
        querystring: eventsStreamQuery,
        // Loose: the validated object replaces request.headers, which must keep the others.
        headers: z.looseObject({ "last-event-id": z.string().optional() }),
        response: {
          200: { description: "An endless event stream", content: { "text/event-stream": { schema: z.string() } } },
          400: errorBody,
          401: errorBody,
          404: errorBody,
        },
      },
    },
    async (req, reply) => {
      const camera = req.query.camera;
      if (camera !== undefined && !served(camera)) return cameraNotFound(reply, camera);
      // Served is checked per event too: a camera deleted while its stream is open stops there.
      const keep = (e: EventMessage) => served(e.camera_id) && (camera === undefined || e.camera_id === camera);
      ctx.metrics.streamClients.inc({ stream: "events" });
      let unsubscribe = () => {};
      const heartbeat = setInterval(() => stream.write(": ping\n\n"), ctx.heartbeatMs);
      const stream = openStream(ctx, reply, "text/event-stream; charset=utf-8", () => {
        clearInterval(heartbeat);
        unsubscribe();
        ctx.metrics.streamClients.dec({ stream: "events" });
      });
      stream.write("retry: 2000\n: connected\n\n");
      const lastId = req.headers["last-event-id"];
      if (lastId) for (const e of ctx.cache.eventsAfterId(lastId) ?? []) if (keep(e)) stream.write(frame(e));
      unsubscribe = ctx.cache.onEvent((e) => {
        if (!keep(e)) return;
        if (stream.buffered() > ctx.eventBufferBytes) {
          ctx.metrics.streamsClosedSlow.inc({ transport: "sse" });
          return stream.end();
        }
        stream.write(frame(e));
      });
      return reply;
    },
  );
};
