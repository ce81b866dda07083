// Probes and metrics: /healthz (always 200), /readyz (200 once the feed is connected and the catalog synced, else
// 503 naming what is not), /metrics (Prometheus text). Served twice: on the API port (/healthz open, the others
// behind the token, as before) and without any token on the health port (health-server.ts), for kubelets and
// Prometheus.
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import type { Registry } from "prom-client";
import { z } from "zod";
import type { BusFeed, CameraCatalog } from "../feed.ts";
import { errorBody, readyBody } from "../schemas.ts";

export type HealthOptions = { feed: BusFeed; catalog: CameraCatalog; registry: Registry };

export const healthRoutes: FastifyPluginAsyncZod<HealthOptions> = async (app, { feed, catalog, registry }) => {
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
      const feedReady = feed.ready();
      const catalogReady = catalog.ready();
      const missing = [
        ...(feedReady ? [] : ["bus feed not connected"]),
        ...(catalogReady ? [] : ["camera catalog not synced"]),
      ];
      const ready = missing.length === 0;
      return reply.code(ready ? 200 : 503).send({
        ready,
        feed: feedReady,
        catalog: catalogReady,
        message: ready ? "ready" : `not ready: ${missing.join(", ")}`,
      });
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
      const body = await registry.metrics();
      return reply.header("content-type", registry.contentType).send(body);
    },
  );
};
