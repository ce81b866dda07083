// The REST API under /api/v1: cameras (catalog summary and status merged with the latest stats from the bus),
// their stats and events, all events, pools; starting and stopping cameras (write tokens); the caller's token
// (/me). Rate limited per client address (the live endpoints are not).
import rateLimit from "@fastify/rate-limit";
import type { FastifyReply } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { requireWrite } from "../auth.ts";
import { cameraNotFound, servedCamera, type WithContext } from "../context.ts";
import type { CameraSummary } from "../feed.ts";
import {
  type CameraView,
  cameraParams,
  cameraView,
  errorBody,
  eventMessage,
  eventsQuery,
  parseSince,
  poolSummary,
  statsMessage,
  tokenIdentity,
} from "../schemas.ts";
import { alarmRoutes } from "./alarms.ts";
import { assessmentRoutes } from "./assessments.ts";

export type ApiOptions = WithContext & { rateLimitPerMinute: number };

const notFound = (reply: FastifyReply, message: string) => reply.code(404).send({ error: "not_found", message });

export const apiRoutes: FastifyPluginAsyncZod<ApiOptions> = async (app, { ctx, rateLimitPerMinute }) => {
  if (rateLimitPerMinute > 0)
    await app.register(rateLimit, {
      max: rateLimitPerMinute,
      timeWindow: 60_000,
      errorResponseBuilder: (_req, c) => ({
        statusCode: c.statusCode,
        error: "rate_limited",
        message: `more than ${c.max} requests per minute; retry in ${c.after}`,
      }),
    });

  const view = (c: CameraSummary): CameraView => ({ ...c, stats: ctx.cache.stats(c.id) ?? null });
  const served = servedCamera(ctx);
  const tags = ["cameras"];
  const errors = { 400: errorBody, 401: errorBody, 429: errorBody };

  app.get(
    "/cameras",
    {
      schema: {
        summary: "All cameras: spec summary, status and latest stats",
        tags,
        response: { 200: z.object({ cameras: z.array(cameraView) }), ...errors },
      },
    },
    async () => ({ cameras: ctx.catalog.cameras().map(view) }),
  );

  app.get(
    "/cameras/:id",
    {
      schema: {
        summary: "One camera: spec summary, status and latest stats",
        tags,
        params: cameraParams,
        response: { 200: cameraView, 404: errorBody, ...errors },
      },
    },
    async (req, reply) => {
      const c = ctx.catalog.camera(req.params.id);
      return c ? view(c) : cameraNotFound(reply, req.params.id);
    },
  );

  // Starting and stopping: the intent, whichever executor serves it (gateway/control-kube.ts in a cluster, the local
  // executor under `vigil up`). 202: the change is asked for; the phase follows as the executor makes it so.
  for (const [action, paused] of [
    ["stop", true],
    ["start", false],
  ] as const)
    app.post(
      `/cameras/:id/${action}`,
      {
        preHandler: requireWrite,
        schema: {
          summary: paused
            ? "Stop a camera: its pipeline stops, its phase becomes Paused"
            : "Start a stopped camera again",
          description: `Needs a token with the write scope (403 otherwise). Answers 202 with the camera's summary, \`paused\` ${paused} (its phase follows once the ${paused ? "pipeline has stopped" : "camera has a worker again"}). ${paused ? "Stopping a stopped" : "Starting a running"} camera is not an error. In a cluster this sets the CameraDetection's spec.paused, and the operator records an Event naming the token. 503 when this gateway cannot control cameras (a manifest catalog).`,
          tags,
          params: cameraParams,
          response: { 202: cameraView, 403: errorBody, 404: errorBody, 503: errorBody, ...errors },
        },
      },
      async (req, reply) => {
        const { id } = req.params;
        if (!ctx.control)
          return reply.code(503).send({
            error: "unavailable",
            message:
              "this gateway cannot start or stop cameras: its catalog is a manifest file, not the Kubernetes API",
          });
        const c = ctx.catalog.camera(id);
        if (!c) return cameraNotFound(reply, id);
        const done = await ctx.control.setPaused(id, paused, req.apiToken?.name ?? "");
        if (done === "not-found") return cameraNotFound(reply, id);
        req.log.info({ camera: id, action, token: req.apiToken?.name }, "camera control");
        return reply.code(202).send({ ...view(ctx.catalog.camera(id) ?? c), paused });
      },
    );

  app.get(
    "/cameras/:id/stats",
    {
      schema: {
        summary: "A camera's latest stats message (404 until its worker has published one)",
        tags,
        params: cameraParams,
        response: { 200: statsMessage, 404: errorBody, ...errors },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      if (!ctx.catalog.camera(id)) return cameraNotFound(reply, id);
      return ctx.cache.stats(id) ?? notFound(reply, `no stats for camera ${id} yet`);
    },
  );

  app.get(
    "/cameras/:id/events",
    {
      schema: {
        summary: "A camera's recent events",
        description:
          "With `since`: the first `limit` events after it, oldest first (page forward with the last timestamp). Without: the latest `limit`, oldest first. The gateway keeps the last 1000 events per camera.",
        tags,
        params: cameraParams,
        querystring: eventsQuery,
        response: { 200: z.object({ events: z.array(eventMessage) }), 404: errorBody, ...errors },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      if (!ctx.catalog.camera(id)) return cameraNotFound(reply, id);
      return { events: ctx.cache.events({ camera: id, since: parseSince(req.query.since), limit: req.query.limit }) };
    },
  );

  app.get(
    "/events",
    {
      schema: {
        summary: "Recent events of all cameras",
        description: "Same paging as a camera's events, over the last 1000 events of all cameras.",
        tags: ["events"],
        querystring: eventsQuery,
        response: { 200: z.object({ events: z.array(eventMessage) }), ...errors },
      },
    },
    async (req) => ({
      events: ctx.cache.events({
        since: parseSince(req.query.since),
        limit: req.query.limit,
        keep: (e) => served(e.camera_id),
      }),
    }),
  );

  app.get(
    "/me",
    {
      schema: {
        summary: "The token this request was made with: its name and scope",
        description: "A dashboard shows the start and stop controls only for a `write` token.",
        tags: ["auth"],
        response: { 200: tokenIdentity, ...errors },
      },
    },
    async (req) => req.apiToken ?? { name: "", scope: "read" as const },
  );

  app.get(
    "/pools",
    {
      schema: {
        summary: "Detector pools: model, sizing and status",
        tags: ["pools"],
        response: { 200: z.object({ pools: z.array(poolSummary) }), ...errors },
      },
    },
    async () => ({ pools: ctx.catalog.pools() }),
  );

  // Inside this plugin: the alarm routes share its rate limit.
  await app.register(alarmRoutes, { ctx });
  await app.register(assessmentRoutes, { ctx });
};
