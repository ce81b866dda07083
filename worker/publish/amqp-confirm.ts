// The worker's publishers on RabbitMQ (alarms: alarms/amqp-publisher.ts; assessment tasks:
// worker/assessment/amqp-task-publisher.ts) share this edge: persistent messages to one exchange on a confirm
// channel; each message stays in the caller's outbox (alarms/outbox.ts) until the broker confirms it, and a nack or
// a lost connection sends it again. Callers only queue: detection never waits on the broker, and never sees it fail.
//
// Why amqplib's own recovery (`connect(url, { recovery: { setup } })`) and not a wrapper such as
// amqp-connection-manager: it is the client we already use for the consumers and the tests; its `setup` runs on
// every (re)connect, which is where the topology is declared and a fresh confirm channel made, so there is one code
// path for the first connection and every later one; it retries forever with capped, jittered backoff; and with
// `waitForConnect: false` a worker starts while the broker is down. What it does not do we do here: it knows
// nothing of unconfirmed messages (a wrapper's replay buffer would duplicate our outbox without its bound and its
// metrics), and it watches only the connection, so a channel closed alone by the broker closes the connection too.
import amqp, { type Channel, type ChannelModel, type ConfirmChannel } from "amqplib";
import type { Logger } from "pino";
import type { Counter, Gauge } from "prom-client";
import type { Outbox } from "../../alarms/outbox.ts";

/** What an outbox entry carries for this edge; `sends` counts basic.publish calls so far. */
export type Queued = { routingKey: string; body: Buffer; sends: number };

export type ConfirmPublisherOptions<Q extends Queued> = {
  url: string;
  log: Logger;
  /** In log lines: "alarm" / "alarms" → "alarm broker connected", "alarm publisher closed with unconfirmed alarms". */
  noun: { one: string; many: string };
  /** The AMQP connection's name in the broker's management view. */
  connectionName: string;
  exchange: string;
  /** The AMQP `type` property of every message. */
  type: string;
  /** Declares the topology on every (re)connect, before anything is sent. */
  declare(ch: Channel | ConfirmChannel): Promise<void>;
  outbox: Outbox<Q>;
  metrics: { resent: Counter; confirmed: Counter; connected: Gauge };
  /** Asked before each send: true drops the entry unsent (a task past its deadline), after `onExpired`. */
  expired?: (item: Q) => boolean;
  onExpired?: (id: string, item: Q) => void;
  /** After a nack, wait this long before sending again (a broker refusing now usually refuses a moment later). */
  nackRetryMs?: number;
  /** Cap of the reconnect backoff. */
  maxReconnectDelayMs?: number;
};

export type ConfirmPublisher = {
  /** Something was added to the outbox: send it soon (a burst in one tick is one pass). */
  flush(): void;
  connected(): boolean;
  readonly closing: boolean;
  /** Waits up to timeoutMs for the outbox to empty, then closes the connection. */
  close(timeoutMs: number): Promise<void>;
};

/** amqplib's errors name the host and port at most, but a URL's user info must never reach a log. */
export const scrubUrl = (s: string, url: string) => {
  const auth = /^[a-z+]+:\/\/([^@/]+)@/i.exec(url)?.[1];
  return auth ? s.split(auth).join("***") : s;
};

export function createConfirmPublisher<Q extends Queued>(opts: ConfirmPublisherOptions<Q>): ConfirmPublisher {
  const { log, url, outbox, noun } = opts;
  const { resent, confirmed, connected: connectedGauge } = opts.metrics;
  connectedGauge.set(0);
  const scrub = (s: string) => scrubUrl(s, url);

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
    // Coalesces a burst (several events of one frame) into one pass over the outbox.
    setImmediate(flush);
  };

  function flush(): void {
    flushQueued = false;
    const ch = channel;
    if (!ch || waitingForDrain) return;
    for (const { id, item } of outbox.unsent()) {
      if (opts.expired?.(item) && outbox.dropUnsent(id)) {
        opts.onExpired?.(id, item);
        if (outbox.size === 0) for (const done of emptied.splice(0)) done();
        continue;
      }
      const token = outbox.sent(id);
      let more: boolean;
      try {
        more = ch.publish(
          opts.exchange,
          item.routingKey,
          item.body,
          { persistent: true, messageId: id, contentType: "application/json", type: opts.type },
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
    // A nack, or the channel closed before the confirm: the message goes again, on this channel after a pause, or
    // on the next one (setup below).
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
    ch.on("error", (err: Error) => log.warn({ err: scrub(err.message) }, `${noun.one} broker channel error`));
    ch.on("close", () => {
      if (channel !== ch) return;
      channel = undefined;
      connectedGauge.set(0);
      // Recovery watches the connection only: a channel the broker closed alone would leave us connected and
      // mute. Closing the connection makes recovery start over, with a fresh channel from this setup.
      if (!closing) model.close().catch(() => undefined);
    });
    await opts.declare(ch);
    // Whatever was on the wire went with the old channel (its confirms can no longer come): send it all again.
    outbox.resendAll();
    waitingForDrain = false;
    channel = ch;
    connectedGauge.set(1);
    queueFlush();
  }

  const conn = amqp.connect(url, {
    timeout: 5000,
    clientProperties: { connection_name: opts.connectionName },
    recovery: {
      setup,
      // The worker starts, and detects, while the broker is down; messages wait in the outbox.
      waitForConnect: false,
      initialDelay: 250,
      maxDelay: opts.maxReconnectDelayMs ?? 5000,
      maxRetries: Number.POSITIVE_INFINITY,
    },
  });
  conn.then(
    (c) => {
      c.on("connect", () => {
        log.info({ pending: outbox.size }, `${noun.one} broker ${lastError ? "reconnected" : "connected"}`);
        lastError = "";
      });
      c.on("disconnect", (err: Error) => {
        lastError = scrub(err.message);
        log.warn(
          { err: lastError, pending: outbox.size },
          `${noun.one} broker disconnected; ${noun.many} wait in the outbox`,
        );
      });
      c.on("connect-failed", (err: Error) => {
        const msg = scrub(err.message);
        if (msg !== lastError) log.warn({ err: msg, pending: outbox.size }, `${noun.one} broker unavailable`);
        lastError = msg;
      });
      c.on("error", (err: Error) => log.warn({ err: scrub(err.message) }, `${noun.one} broker connection error`));
      c.on("blocked", (reason: string) => log.warn({ reason }, `${noun.one} broker blocked publishing`));
    },
    (err: Error) => log.error({ err: scrub(err.message) }, `${noun.one} broker client failed`),
  );

  return {
    flush: queueFlush,
    connected: () => channel !== undefined,
    get closing() {
      return closing;
    },
    async close(timeoutMs) {
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
      if (outbox.size > 0)
        log.warn({ lost: outbox.size }, `${noun.one} publisher closed with unconfirmed ${noun.many}`);
      clearTimeout(retryTimer);
      const c = await conn.catch(() => undefined);
      await c?.close().catch(() => undefined);
      channel = undefined;
      connectedGauge.set(0);
    },
  };
}
