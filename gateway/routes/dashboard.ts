// The dashboard: a static page at / with its script and stylesheet under /dashboard/ (files in gateway/dashboard/).
// They hold no data and are served without a token (app.ts lists DASHBOARD_PATHS as open); the page takes the
// token from its own URL (?access_token=) and sends it with every API, event and video request it makes.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { FastifyPluginAsync } from "fastify";

const FILES: Record<string, [file: string, type: string]> = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/dashboard/app.js": ["app.js", "text/javascript; charset=utf-8"],
  "/dashboard/alarms.js": ["alarms.js", "text/javascript; charset=utf-8"],
  "/dashboard/assessments.js": ["assessments.js", "text/javascript; charset=utf-8"],
  "/dashboard/style.css": ["style.css", "text/css; charset=utf-8"],
};

/** The dashboard's own paths: open, unlike every API route. */
export const DASHBOARD_PATHS: ReadonlySet<string> = new Set(Object.keys(FILES));

// The token sits in the page's URL: no Referer may carry it elsewhere, and the page loads nothing but the gateway's
// own script, style, API, event stream and video (blob: for frames that arrive over the video WebSocket), and the
// alarms' snapshots and clips (media-src: the clip's <video>).
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' blob:",
  "media-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

export const dashboardRoutes: FastifyPluginAsync = async (app) => {
  const dir = new URL("../dashboard/", import.meta.url);
  for (const [path, [file, type]] of Object.entries(FILES)) {
    const body = readFileSync(new URL(file, dir));
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
    app.get(path, { schema: { hide: true } }, async (req, reply) => {
      reply
        .header("content-type", type)
        .header("cache-control", "no-cache")
        .header("etag", etag)
        .header("x-content-type-options", "nosniff")
        .header("referrer-policy", "no-referrer");
      if (path === "/") reply.header("content-security-policy", CSP).header("x-frame-options", "DENY");
      if (req.headers["if-none-match"] === etag) return reply.code(304).send();
      return reply.send(body);
    });
  }
};
