// The gateway's own metrics (the feed and the cache register theirs beside them in the same registry).
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export type GatewayMetrics = {
  registry: Registry;
  httpDuration: Histogram<"method" | "route" | "status">;
  wsClients: Gauge<"stream">;
  streamClients: Gauge<"stream">;
  framesDropped: Counter<"transport">;
  streamsClosedSlow: Counter<"transport">;
};

export function gatewayMetrics(registry: Registry): GatewayMetrics {
  const m: GatewayMetrics = {
    registry,
    httpDuration: new Histogram({
      name: "http_request_duration_seconds",
      help: "HTTP request duration (live streams: until the stream ends)",
      labelNames: ["method", "route", "status"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    wsClients: new Gauge({
      name: "vigil_gateway_ws_clients",
      help: "Connected WebSocket clients",
      labelNames: ["stream"],
      registers: [registry],
    }),
    streamClients: new Gauge({
      name: "vigil_gateway_http_stream_clients",
      help: "Connected HTTP streaming clients (SSE, MJPEG)",
      labelNames: ["stream"],
      registers: [registry],
    }),
    framesDropped: new Counter({
      name: "vigil_gateway_frames_dropped_total",
      help: "Video frames not sent to a client because its buffer was still full",
      labelNames: ["transport"],
      registers: [registry],
    }),
    streamsClosedSlow: new Counter({
      name: "vigil_gateway_slow_event_clients_closed_total",
      help: "Event streams closed because the client fell too far behind (it resumes from the cache)",
      labelNames: ["transport"],
      registers: [registry],
    }),
  };
  for (const stream of ["events", "video", "assessments"]) m.wsClients.set({ stream }, 0);
  for (const stream of ["events", "video", "assessments"]) m.streamClients.set({ stream }, 0);
  for (const transport of ["ws", "mjpeg"]) m.framesDropped.inc({ transport }, 0);
  return m;
}
