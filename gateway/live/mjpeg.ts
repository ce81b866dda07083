// GET /api/v1/cameras/:id/video.mjpeg: the live video as multipart/x-mixed-replace, which a plain <img src> plays
// (token in ?access_token=). Like the WebSocket, a frame is skipped for a client whose buffers still hold more
// than frameBufferFrames frames' worth: a slow client sees fewer frames, never older ones.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { cameraNotFound, type WithContext } from "../context.ts";
import { cameraParams, errorBody } from "../schemas.ts";
import { openStream } from "./stream.ts";

const BOUNDARY = "vigilframe";

export const mjpegRoutes: FastifyPluginAsyncZod<WithContext> = async (app, { ctx }) => {
  app.get(
    "/cameras/:id/video.mjpeg",
    {
      schema: {
        summary: "A camera's live annotated video as MJPEG (multipart/x-mixed-replace), for <img src>",
        tags: ["live"],
        params: cameraParams,
        response: {
          200: {
            description: "An endless multipart stream of JPEG parts",
            content: { [`multipart/x-mixed-replace; boundary=${BOUNDARY}`]: { schema: z.string() } },
          },
          401: errorBody,
          404: errorBody,
        },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      if (!ctx.catalog.camera(id)) return cameraNotFound(reply, id);
      ctx.metrics.streamClients.inc({ stream: "video" });
      let leave = () => {};
      const stream = openStream(ctx, reply, `multipart/x-mixed-replace; boundary=${BOUNDARY}`, () => {
        leave();
        ctx.metrics.streamClients.dec({ stream: "video" });
      });
      // Each part is followed by the next boundary, so a browser shows a frame as soon as it has arrived rather
      // than when the next one starts; the first boundary also sends the headers at once.
      stream.write(`--${BOUNDARY}\r\n`);
      leave = ctx.hub.join(id, (jpeg) => {
        if (stream.closed()) return;
        if (stream.buffered() > ctx.frameBufferFrames * jpeg.length)
          return void ctx.metrics.framesDropped.inc({ transport: "mjpeg" });
        stream.write(`Content-Type: image/jpeg\r\nContent-Length: ${jpeg.length}\r\n\r\n`);
        stream.write(jpeg);
        stream.write(`\r\n--${BOUNDARY}\r\n`);
      });
      return reply;
    },
  );
};
