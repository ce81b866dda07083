// Bearer-token authentication for every route but the open ones (/healthz, the API docs), and token scopes.
//
// Tokens come in `Authorization: Bearer <token>`, or in the `access_token` query parameter (RFC 6750 §2.3) because
// browsers cannot set headers on EventSource, <img src> (MJPEG) or WebSocket requests. Query tokens end up in
// browser history and proxy logs, so the gateway's own logs mask them and the header is preferred everywhere else.
// Comparison is constant-time: both sides are hashed with SHA-256 (equal lengths, so timingSafeEqual applies and
// the token length does not leak) and every configured token is compared, whichever matches.
//
// Each token has a name (what logs and Kubernetes Events record: never the token) and a scope: `read` may use every
// GET route, `write` may also start and stop cameras. VIGIL_API_TOKEN entries are `name:token[:read|write]`; a plain
// `token` (the form before scopes) is read-only and named `token-<its 1-based position>`.
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";

export const TOKEN_SCOPES = ["read", "write"] as const;
export type TokenScope = (typeof TOKEN_SCOPES)[number];
/** Who a request is: its token's name and scope. */
export type TokenIdentity = { name: string; scope: TokenScope };
export type ApiToken = TokenIdentity & { token: string };

declare module "fastify" {
  interface FastifyRequest {
    /** The token the request was authenticated with; null on the open routes. */
    apiToken: TokenIdentity | null;
  }
}

/** A token name: recorded in Events and annotations, so short and plain. */
const NAME = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$/;
const NAME_RULE = "must be 1-63 letters, digits, '.', '_' or '-', starting and ending with a letter or digit";

/**
 * VIGIL_API_TOKEN's entries (the comma-separated string, or its entries, or tokens already parsed) as tokens.
 * Throws on a bad entry, naming its position and what is wrong, never its token.
 */
export function parseApiTokens(entries: string | readonly (string | ApiToken)[]): ApiToken[] {
  const list = typeof entries === "string" ? entries.split(",") : entries;
  // A trailing comma is harmless in a comma-separated list; an empty entry among others is a mistake.
  const last = list.findLastIndex((e) => typeof e !== "string" || e.trim() !== "");
  const out: ApiToken[] = [];
  const problems: string[] = [];
  const names = new Map<string, number>();
  const tokens = new Map<string, number>();
  for (const [i, entry] of list.entries()) {
    if (i > last) break;
    const problem = check(typeof entry === "string" ? parseEntry(entry.trim(), i) : entry, i + 1);
    if (problem) problems.push(`entry ${i + 1}${problem}`);
  }
  function check(parsed: ApiToken | string, position: number): string | undefined {
    if (typeof parsed === "string") return parsed;
    const { name, token, scope } = parsed;
    if (!NAME.test(name)) return `: its name (before the first ':') ${NAME_RULE}`;
    if (token === "") return ` (${name}) has an empty token`;
    if (!(TOKEN_SCOPES as readonly string[]).includes(scope))
      return ` (${name}): its scope (after the second ':') must be read or write`;
    const sameName = names.get(name);
    if (sameName !== undefined) return `: the name ${name} is also entry ${sameName}'s`;
    const sameToken = tokens.get(token);
    if (sameToken !== undefined) return ` (${name}) has the same token as entry ${sameToken}`;
    names.set(name, position);
    tokens.set(token, position);
    out.push({ name, token, scope });
    return undefined;
  }
  if (problems.length > 0) throw new Error(`VIGIL_API_TOKEN: ${problems.join("; ")}`);
  if (out.length === 0) throw new Error("VIGIL_API_TOKEN: at least one token is required");
  return out;
}

/** One entry's parts (not yet checked), or what is wrong with its shape (appended to "entry N"). */
function parseEntry(entry: string, index: number): ApiToken | string {
  if (entry === "") return " is empty";
  const parts = entry.split(":");
  if (parts.length === 1) return { name: `token-${index + 1}`, token: entry, scope: "read" };
  if (parts.length > 3) return ` has ${parts.length} ':'-separated parts; the form is name:token[:read|write]`;
  return { name: parts[0] ?? "", token: parts[1] ?? "", scope: (parts[2] ?? "read") as TokenScope };
}

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** The identity of the token presented, or undefined; every configured token is compared, in constant time. */
export function tokenVerifier(tokens: readonly ApiToken[]): (presented: string) => TokenIdentity | undefined {
  const hashes = tokens.map((t) => ({ hash: sha256(t.token), id: { name: t.name, scope: t.scope } }));
  return (presented) => {
    const h = sha256(presented);
    let found: TokenIdentity | undefined;
    for (const t of hashes) {
      const eq = timingSafeEqual(h, t.hash);
      found = eq ? t.id : found;
    }
    return found;
  };
}

/** The token a request presents: the Authorization header first, then ?access_token=. */
export function presentedToken(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization;
  if (header) {
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    return m?.[1] ?? "";
  }
  const q = req.url.indexOf("?");
  if (q < 0) return undefined;
  return new URLSearchParams(req.url.slice(q + 1)).get("access_token") ?? undefined;
}

/** A URL with its access_token value masked, for logs. */
export function redactUrl(url: string): string {
  return url.replace(/([?&]access_token=)[^&#]*/gi, "$1***");
}

export function unauthorized(reply: FastifyReply, message: string, invalid: boolean): FastifyReply {
  return reply
    .code(401)
    .header("www-authenticate", invalid ? 'Bearer realm="vigil", error="invalid_token"' : 'Bearer realm="vigil"')
    .send({ error: "unauthorized", message });
}

/** An onRequest hook: lets open paths through, else requires a valid token and sets `req.apiToken`. */
export function authHook(tokens: readonly ApiToken[], isOpen: (path: string) => boolean) {
  if (tokens.length === 0 || tokens.some((t) => t.token.length === 0))
    throw new Error("at least one non-empty API token");
  const verify = tokenVerifier(tokens);
  return async (req: FastifyRequest, reply: FastifyReply) => {
    const q = req.url.indexOf("?");
    if (isOpen(q < 0 ? req.url : req.url.slice(0, q))) return;
    const token = presentedToken(req);
    if (token === undefined)
      return unauthorized(
        reply,
        "a bearer token is required (Authorization: Bearer <token>, or ?access_token=)",
        false,
      );
    const id = verify(token);
    if (!id) return unauthorized(reply, "the token is not valid", true);
    req.apiToken = id;
  };
}

/**
 * A preHandler for routes that need the write scope: 403 naming the route, the scope and the token's name. `route`
 * is the route as documented (`POST /api/v1/cameras/{id}/stop`).
 */
export async function requireWrite(req: FastifyRequest, reply: FastifyReply) {
  const id = req.apiToken;
  if (id?.scope === "write") return;
  const route = `${req.method} ${(req.routeOptions.url ?? "").replace(/:([A-Za-z0-9_]+)/g, "{$1}")}`;
  return reply.code(403).send({
    error: "forbidden",
    message: `${route} needs a token with the write scope; token ${id?.name ?? "(none)"} has ${id?.scope ?? "none"}`,
  });
}
