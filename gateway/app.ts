// The gateway as a Fastify instance (not listening): REST under /api/v1, live events (SSE, WebSocket) and video
// (WebSocket, MJPEG), probes and metrics, OpenAPI at /docs/json with its UI at /docs, the dashboard at /. Every route
// but /healthz, the docs and the dashboard's static files needs a bearer token. Each area is its own encapsulated
// plugin; they share one context.
import cors from "@fastify/cors";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import websocket from "@fastify/websocket";
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyRequest } from "fastify";
import {
  createJsonSchemaTransform,
  hasZodFastifySchemaValidationErrors,
  serializerCompiler,
  validatorCompiler,
} from "fastify-type-provider-zod";
import { Registry } from "prom-client";
import type { CameraControl } from "../operator/api/executor.ts";
import { type AssessmentSource, noAssessments } from "./assessments.ts";
import { type ApiToken, authHook, parseApiTokens, redactUrl } from "./auth.ts";
import { type CacheOptions, FeedCache } from "./cache.ts";
import type { AlarmSources, GatewayContext } from "./context.ts";
import type { BusFeed, CameraCatalog } from "./feed.ts";
import { alarmsLiveRoutes } from "./live/alarms-live.ts";
import { assessmentsLiveRoutes } from "./live/assessments-live.ts";
import { mjpegRoutes } from "./live/mjpeg.ts";
import { sseRoutes } from "./live/sse.ts";
import { VideoHub } from "./live/video-hub.ts";
import { wsRoutes } from "./live/ws.ts";
import { gatewayMetrics } from "./metrics.ts";
import { apiRoutes } from "./routes/api.ts";
import { DASHBOARD_PATHS, dashboardRoutes } from "./routes/dashboard.ts";
import { healthRoutes } from "./routes/health.ts";

export type GatewayOptions = {
  feed: BusFeed;
  catalog: CameraCatalog;
  /**
   * Accepted bearer tokens (at least one): VIGIL_API_TOKEN entries (`name:token[:read|write]`, or a plain read-only
   * `token`, named by its position) or parsed ones.
   */
  tokens: readonly (string | ApiToken)[];
  /** Starting and stopping cameras (POST /api/v1/cameras/{id}/start|stop); unset: those routes answer 503. */
  control?: CameraControl;
  /** Origins allowed by CORS (`true`: any, reflecting the request's). CORS is off when unset or empty. */
  corsOrigins?: string[] | true;
  /** REST requests per minute per client address; 0 turns the limit off (default 6000). */
  rateLimitPerMinute?: number;
  /** Where the metrics go (the feed's too, when it was given the same one); a new one when unset. */
  registry?: Registry;
  /** A pino logger; requests are logged through it with tokens masked. Silent when unset. */
  logger?: FastifyBaseLogger;
  cache?: Omit<CacheOptions, "registry">;
  heartbeatMs?: number;
  frameBufferFrames?: number;
  eventBufferBytes?: number;
  trustProxy?: boolean;
  /**
   * On close, requests in flight get this long to finish before every connection is dropped: a client may hold
   * a connection on which it never sends a request (undici and browsers open them ahead), which Node's server
   * would otherwise wait out for its headersTimeout (60 s). Default 3000.
   */
  closeGraceMs?: number;
  /** The alarm records and clip store (GET /api/v1/alarms…); without them those routes answer 503 saying so. */
  alarms?: AlarmSources;
  /**
   * Assessment results (gateway/assessments-redis.ts over the assessor's Redis keys); without it the assessment
   * routes answer empty lists. The caller owns it (and closes it), as it owns the feed.
   */
  assessments?: AssessmentSource;
};

export const API_PREFIX = "/api/v1";

/** Open routes: liveness, the API description (the docs UI cannot send a token for its own assets), the dashboard's
 * static files (no data: the page sends its token on every call it makes). */
const isOpen = (path: string) =>
  path === "/healthz" || path === "/docs" || path.startsWith("/docs/") || DASHBOARD_PATHS.has(path);

/** What the access log shows of a request: never the Authorization header, never an access_token value. */
const requestSerializer = (req: FastifyRequest) => ({
  method: req.method,
  url: redactUrl(req.url),
  remoteAddress: req.ip,
});

