// The assessments under /api/v1: recent results of all cameras, and one camera's latest and recent results, read
// from where `vigil assessor` stores them (ctx.assessments). As everywhere, only cameras this gateway serves. A
// gateway with no assessor behind it (`vigil up` without Redis) answers empty lists; a store that is configured
// and unreachable answers 503. Registered inside apiRoutes: the same per-client rate limit counts these too.
import type { FastifyReply } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { cameraNotFound, servedCamera, type WithContext } from "../context.ts";
import {
  assessmentList,
  assessmentsQuery,
  cameraAssessments,
  cameraAssessmentsQuery,
  cameraParams,
  errorBody,
} from "../schemas.ts";

const errors = { 400: errorBody, 401: errorBody, 404: errorBody, 429: errorBody, 503: errorBody };

export const assessmentRoutes: FastifyPluginAsyncZod<WithContext> = async (app, { ctx }) => {
  const served = servedCamera(ctx);
  const unavailable = (reply: FastifyReply, err: unknown) => {
    reply.log.warn({ err: String(err) }, "assessments unavailable");
    return reply
      .code(503)
      .header("retry-after", "5")
      .send({ error: "unavailable", message: "the assessment store (Redis) is unreachable; retry shortly" });
  };

  app.get(
    "/assessments",
    {
      schema: {
        summary: "Recent risk assessments of all cameras, newest first",
        description:
          "The model's answers (risk 0–3, labels, reason) with what triggered them: `trigger.event_id` is the id of the event that caused one, `trigger.kind` `sample` a periodic sample. From the assessor's store, which keeps the last 1000 over all cameras. Empty when no assessor runs behind this gateway.",
        tags: ["assessments"],
        querystring: assessmentsQuery,
        response: { 200: assessmentList, ...errors },
      },
    },
    async (req, reply) => {
      const { camera, limit, minRisk } = req.query;
      if (camera !== undefined && !served(camera)) return cameraNotFound(reply, camera);
      try {
        return {
          assessments: await ctx.assessments.recent({ camera, limit, minRisk, keep: (r) => served(r.camera_id) }),
        };
      } catch (err) {
        return unavailable(reply, err);
      }
    },
  );

  app.get(
    "/cameras/:id/assessments",
    {
      schema: {
        summary: "A camera's latest risk assessment and its recent ones, newest first",
        description:
          "`latest` whatever its risk (`minRisk` filters the list only); the assessor keeps the last 100 per camera. Empty when no assessor runs behind this gateway.",
        tags: ["assessments"],
        params: cameraParams,
        querystring: cameraAssessmentsQuery,
        response: { 200: cameraAssessments, ...errors },
      },
    },
    async (req, reply) => {
      const { id } = req.params;
      if (!served(id)) return cameraNotFound(reply, id);
      try {
        const [latest, assessments] = await Promise.all([
          ctx.assessments.latest(id),
          ctx.assessments.recent({ camera: id, limit: req.query.limit, minRisk: req.query.minRisk }),
        ]);
        return { camera: id, latest, assessments };
      } catch (err) {
        return unavailable(reply, err);
      }
    },
  );
};
