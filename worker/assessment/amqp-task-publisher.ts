// The worker's assessment task publisher on RabbitMQ: persistent messages to the `vigil.assessment` topic exchange
// (`task.<ns>.<name>`, into the quorum queue vigil.assessment.tasks) on a confirm channel, through the same edge as
// alarms (worker/publish/amqp-confirm.ts): each task stays in the outbox until the broker confirms it, and a nack
// or a lost connection sends it again. publish() only queues; detection never waits on the broker.
//
// Unlike alarms, a task is worth less the older it gets (it has a deadline, and the assessor drops it once that has
// passed), so while the broker is away the outbox keeps the newest: past the camera's bound, or the whole outbox's,
// the oldest task not on the wire is dropped and counted; a task past its deadline is dropped before it is sent.
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import { createOutbox } from "../../alarms/outbox.ts";
import { declareAssessmentTopology } from "../../assessor/amqp/topology.ts";
import { ASSESSMENT_TOPOLOGY, type AssessmentTask, taskRoutingKey } from "../../assessor/messages.ts";
import { createConfirmPublisher, type Queued } from "../publish/amqp-confirm.ts";

export type TaskPublisher = {
  /** Queues a (validated) task; never throws, never waits. */
  publish(task: AssessmentTask): void;
  /** Tasks not yet confirmed by the broker. */
  pending(): number;
  /** Waits up to timeoutMs for the outbox to reach the broker, then disconnects. */
  close(timeoutMs?: number): Promise<void>;
};

export type AmqpTaskPublisherOptions = {
  url: string;
  registry: Registry;
  log: Logger;
  /** Unconfirmed tasks kept in all (VIGIL_ASSESSMENT_OUTBOX_MAX). */
  outboxMax?: number;
  /** Unconfirmed tasks kept per camera (VIGIL_ASSESSMENT_OUTBOX_PER_CAMERA). */
  perCameraMax?: number;
  nackRetryMs?: number;
  maxReconnectDelayMs?: number;
  now?: () => number;
};

type QueuedTask = Queued & { camera: string; deadlineMs: number };

export function createAmqpTaskPublisher(opts: AmqpTaskPublisherOptions): TaskPublisher & { connected(): boolean } {
  const { log } = opts;
  const now = opts.now ?? Date.now;
  const max = opts.outboxMax ?? 1000;
  const perCamera = opts.perCameraMax ?? 100;
  const registers = [opts.registry];
  const outbox = createOutbox<QueuedTask>(max);
  /** Per camera, its tasks' ids in arrival order (those confirmed meanwhile are pruned on the next add). */
  const byCamera = new Map<string, Set<string>>();
  const published = new Counter({
    name: "vigil_assessment_tasks_published_total",
    help: "Assessment tasks handed to the publisher (into the outbox)",
    registers,
  });
  const resent = new Counter({
    name: "vigil_assessment_tasks_resent_total",
    help: "Assessment tasks sent to the broker again, after a nack or a lost connection (the assessor deduplicates by id)",
    registers,
  });
  const confirmed = new Counter({
    name: "vigil_assessment_tasks_confirmed_total",
    help: "Assessment tasks the broker confirmed (each task once)",
    registers,
  });
  const dropped = new Counter({
    name: "vigil_assessment_tasks_dropped_total",
    help: "Assessment tasks dropped before the broker had them: camera_bound and outbox_full (the oldest unsent gave way, or the new one when all were on the wire), stale (past its deadline)",
    labelNames: ["reason"],
    registers,
  });
  for (const reason of ["camera_bound", "outbox_full", "stale"]) dropped.inc({ reason }, 0);
  new Gauge({
    name: "vigil_assessment_tasks_outbox",
    help: "Assessment tasks waiting in the outbox for the broker's confirm",
    registers,
    collect() {
      this.set(outbox.size);
    },
  });
  const connected = new Gauge({
    name: "vigil_assessment_broker_connected",
    help: "1 while the assessment broker connection and its confirm channel are up",
    registers,
  });
  const edge = createConfirmPublisher<QueuedTask>({
    url: opts.url,
    log,
    noun: { one: "assessment task", many: "assessment tasks" },
    connectionName: "vigil-worker assessments",
    exchange: ASSESSMENT_TOPOLOGY.exchange,
    type: "assessment.task",
    declare: declareAssessmentTopology,
    outbox,
    metrics: { resent, confirmed, connected },
    expired: (item) => now() > item.deadlineMs,
    onExpired: (id, item) => {
      dropped.inc({ reason: "stale" });
      log.warn(
        { task: id, camera: item.camera },
        "assessment task past its deadline before the broker had it; dropped",
      );
    },
    ...(opts.nackRetryMs !== undefined ? { nackRetryMs: opts.nackRetryMs } : {}),
    ...(opts.maxReconnectDelayMs !== undefined ? { maxReconnectDelayMs: opts.maxReconnectDelayMs } : {}),
  });

  /** Drops the oldest unsent task among `ids`; false when every one is on the wire. */
  function dropOldest(ids: Iterable<string>): boolean {
    for (const id of ids) if (outbox.dropUnsent(id)) return true;
    return false;
  }

  function makeRoom(camera: string, ids: Set<string>): "camera_bound" | "outbox_full" | undefined {
    for (const id of ids) if (!outbox.has(id)) ids.delete(id);
    if (ids.size >= perCamera) {
      if (!dropOldest(ids)) return "camera_bound";
      dropped.inc({ reason: "camera_bound" });
      log.warn({ camera, max: perCamera }, "assessment tasks of this camera backed up; the oldest dropped");
    }
    if (outbox.size >= max) {
      if (!dropOldest(outbox.unsent().map((e) => e.id))) return "outbox_full";
      dropped.inc({ reason: "outbox_full" });
      log.warn({ max }, "assessment task outbox full; the oldest dropped");
    }
    return undefined;
  }

  return {
    publish(task) {
      try {
        if (edge.closing) {
          log.warn({ task: task.id }, "assessment task after the publisher closed; dropped");
          return;
        }
        if (outbox.has(task.id)) return;
        const ids = byCamera.get(task.camera_id) ?? new Set<string>();
        byCamera.set(task.camera_id, ids);
        const refused = makeRoom(task.camera_id, ids);
        if (refused) {
          dropped.inc({ reason: refused });
          log.warn({ task: task.id }, "assessment tasks all on the wire and the outbox full; this one dropped");
          return;
        }
        const r = outbox.add(task.id, {
          routingKey: taskRoutingKey(task.camera_id),
          body: Buffer.from(JSON.stringify(task)),
          sends: 0,
          camera: task.camera_id,
          deadlineMs: Date.parse(task.deadline),
        });
        if (r !== "added") return;
        ids.add(task.id);
        published.inc();
        edge.flush();
      } catch (err) {
        log.error({ task: task.id, err: (err as Error).message }, "assessment task not queued");
      }
    },
    pending: () => outbox.size,
    connected: edge.connected,
    close: (timeoutMs = 10_000) => edge.close(timeoutMs),
  };
}
