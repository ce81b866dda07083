// The worker's alarm publisher on RabbitMQ: persistent messages to the `vigil.alarms` topic exchange on a confirm
// channel; each alarm stays in the outbox (outbox.ts) until the broker confirms it, and a nack or a lost connection
// sends it again. publish() only queues: detection never waits on the broker, and never sees it fail. The
// connection, its recovery and the confirms are worker/publish/amqp-confirm.ts, shared with assessment tasks.
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
import { createConfirmPublisher, type Queued } from "../worker/publish/amqp-confirm.ts";
import { declareAlarmTopology } from "./amqp-topology.ts";
import { ALARM_TOPOLOGY, type AlarmMessage, alarmRoutingKey } from "./messages.ts";
import { createOutbox } from "./outbox.ts";
import type { AlarmPublisher } from "./queue.ts";

export type AmqpPublisherOptions = {
  url: string;
  registry: Registry;
  log: Logger;
  /** Unconfirmed alarms kept while the broker is away (VIGIL_ALARM_OUTBOX_MAX); more are counted and dropped. */
  outboxMax?: number;
  /** After a nack, wait this long before sending again (a broker refusing now usually refuses a moment later). */
  nackRetryMs?: number;
  /** Cap of the reconnect backoff. */
  maxReconnectDelayMs?: number;
};

export function createAmqpAlarmPublisher(opts: AmqpPublisherOptions): AlarmPublisher & { connected(): boolean } {
  const { log } = opts;
  const registers = [opts.registry];
  const outbox = createOutbox<Queued>(opts.outboxMax ?? 10_000);
  // The same names and meanings as the embedded queue's publisher (sqlite-queue.ts), so one dashboard fits both.
  const published = new Counter({
    name: "vigil_alarms_published_total",
    help: "Alarms handed to the publisher (into the outbox)",
    registers,
  });
  const resent = new Counter({
    name: "vigil_alarms_resent_total",
    help: "Alarms sent to the broker again, after a nack or a lost connection (the consumer deduplicates by id)",
    registers,
  });
  const confirmed = new Counter({
    name: "vigil_alarms_confirmed_total",
    help: "Alarms the broker confirmed (each alarm once)",
    registers,
  });
  new Gauge({
    name: "vigil_alarms_outbox",
    help: "Alarms waiting in the outbox for the broker's confirm",
    registers,
    collect() {
      this.set(outbox.size);
    },
  });
  const overflow = new Counter({
    name: "vigil_alarms_outbox_overflow_total",
    help: "Alarms dropped because the outbox was full (the broker was away too long)",
    registers,
  });
  const connected = new Gauge({
    name: "vigil_alarms_broker_connected",
    help: "1 while the alarm broker connection and its confirm channel are up",
    registers,
  });
  const edge = createConfirmPublisher({
    url: opts.url,
    log,
    noun: { one: "alarm", many: "alarms" },
    connectionName: "vigil-worker alarms",
    exchange: ALARM_TOPOLOGY.exchange,
    type: "alarm",
    declare: declareAlarmTopology,
    outbox,
    metrics: { resent, confirmed, connected },
    ...(opts.nackRetryMs !== undefined ? { nackRetryMs: opts.nackRetryMs } : {}),
    ...(opts.maxReconnectDelayMs !== undefined ? { maxReconnectDelayMs: opts.maxReconnectDelayMs } : {}),
  });

  return {
    publish(m: AlarmMessage) {
      try {
        if (edge.closing) {
          log.warn({ alarm: m.id }, "alarm after the publisher closed; dropped");
          return;
        }
        const r = outbox.add(m.id, {
          routingKey: alarmRoutingKey(m.camera_id),
          body: Buffer.from(JSON.stringify(m)),
          sends: 0,
        });
        if (r === "overflow") {
          overflow.inc();
          log.warn({ alarm: m.id, max: opts.outboxMax ?? 10_000 }, "alarm outbox full; alarm dropped");
        } else if (r === "added") {
          published.inc();
          edge.flush();
        }
      } catch (err) {
        log.error({ alarm: m.id, err: (err as Error).message }, "alarm not queued");
      }
    },
    pending: () => outbox.size,
    connected: edge.connected,
    close: (timeoutMs = 10_000) => edge.close(timeoutMs),
  };
}
