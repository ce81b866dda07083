// The worker's /healthz, /readyz and /metrics on one port (the pod's probes and Prometheus scrape it). Unlike
// the operator's (operator/health.ts), liveness here means something: the model can still run frames. A worker
// whose model thread died or hangs answers 503 with the reason, so a kubelet restarts it; readiness needs it too.
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { ModelHealth } from "./infer/model-health.ts";

export async function startWorkerHealthServer(opts: {
  host: string;
  port: number;
  registry: Registry;
  /** The assigned cameras are known (in a pod: the informer has synced). */
  ready: () => boolean;
  live: () => ModelHealth;
}): Promise<{ server: Server; port: number }> {
  const text = (res: ServerResponse, status: number, body: string) =>
    void res.writeHead(status, { "content-type": "text/plain" }).end(body);
  const server = createServer(async (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/healthz") {
      const h = opts.live();
      return h.ok ? text(res, 200, "ok") : text(res, 503, `model ${h.state}: ${h.reason}`);
    }
    if (path === "/readyz") {
      const h = opts.live();
      if (!h.ok) return text(res, 503, `model ${h.state}: ${h.reason}`);
      return opts.ready() ? text(res, 200, "ok") : text(res, 503, "not ready");
    }
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
