// The task queue's consumer end on RabbitMQ (amqplib 2.x), after alarms/amqp-consumer.ts: one connection with
// amqplib's own recovery, whose `setup` opens a confirm channel, declares the topology, sets the prefetch and
// consumes, on every (re)connect. Unlike the alarm consumer it does not run a handler per message: the assessor
// holds deliveries in its scheduler's queues (seconds, under overload), so each delivery is handed out with its own
// settle functions, bound to the channel it came on. Results, alarms and dead-letter copies are published on that
// same confirm channel and awaited: when it dies before the ack, the broker redelivers the task and the done marker
// (or the consumers' dedup by id) absorbs the repeat. A delivery of a closed channel cannot be settled any more;
// `onChannelLost` tells the service to forget the ones it still holds.
import amqp, {
  type Channel,
  type ChannelModel,
  type ConfirmChannel,
  type ConsumeMessage,
  type RecoveringChannelModel,
} from "amqplib";
import type { Logger } from "pino";
import { ASSESSMENT_TOPOLOGY as T } from "../messages.ts";
import { declareAssessmentTopology } from "./topology.ts";

/** Headers a dead-lettered copy carries beside the original's (the alarm service's names). */
export const DEAD_HEADERS = { reason: T.reasonHeader, failedAt: "x-vigil-failed-at" } as const;

export type PublishProps = { messageId?: string; type?: string; headers?: Record<string, unknown> };

export type TaskDelivery = {
  body: Buffer;
  routingKey: string;
  redelivered: boolean;
  deliveryCount: number;
  /** The channel it came on (a counter); deliveries of a lost channel are redelivered by the broker. */
  channel: number;
  /** Its channel is still open, so it can still be settled. */
  live(): boolean;
  ack(): void;
  /** Back to the queue (counts toward the delivery limit). */
  requeue(): void;
  /** Persistent publish on the delivery's confirm channel; resolves once the broker confirmed it. */
  publish(exchange: string, routingKey: string, body: Buffer, props?: PublishProps): Promise<void>;
  /** A copy to the dead-letter exchange with the reason, confirmed, then the ack. */
  dead(reason: string): Promise<void>;
};

export type TaskConsumerOptions = {
  url: string;
  prefetch: number;
  log: Logger;
  onDelivery(d: TaskDelivery): void;
  onChannelLost?(channel: number): void;
  /** Extra topology this connection declares on each (re)connect (the alarm exchange, when alarms are raised). */
  declare?: (ch: ConfirmChannel) => Promise<void>;
};

export type TaskConsumer = {
  start(): Promise<void>;
  /** Connected and consuming (the readiness probe). */
  connected(): boolean;
  depth(): Promise<{ ready: number; dead: number }>;
  /** Stops new deliveries; what is held stays settleable until close. */
  stopConsuming(): Promise<void>;
  close(): Promise<void>;
};

/** amqplib's errors name the host and port at most, but a URL's user info must never reach a log. */
export const scrubUrl = (s: string, url: string) => {
  const auth = /^[a-z+]+:\/\/([^@/]+)@/i.exec(url)?.[1];
  return auth ? s.split(auth).join("***") : s;
};

type State = { ch: ConfirmChannel; open: boolean; tag?: string; n: number };

