// The gateway's probes and metrics on a port of their own, without the API token: a kubelet's probes and a
// Prometheus scrape carry no bearer token, and the API token should not have to be handed to either. The same
// routes as on the API port (routes/health.ts), so both answer alike; nothing else is served here.
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { serializerCompiler, validatorCompiler } from "fastify-type-provider-zod";
import { type HealthOptions, healthRoutes } from "./routes/health.ts";

export function buildHealthServer(opts: HealthOptions & { logger?: FastifyBaseLogger }): FastifyInstance {
  // Probes every few seconds would drown the access log: only warnings and errors from here.
  const app = Fastify(
    opts.logger ? { loggerInstance: opts.logger.child({ server: "health" }, { level: "warn" }) } : {},
  );
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.register(healthRoutes, { feed: opts.feed, catalog: opts.catalog, registry: opts.registry });
  return app;
}
