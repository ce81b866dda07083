// Starting and stopping cameras (the scheduler's intent API) and who the caller is: POST /cameras/{id}/start and
// /stop hand the wish to ctx.control (the local executor under `vigil up`, the CameraDetection's spec.paused in a
// cluster) and answer 202 with the camera's summary; GET /me says the token's name and scope, for the dashboard.
//
// A minimal stand-in for the token scopes of issue 13 (helper A's gateway/auth.ts replaces the parsing and the
// request's identity): `VIGIL_API_TOKEN` entries are `name:token[:read|write]`, read by default; an entry without
// ':' is the old plain form, read-only and named `token-<1-based index>`.
import type { FastifyRequest } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import { z } from "zod";
import { presentedToken, tokenVerifier } from "../auth.ts";
import { cameraNotFound, type WithContext } from "../context.ts";
import { cameraParams, cameraView, errorBody } from "../schemas.ts";

export type TokenScope = "read" | "write";
export type ApiToken = { name: string; token: string; scope: TokenScope };

/** The entries of VIGIL_API_TOKEN; a bad entry is an error naming its position, never its token. */
export function parseTokenEntries(entries: readonly string[]): ApiToken[] {
  return entries.map((entry, i) => {
    const parts = entry.split(":");
    if (parts.length === 1) return { name: `token-${i + 1}`, token: entry, scope: "read" };
    const [name = "", token = "", scope = "read"] = parts;
    if (parts.length > 3 || !name || !token || (scope !== "read" && scope !== "write"))
      throw new Error(`API token entry ${i + 1}: expected name:token[:read|write]`);
    return { name, token, scope };
  });
}

/** The configured token a request presents, compared in constant time against each. */
function identify(tokens: readonly ApiToken[]): (req: FastifyRequest) => ApiToken | undefined {
  const verifiers = tokens.map((t) => ({ t, verify: tokenVerifier([t.token]) }));
  return (req) => {
    const presented = presentedToken(req);
    if (presented === undefined) return undefined;
    let found: ApiToken | undefined;
    for (const { t, verify } of verifiers) if (verify(presented)) found = t;
    return found;
  };
}

export type ControlOptions = WithContext & { tokens: readonly ApiToken[] };

export const controlRoutes: FastifyPluginAsyncZod<ControlOptions> = async (app, { ctx, tokens }) => {
  const who = identify(tokens);
  const errors = { 401: errorBody };

  app.get(
    "/me",
    {
      schema: {
        summary: "The calling token's name and scope (write may start and stop cameras)",
        tags: ["auth"],
        response: { 200: z.object({ name: z.string(), scope: z.enum(["read", "write"]) }), ...errors },
      },
    },
    async (req) => {
      // The auth hook let the request through: one of the tokens matches.
      const t = who(req) as ApiToken;
      return { name: t.name, scope: t.scope };
    },
  );

  for (const action of ["start", "stop"] as const)
    app.post(
      `/cameras/:id/${action}`,
      {
        schema: {
          summary: action === "stop" ? "Stop a camera's detection (idempotent)" : "Start a camera again (idempotent)",
          description:
            "Needs a token with the write scope. Under `vigil up` the camera's pipeline stops or starts in its worker; in a cluster the gateway sets the CameraDetection's spec.paused.",
          tags: ["cameras"],
          params: cameraParams,
          response: { 202: cameraView, 403: errorBody, 404: errorBody, 503: errorBody, ...errors },
        },
      },
      async (req, reply) => {
        const t = who(req) as ApiToken;
        if (t.scope !== "write")
          return reply.code(403).send({
            error: "forbidden",
            message: `POST /api/v1/cameras/{id}/${action} needs a token with the write scope; token ${t.name} has ${t.scope}`,
          });
        const { id } = req.params;
        if (!ctx.control)
          return reply
            .code(503)
            .send({ error: "unavailable", message: "this gateway cannot start or stop cameras (no executor)" });
        if (!ctx.catalog.camera(id)) return cameraNotFound(reply, id);
        const result = await ctx.control.setPaused(id, action === "stop", t.name);
        const c = result === "done" ? ctx.catalog.camera(id) : undefined;
        if (!c) return cameraNotFound(reply, id);
        return reply.code(202).send({ ...c, stats: ctx.cache.stats(c.id) ?? null });
      },
    );
};
