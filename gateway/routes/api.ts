// The REST API under /api/v1: cameras (catalog summary and status merged with the latest stats from the bus),
// their stats and events, all events, pools. Rate limited per client address (the live endpoints are not).
import rateLimit from "@fastify/rate-limit";
import type { FastifyReply } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
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
} from "../schemas.ts";
import { alarmRoutes } from "./alarms.ts";

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
};
