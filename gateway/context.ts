// What the gateway's encapsulated plugins share, handed to each as a plugin option.
import type { FastifyReply } from "fastify";
import type { ClipStore } from "../alarms/clips/store.ts";
import type { AlarmRecords } from "../alarms/records.ts";
import type { CameraControl } from "../operator/api/executor.ts";
import type { AssessmentSource } from "./assessments.ts";
import type { FeedCache } from "./cache.ts";
import type { BusFeed, CameraCatalog } from "./feed.ts";
import type { VideoHub } from "./live/video-hub.ts";
import type { GatewayMetrics } from "./metrics.ts";

/** Where the alarm routes read from; either may be unset, and then those routes answer 503 saying what to set. */
export type AlarmSources = {
  /** The alarm records (MySQL/MariaDB, or node:sqlite under `vigil up`). */
  records?: AlarmRecords;
  /** Snapshots and clips. */
  clips?: ClipStore;
  /** How often the live alarm streams poll the records for changes (default 1000 ms). */
  pollMs?: number;
};

export type GatewayContext = {
  feed: BusFeed;
  catalog: CameraCatalog;
  cache: FeedCache;
  hub: VideoHub;
  metrics: GatewayMetrics;
  /** SSE comment heartbeat period. */
  heartbeatMs: number;
  /** A video client's send buffer may hold this many frames; beyond it, frames are dropped for that client. */
  frameBufferFrames: number;
  /** An event stream whose client lags by more than this many bytes is closed (it resumes from the cache). */
  eventBufferBytes: number;
  /** Live HTTP streams to end when the server closes (WebSockets are closed by @fastify/websocket). */
  streams: Set<() => void>;
  alarms: AlarmSources;
  /** Assessment results (Redis, written by `vigil assessor`); noAssessments() when there is none: empty lists. */
  assessments: AssessmentSource;
  /** Starting and stopping cameras (POST /cameras/{id}/start|stop); unset: those routes answer 503. */
  control?: CameraControl;
};

export type WithContext = { ctx: GatewayContext };

/** Events of cameras the catalog serves: one Redis may carry cameras of namespaces this gateway does not serve. */
export const servedCamera = (ctx: GatewayContext) => (cameraId: string) => ctx.catalog.camera(cameraId) !== undefined;

/** The answer to a camera id the catalog does not serve, the same on REST, the live event streams and video. */
export const cameraNotFound = (reply: FastifyReply, id: string) =>
  reply.code(404).send({ error: "not_found", message: `no camera ${id}` });