function parameterMessage(err: FastifyError): string {
  const where = err.validationContext === "querystring" ? "query" : (err.validationContext ?? "request");
  return (err.validation ?? [])
    .map((v) => {
      const name = v.instancePath.replace(/^\//, "").replaceAll("/", ".");
      return name ? `invalid ${where} parameter '${name}': ${v.message}` : `invalid ${where}: ${v.message}`;
    })
    .join("; ");
}

export function buildGateway(opts: GatewayOptions): FastifyInstance {
  const registry = opts.registry ?? new Registry();
  const metrics = gatewayMetrics(registry);
  const cache = new FeedCache(opts.feed, { ...opts.cache, registry });
  const ctx: GatewayContext = {
    feed: opts.feed,
    catalog: opts.catalog,
    cache,
    hub: new VideoHub(opts.feed, cache),
    metrics,
    heartbeatMs: opts.heartbeatMs ?? 15_000,
    frameBufferFrames: opts.frameBufferFrames ?? 2,
    eventBufferBytes: opts.eventBufferBytes ?? 1 << 20,
    streams: new Set(),
    alarms: opts.alarms ?? {},
    assessments: opts.assessments ?? noAssessments(),
    ...(opts.control ? { control: opts.control } : {}),
  };
  const tokens = parseApiTokens(opts.tokens);

  const app = Fastify({
    ...(opts.logger
      ? {
          loggerInstance: opts.logger.child(
            {},
            {
              serializers: { req: requestSerializer },
              redact: ["req.headers.authorization", "headers.authorization", "authorization"],
            },
          ),
        }
      : {}),
    trustProxy: opts.trustProxy ?? false,
    // Alarm ids (and camera ids) are one encoded path segment each, up to ~400 characters: past find-my-way's
    // default of 100 a route would not match at all.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1200 },
  });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (hasZodFastifySchemaValidationErrors(err) || err.validation)
      return reply.code(400).send({ error: "bad_request", message: parameterMessage(err) });
    const status = err.statusCode ?? 500;
    if (status === 429)
      return reply.code(429).send({ error: "rate_limited", message: err.message || "too many requests" });
    if (status >= 500) {
      req.log.error({ err }, "request failed");
      return reply.code(status).send({ error: "internal", message: "internal error" });
    }
    return reply.code(status).send({ error: err.code?.toLowerCase() ?? "error", message: err.message });
  });
  app.setNotFoundHandler((req, reply) =>
    reply
      .code(404)
      .send({ error: "not_found", message: `no route ${req.method} ${redactUrl(req.url.split("?")[0] ?? "")}` }),
  );

  app.register(websocket, { options: { maxPayload: 64 * 1024 } });
  const origins = opts.corsOrigins;
  if (origins === true || (origins && origins.length > 0))
    app.register(cors, {
      origin: origins,
      methods: ["GET", "HEAD", "POST", "OPTIONS"],
      allowedHeaders: ["authorization", "content-type", "last-event-id"],
      maxAge: 600,
    });
  app.register(swagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "Vigil gateway",
        version: "0.1.0",
        description:
          "Cameras, stats and events of Vigil, live events (SSE, WebSocket) and annotated video (WebSocket, MJPEG), alarms with their snapshots, replay clips and delivery attempts, and the model's risk assessments (REST, SSE, WebSocket). Send `Authorization: Bearer <token>`; where a browser cannot (EventSource, <img>, WebSocket), `?access_token=<token>`.",
      },
      components: {
        securitySchemes: {
          bearer: { type: "http", scheme: "bearer" },
          accessToken: { type: "apiKey", in: "query", name: "access_token" },
        },
      },
      security: [{ bearer: [] }, { accessToken: [] }],
    },
    transform: createJsonSchemaTransform({ skipList: [] }),
  });
  app.register(swaggerUi, { routePrefix: "/docs" });

  // Preflight requests carry no credentials by design; CORS answers them.
  app.decorateRequest("apiToken", null);
  const auth = authHook(tokens, isOpen);
  app.addHook("onRequest", async (req, reply) => {
    if (req.method !== "OPTIONS") return auth(req, reply);
  });
  app.addHook("onResponse", async (req, reply) => {
    metrics.httpDuration.observe(
      { method: req.method, route: req.routeOptions.url ?? "unmatched", status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });
  app.addHook("preClose", async () => {
    for (const end of [...ctx.streams]) end();
    const force = setTimeout(() => app.server.closeAllConnections(), opts.closeGraceMs ?? 3000);
    force.unref();
    app.server.once("close", () => clearTimeout(force));
  });

  app.register(healthRoutes, { feed: ctx.feed, catalog: ctx.catalog, registry });
  app.register(apiRoutes, { prefix: API_PREFIX, ctx, rateLimitPerMinute: opts.rateLimitPerMinute ?? 6000 });
  app.register(sseRoutes, { prefix: API_PREFIX, ctx });
  app.register(wsRoutes, { prefix: API_PREFIX, ctx });
  app.register(mjpegRoutes, { prefix: API_PREFIX, ctx });
  app.register(alarmsLiveRoutes, { prefix: API_PREFIX, ctx });
  app.register(assessmentsLiveRoutes, { prefix: API_PREFIX, ctx });
  app.register(dashboardRoutes);
  return app;
}