export function createTaskConsumer(opts: TaskConsumerOptions): TaskConsumer {
  const { log, url } = opts;
  let model: RecoveringChannelModel | undefined;
  let current: State | undefined;
  let stopping = false;
  let consuming = true;
  let generation = 0;

  const publishOn = (state: State, exchange: string, routingKey: string, body: Buffer, props: PublishProps = {}) =>
    new Promise<void>((resolve, reject) => {
      if (!state.open) return reject(new Error("channel closed"));
      try {
        state.ch.publish(
          exchange,
          routingKey,
          body,
          { persistent: true, contentType: "application/json", ...props },
          (err) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve()),
        );
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });

  function delivery(state: State, msg: ConsumeMessage): TaskDelivery {
    const count = Number(msg.properties.headers?.["x-delivery-count"] ?? 0);
    let settled = false;
    const once = (f: () => void) => {
      if (settled || !state.open) return;
      settled = true;
      f();
    };
    return {
      body: msg.content,
      routingKey: msg.fields.routingKey,
      redelivered: msg.fields.redelivered,
      deliveryCount: Number.isFinite(count) ? count : 0,
      channel: state.n,
      live: () => state.open && !settled,
      ack: () => once(() => state.ch.ack(msg)),
      requeue: () => once(() => state.ch.nack(msg, false, true)),
      publish: (exchange, routingKey, body, props) => publishOn(state, exchange, routingKey, body, props),
      async dead(reason) {
        const { "x-delivery-count": _c, ...headers } = msg.properties.headers ?? {};
        await publishOn(state, T.deadLetterExchange, msg.fields.routingKey, msg.content, {
          ...(msg.properties.messageId ? { messageId: msg.properties.messageId } : {}),
          ...(msg.properties.type ? { type: msg.properties.type } : {}),
          headers: {
            ...headers,
            [DEAD_HEADERS.reason]: reason.slice(0, 1000),
            [DEAD_HEADERS.failedAt]: new Date().toISOString(),
          },
        });
        once(() => state.ch.ack(msg));
      },
    };
  }

  async function setup(m: ChannelModel): Promise<void> {
    const ch = await m.createConfirmChannel();
    const state: State = { ch, open: true, n: ++generation };
    ch.on("error", (err: Error) => log.warn({ err: scrubUrl(err.message, url) }, "assessment channel error"));
    ch.on("close", () => {
      state.open = false;
      if (current === state) current = undefined;
      opts.onChannelLost?.(state.n);
      // A channel closed under a live connection (an unknown delivery tag, the broker's consumer timeout) is not
      // recovered by amqplib; closing the connection makes it reconnect and run this setup again.
      if (!stopping) m.close().catch(() => {});
    });
    await declareAssessmentTopology(ch);
    await opts.declare?.(ch);
    await ch.prefetch(opts.prefetch);
    current = state;
    if (!consuming) return;
    const { consumerTag } = await ch.consume(
      T.tasks,
      (msg) => {
        if (msg === null) {
          // Cancelled by the broker (the queue was deleted): reconnect, and the setup declares it again.
          log.warn("assessment consumer cancelled by the broker");
          if (!stopping) ch.close().catch(() => {});
          return;
        }
        opts.onDelivery(delivery(state, msg));
      },
      { noAck: false },
    );
    state.tag = consumerTag;
    log.info({ queue: T.tasks, prefetch: opts.prefetch, channel: state.n }, "consuming assessment tasks");
  }

  let probe: Promise<Channel> | undefined;
  return {
    async start() {
      const m = await amqp.connect(url, {
        timeout: 5000,
        clientProperties: { connection_name: "vigil-assessor" },
        recovery: {
          setup,
          initialDelay: 200,
          maxDelay: 5_000,
          maxRetries: Number.POSITIVE_INFINITY,
          // Return at once: the health server is up meanwhile, and readiness says whether we consume.
          waitForConnect: false,
        },
      });
      model = m;
      m.on("error", (err: Error) => log.warn({ err: scrubUrl(err.message, url) }, "assessment broker error"));
      m.on("disconnect", (err: Error) =>
        log.warn({ err: scrubUrl(err.message, url) }, "assessment broker disconnected"),
      );
      m.on("connect-failed", (err: Error) =>
        log.warn({ err: scrubUrl(err.message, url) }, "assessment broker unreachable"),
      );
    },
    connected: () => current?.open === true && current.tag !== undefined,
    async depth() {
      if (!model) throw new Error("not started");
      const m = model;
      // A plain channel of its own: a failed checkQueue closes the channel it ran on.
      probe ??= m.createChannel().then((ch) => {
        ch.on("error", () => {});
        ch.on("close", () => {
          probe = undefined;
        });
        return ch;
      });
      const ch = await probe;
      const [q, dead] = [await ch.checkQueue(T.tasks), await ch.checkQueue(T.deadLetterQueue)];
      return { ready: q.messageCount, dead: dead.messageCount };
    },
    async stopConsuming() {
      consuming = false;
      const c = current;
      if (c?.open && c.tag) await c.ch.cancel(c.tag).catch(() => {});
    },
    async close() {
      stopping = true;
      consuming = false;
      // What is still unsettled returns to the queue when the channel closes.
      await model?.close().catch(() => {});
    },
  };
}
