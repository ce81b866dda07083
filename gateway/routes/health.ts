// Probes and metrics: /healthz (always 200, open), /readyz (200 once the feed is connected and the catalog
// synced, else 503 naming what is not), /metrics (Prometheus text).
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import type { WithContext } from "../context.ts";
import { errorBody, readyBody } from "../schemas.ts";

export const healthRoutes: FastifyPluginAsyncZod<WithContext> = async (app, { ctx }) => {
  app.get(
    "/healthz",
    {
      schema: {
        summary: "Liveness: the process serves HTTP",
        tags: ["health"],
        security: [],
        response: { 200: z.object({ status: z.literal("ok") }) },
      },
    },
    async () => ({ status: "ok" as const }),
  );

  app.get(
    "/readyz",
    {
      schema: {
        summary: "Readiness: the bus feed is connected and the camera catalog has synced",
        tags: ["health"],
        response: { 200: readyBody, 503: readyBody, 401: errorBody },
      },
    },
    async (_req, reply) => {
      const feed = ctx.feed.ready();
      const catalog = ctx.catalog.ready();
      const missing = [...(feed ? [] : ["bus feed not connected"]), ...(catalog ? [] : ["camera catalog not synced"])];
      const ready = missing.length === 0;
      return reply
        .code(ready ? 200 : 503)
        .send({ ready, feed, catalog, message: ready ? "ready" : `not ready: ${missing.join(", ")}` });
    },
  );

  app.get(
    "/metrics",
    {
      schema: {
        summary: "Prometheus metrics",
        tags: ["health"],
        response: { 200: z.string().describe("Prometheus text exposition format"), 401: errorBody },
      },
    },
    async (_req, reply) => {
      const body = await ctx.metrics.registry.metrics();
      return reply.header("content-type", ctx.metrics.registry.contentType).send(body);
    },
  );
};
