// A long-lived HTTP response fed by the gateway (SSE, MJPEG). The body is a PassThrough that Fastify pipes into
// the socket, so hooks, CORS headers and the access log behave as for any reply; what waits to be sent is the
// PassThrough's buffer plus the socket's, which is what the slow-client checks read.
import { PassThrough } from "node:stream";
import type { FastifyReply } from "fastify";
import type { GatewayContext } from "../context.ts";

export type LiveStream = {
  write(chunk: Buffer | string): void;
  /** Bytes written but not yet handed to the kernel. */
  buffered(): number;
  end(): void;
  closed(): boolean;
};

export function openStream(
  ctx: GatewayContext,
  reply: FastifyReply,
  contentType: string,
  onClose: () => void,
): LiveStream {
  const body = new PassThrough({ highWaterMark: 64 * 1024 });
  let closed = false;
  const end = () => {
    if (closed) return;
    closed = true;
    ctx.streams.delete(end);
    onClose();
    body.end();
  };
  ctx.streams.add(end);
  // The client went away (or the response ended): stop feeding it.
  reply.raw.once("close", end);
  reply
    .code(200)
    .header("content-type", contentType)
    .header("cache-control", "no-cache, no-store, no-transform")
    .header("x-accel-buffering", "no") // nginx and friends: do not buffer a live stream
    .send(body);
  return {
    write: (chunk) => {
      if (!closed) body.write(chunk);
    },
    buffered: () => body.readableLength + body.writableLength + reply.raw.writableLength,
    end,
    closed: () => closed,
  };
}
