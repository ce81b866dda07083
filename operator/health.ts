// /healthz, /readyz and /metrics on one small HTTP server (probes and Prometheus scrape the same port). `live`
// says whether the process can still do its work (the worker: its model thread runs frames); when it cannot,
// both probes answer 503 with the reason, so a kubelet restarts it, and it is not ready either.
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

/** Why a process is not live, or undefined when it is. */
export type Liveness = () => string | undefined;

export async function startHealthServer(opts: {
  host: string;
  port: number;
  registry: Registry;
  ready: () => boolean;
  live?: Liveness;
}): Promise<{ server: Server; port: number }> {
  const text = (res: ServerResponse, status: number, body: string) =>
    void res.writeHead(status, { "content-type": "text/plain" }).end(body);
  const server = createServer(async (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    const dead = path === "/healthz" || path === "/readyz" ? opts.live?.() : undefined;
    if (dead !== undefined) return text(res, 503, dead);
    if (path === "/healthz") return text(res, 200, "ok");
    if (path === "/readyz") return opts.ready() ? text(res, 200, "ok") : text(res, 503, "not ready");
    if (path === "/metrics") {
      const body = await opts.registry.metrics();
      return void res.writeHead(200, { "content-type": opts.registry.contentType }).end(body);
    }
    text(res, 404, "not found");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}
