// The alarm queue's consumer end on RabbitMQ (amqplib 2.x). One connection with amqplib's own recovery: after
// every (re)connect its `setup` opens a confirm channel, declares the topology (amqp-topology.ts), sets the
// prefetch and starts consuming, so a restarted broker or a dropped connection needs nothing else from us.
// Manual ack, and only when the handler says so; a `dead` outcome is a copy published to the dead-letter
// exchange with the reason in x-vigil-reason, acked only after the broker confirms the copy. A delivery whose
// channel died while its handler ran cannot be settled any more: RabbitMQ gives it to a consumer again.
import amqp, {
  type Channel,
  type ChannelModel,
  type ConfirmChannel,
  type ConsumeMessage,
  type RecoveringChannelModel,
} from "amqplib";
import type { Logger } from "pino";
import { declareAlarmTopology } from "./amqp-topology.ts";
import { ALARM_TOPOLOGY as T } from "./messages.ts";
import type { AlarmConsumer, Delivery, Outcome } from "./queue.ts";

export type AmqpConsumerOptions = {
  /** Unacked deliveries RabbitMQ gives this consumer at once. */
  prefetch?: number;
  log?: Logger;
};

/** Headers a dead-lettered copy carries beside the original's. */
export const DEAD_HEADERS = { reason: "x-vigil-reason", failedAt: "x-vigil-failed-at" } as const;

export type AmqpAlarmConsumer = AlarmConsumer & {
  /** Connected and consuming (the readiness probe). */
  connected(): boolean;
};

export function createAmqpAlarmConsumer(url: string, opts: AmqpConsumerOptions = {}): AmqpAlarmConsumer {
  const prefetch = opts.prefetch ?? 64;
  const log = opts.log;
  let conn: RecoveringChannelModel | undefined;
  /** The channel consuming now; deliveries of an older one cannot be settled. */
  let current: { ch: ConfirmChannel; open: boolean; tag?: string } | undefined;
  let stopping = false;
  const inflight = new Set<Promise<void>>();

  const connect = (handle: (d: Delivery) => Promise<Outcome>) =>
    amqp.connect(url, {
      recovery: {
        initialDelay: 200,
        maxDelay: 5_000,
        // Return at once: the health server is up meanwhile, and readiness says whether we consume.
        waitForConnect: false,
        setup: async (model: ChannelModel) => {
          const ch = await model.createConfirmChannel();
          const state: { ch: ConfirmChannel; open: boolean; tag?: string } = { ch, open: true };
          ch.on("error", (err: Error) => log?.warn({ err: err.message }, "alarm channel error"));
          ch.on("close", () => {
            state.open = false;
            // A channel closed under a live connection (a channel error: an unknown delivery tag, RabbitMQ's
            // consumer timeout) is not recovered by amqplib; closing the connection makes it reconnect and
            // run this setup again.
            if (!stopping) model.close().catch(() => {});
          });
          await declareAlarmTopology(ch);
          await ch.prefetch(prefetch);
          const { consumerTag } = await ch.consume(T.queue, (msg) => onMessage(state, msg, handle), { noAck: false });
          state.tag = consumerTag;
          current = state;
          log?.info({ queue: T.queue, prefetch }, "consuming alarms");
        },
      },
    });

  function onMessage(
    state: { ch: ConfirmChannel; open: boolean },
    msg: ConsumeMessage | null,
    handle: (d: Delivery) => Promise<Outcome>,
  ): void {
    if (msg === null) {
      // Cancelled by the broker (the queue was deleted): reconnect, and the setup declares it again.
      log?.warn("alarm consumer cancelled by the broker");
      if (!stopping) state.ch.close().catch(() => {});
      return;
    }
    const count = Number(msg.properties.headers?.["x-delivery-count"] ?? 0);
    const d: Delivery = {
      body: msg.content,
      redelivered: msg.fields.redelivered,
      deliveryCount: Number.isFinite(count) ? count : 0,
    };
    const run = handle(d)
      .catch((err): Outcome => {
        log?.error({ err: err instanceof Error ? err.message : String(err) }, "alarm handler failed; requeued");
        return { kind: "requeue" };
      })
      .then((o) => settle(state, msg, o))
      .catch((err) => log?.warn({ err: String(err) }, "alarm delivery not settled; RabbitMQ redelivers it"))
      .finally(() => inflight.delete(run));
    inflight.add(run);
  }

  async function settle(state: { ch: ConfirmChannel; open: boolean }, msg: ConsumeMessage, o: Outcome) {
    if (o.kind === "abandon") return;
    if (!state.open) {
      log?.info({ outcome: o.kind }, "alarm delivery's channel closed; RabbitMQ redelivers it");
      return;
    }
    const { ch } = state;
    if (o.kind === "ack") return ch.ack(msg);
    if (o.kind === "requeue") return ch.nack(msg, false, true);
    const { "x-delivery-count": _count, ...headers } = msg.properties.headers ?? {};
    try {
      await new Promise<void>((resolve, reject) =>
        ch.publish(
          T.deadLetterExchange,
          msg.fields.routingKey,
          msg.content,
          {
            persistent: true,
            contentType: msg.properties.contentType,
            messageId: msg.properties.messageId,
            timestamp: msg.properties.timestamp,
            headers: {
              ...headers,
              [DEAD_HEADERS.reason]: o.reason.slice(0, 1000),
              [DEAD_HEADERS.failedAt]: new Date().toISOString(),
            },
          },
          (err) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve()),
        ),
      );
    } catch (err) {
      // Not confirmed: keep the original (never ack without the copy), try again later.
      log?.warn({ err: String(err) }, "dead-letter copy not confirmed; requeued");
      if (state.open) ch.nack(msg, false, true);
      return;
    }
    if (state.open) ch.ack(msg);
  }

  let probe: Promise<Channel> | undefined;
  return {
    async start(handle) {
      conn = await connect(handle);
      conn.on("error", (err: Error) => log?.warn({ err: err.message }, "alarm connection error"));
      conn.on("disconnect", (err: Error) => log?.warn({ err: err.message }, "alarm broker disconnected"));
      conn.on("connect-failed", (err: Error) => log?.warn({ err: err.message }, "alarm broker unreachable"));
    },
    connected: () => current?.open === true,
    async depth() {
      if (!conn) throw new Error("not started");
      const c = conn;
      // A plain channel of its own: checkQueue on a queue that is gone would close the consuming one.
      probe ??= c.createChannel().then((ch) => {
        ch.on("error", () => {});
        ch.on("close", () => {
          probe = undefined;
        });
        return ch;
      });
      const ch = await probe;
      const [q, dead] = [await ch.checkQueue(T.queue), await ch.checkQueue(T.deadLetterQueue)];
      return { ready: q.messageCount, dead: dead.messageCount };
    },
    async close() {
      stopping = true;
      const c = current;
      if (c?.open && c.tag) await c.ch.cancel(c.tag).catch(() => {});
      // The service aborts its handlers before this; what they leave unsettled returns when the channel closes.
      await Promise.allSettled([...inflight]);
      await conn?.close().catch(() => {});
    },
  };
}
