// The worker's alarm publisher on RabbitMQ: persistent messages to the `vigil.alarms` topic exchange on a confirm
// channel; each alarm stays in the outbox (outbox.ts) until the broker confirms it, and a nack or a lost connection
// sends it again. publish() only queues: detection never waits on the broker, and never sees it fail.
//
// Why amqplib's own recovery (`connect(url, { recovery: { setup } })`) and not a wrapper such as
// amqp-connection-manager: it is the client we already use for the consumer and the tests; its `setup` runs on
// every (re)connect, which is where the topology is declared and a fresh confirm channel made, so there is one code
// path for the first connection and every later one; it retries forever with capped, jittered backoff; and with
// `waitForConnect: false` a worker starts while the broker is down. What it does not do we do here: it knows
// nothing of unconfirmed messages (a wrapper's replay buffer would duplicate our outbox without its bound and its
// metrics), and it watches only the connection, so a channel closed alone by the broker closes the connection too.
import amqp, { type ChannelModel, type ConfirmChannel } from "amqplib";
import type { Logger } from "pino";
import { Counter, Gauge, type Registry } from "prom-client";
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

type Queued = { routingKey: string; body: Buffer /** basic.publish calls so far */; sends: number };

/** amqplib's errors name the host and port at most, but a URL's user info must never reach a log. */
const scrub = (s: string, url: string) => {
  const auth = /^[a-z+]+:\/\/([^@/]+)@/i.exec(url)?.[1];
  return auth ? s.split(auth).join("***") : s;
};

export function createAmqpAlarmPublisher(opts: AmqpPublisherOptions): AlarmPublisher & { connected(): boolean } {
  const { log, url } = opts;
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
  const connectedGauge = new Gauge({
    name: "vigil_alarms_broker_connected",
    help: "1 while the alarm broker connection and its confirm channel are up",
    registers,
  });
  connectedGauge.set(0);

  let channel: ConfirmChannel | undefined;
  let waitingForDrain = false;
  let flushQueued = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let closing = false;
  let lastError = "";
  const emptied: (() => void)[] = [];

  const queueFlush = () => {
    if (flushQueued) return;
    flushQueued = true;
    // Coalesces a burst of alarms (several events of one frame) into one pass over the outbox.
    setImmediate(flush);
  };

  function flush(): void {
    flushQueued = false;
    const ch = channel;
    if (!ch || waitingForDrain) return;
    for (const { id, item } of outbox.unsent()) {
      const token = outbox.sent(id);
      let more: boolean;
      try {
        more = ch.publish(
          ALARM_TOPOLOGY.exchange,
          item.routingKey,
          item.body,
          { persistent: true, messageId: id, contentType: "application/json", type: "alarm" },
          (err) => settle(id, token, err),
        );
      } catch {
        // The channel closed under us (its callback was never registered): back in line for the next channel.
        outbox.retry(id, token);
        return;
      }
      if (++item.sends > 1) resent.inc();
      if (!more) {
        // The socket's buffer is full: wait for it to drain rather than buffer the whole outbox in memory twice.
        waitingForDrain = true;
        ch.once("drain", () => {
          waitingForDrain = false;
          queueFlush();
        });
        return;
      }
    }
  }

  function settle(id: string, token: number, err: unknown): void {
    if (!err) {
      if (outbox.confirm(id)) confirmed.inc();
      if (outbox.size === 0) for (const done of emptied.splice(0)) done();
      return;
    }
    // A nack, or the channel closed before the confirm: the alarm goes again, on this channel after a pause, or on
    // the next one (setup below).
    if (outbox.retry(id, token) && channel && !retryTimer) {
      retryTimer = setTimeout(() => {
        retryTimer = undefined;
        queueFlush();
      }, opts.nackRetryMs ?? 1000);
      retryTimer.unref();
    }
  }

  async function setup(model: ChannelModel): Promise<void> {
    const ch = await model.createConfirmChannel();
    ch.on("error", (err: Error) => log.warn({ err: scrub(err.message, url) }, "alarm broker channel error"));
    ch.on("close", () => {
      if (channel !== ch) return;
      channel = undefined;
      connectedGauge.set(0);
      // Recovery watches the connection only: a channel the broker closed alone would leave us connected and
      // mute. Closing the connection makes recovery start over, with a fresh channel from this setup.
      if (!closing) model.close().catch(() => undefined);
    });
    await declareAlarmTopology(ch);
    // Whatever was on the wire went with the old channel (its confirms can no longer come): send it all again.
    outbox.resendAll();
    waitingForDrain = false;
    channel = ch;
    connectedGauge.set(1);
    queueFlush();
  }

  const conn = amqp.connect(url, {
    timeout: 5000,
    clientProperties: { connection_name: "vigil-worker alarms" },
    recovery: {
      setup,
      // The worker starts, and detects, while the broker is down; alarms wait in the outbox.
      waitForConnect: false,
      initialDelay: 250,
      maxDelay: opts.maxReconnectDelayMs ?? 5000,
      maxRetries: Number.POSITIVE_INFINITY,
    },
  });
  conn.then(
    (c) => {
      c.on("connect", () => {
        log.info({ pending: outbox.size }, lastError ? "alarm broker reconnected" : "alarm broker connected");
        lastError = "";
      });
      c.on("disconnect", (err: Error) => {
        lastError = scrub(err.message, url);
        log.warn({ err: lastError, pending: outbox.size }, "alarm broker disconnected; alarms wait in the outbox");
      });
      c.on("connect-failed", (err: Error) => {
        const msg = scrub(err.message, url);
        if (msg !== lastError) log.warn({ err: msg, pending: outbox.size }, "alarm broker unavailable");
        lastError = msg;
      });
      c.on("error", (err: Error) => log.warn({ err: scrub(err.message, url) }, "alarm broker connection error"));
      c.on("blocked", (reason: string) => log.warn({ reason }, "alarm broker blocked publishing"));
    },
    (err: Error) => log.error({ err: scrub(err.message, url) }, "alarm broker client failed"),
  );

  return {
    publish(m: AlarmMessage) {
      try {
        if (closing) {
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
          queueFlush();
        }
      } catch (err) {
        log.error({ alarm: m.id, err: (err as Error).message }, "alarm not queued");
      }
    },
    pending: () => outbox.size,
    connected: () => channel !== undefined,
    async close(timeoutMs = 10_000) {
      if (closing) return;
      closing = true;
      if (outbox.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          emptied.push(resolve);
          timer = setTimeout(resolve, timeoutMs);
        });
        clearTimeout(timer);
      }
      if (outbox.size > 0) log.warn({ lost: outbox.size }, "alarm publisher closed with unconfirmed alarms");
      clearTimeout(retryTimer);
      const c = await conn.catch(() => undefined);
      await c?.close().catch(() => undefined);
      channel = undefined;
      connectedGauge.set(0);
    },
  };
}
