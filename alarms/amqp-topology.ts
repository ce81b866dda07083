// The alarm topology, declared identically by every publisher and consumer on each (re)connect (amqplib's
// recovery `setup`), so whichever starts first creates it and none depends on another having run:
//   exchange vigil.alarms (topic, durable) ─ `alarm.#` → quorum queue vigil.alarms
//   vigil.alarms: manual ack, x-delivery-limit (Debian's 3.10 has none by default), at-least-once dead-lettering
//   (needs overflow=reject-publish) to vigil.alarms.dlx (fanout) → quorum queue vigil.alarms.dead.
import type { Channel, ConfirmChannel } from "amqplib";
import { ALARM_TOPOLOGY as T } from "./messages.ts";

export async function declareAlarmTopology(ch: Channel | ConfirmChannel): Promise<void> {
  await ch.assertExchange(T.exchange, "topic", { durable: true });
  await declareWorkQueue(ch, { ...T, binding: "alarm.#" });
}

/**
 * A work queue with its dead letters, as every Vigil queue has it (alarms, assessment tasks): the fanout DLX and its
 * quorum queue, then a quorum queue with manual ack's delivery limit and at-least-once dead-lettering (which needs
 * overflow=reject-publish), bound to `exchange` (declared by the caller) with `binding`. Every argument is part of a
 * queue's identity: a declare with different ones fails with PRECONDITION_FAILED, so all sides call this.
 */
export async function declareWorkQueue(
  ch: Channel | ConfirmChannel,
  q: {
    exchange: string;
    queue: string;
    binding: string;
    deadLetterExchange: string;
    deadLetterQueue: string;
    deliveryLimit: number;
  },
): Promise<void> {
  await ch.assertExchange(q.deadLetterExchange, "fanout", { durable: true });
  await ch.assertQueue(q.deadLetterQueue, { durable: true, arguments: { "x-queue-type": "quorum" } });
  await ch.bindQueue(q.deadLetterQueue, q.deadLetterExchange, "");
  await ch.assertQueue(q.queue, {
    durable: true,
    arguments: {
      "x-queue-type": "quorum",
      "x-delivery-limit": q.deliveryLimit,
      "x-dead-letter-exchange": q.deadLetterExchange,
      "x-dead-letter-strategy": "at-least-once",
      "x-overflow": "reject-publish",
    },
  });
  await ch.bindQueue(q.queue, q.exchange, q.binding);
}
