// /healthz, /readyz and /metrics on one small HTTP server (probes and Prometheus scrape the same port).
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";

export async function startHealthServer(opts: {
  host: string;
  port: number;
  registry: Registry;
  ready: () => boolean;
}): Promise<{ server: Server; port: number }> {
  const server = createServer(async (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz") return void res.writeHead(200, { "content-type": "text/plain" }).end("ok");
    if (path === "/readyz") {
      const ok = opts.ready();
      return void res.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(ok ? "ok" : "not ready");
    }
    if (path === "/metrics") {
      const body = await opts.registry.metrics();
      return void res.writeHead(200, { "content-type": opts.registry.contentType }).end(body);
    }
    res.writeHead(404, { "content-type": "text/plain" }).end("not found");
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  return { server, port: (server.address() as AddressInfo).port };
}
