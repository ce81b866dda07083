// Bearer-token authentication for every route but the open ones (/healthz, the API docs).
//
// Tokens come in `Authorization: Bearer <token>`, or in the `access_token` query parameter (RFC 6750 §2.3) because
// browsers cannot set headers on EventSource, <img src> (MJPEG) or WebSocket requests. Query tokens end up in
// browser history and proxy logs, so the gateway's own logs mask them and the header is preferred everywhere else.
// Comparison is constant-time: both sides are hashed with SHA-256 (equal lengths, so timingSafeEqual applies and
// the token length does not leak) and every configured token is compared, whichever matches.
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest } from "fastify";

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest();

export function tokenVerifier(tokens: readonly string[]): (presented: string) => boolean {
  const hashes = tokens.map(sha256);
  return (presented) => {
    const h = sha256(presented);
    let ok = 0;
    for (const t of hashes) ok |= timingSafeEqual(h, t) ? 1 : 0;
    return ok === 1;
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

/** An onRequest hook: lets open paths through, else requires a valid token. */
export function authHook(tokens: readonly string[], isOpen: (path: string) => boolean) {
  if (tokens.length === 0 || tokens.some((t) => t.length === 0)) throw new Error("at least one non-empty API token");
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
    if (!verify(token)) return unauthorized(reply, "the token is not valid", true);
  };
}
