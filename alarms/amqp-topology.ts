// The alarm topology, declared identically by every publisher and consumer on each (re)connect (amqplib's
// recovery `setup`), so whichever starts first creates it and none depends on another having run:
//   exchange vigil.alarms (topic, durable) ─ `alarm.#` → quorum queue vigil.alarms
//   vigil.alarms: manual ack, x-delivery-limit (Debian's 3.10 has none by default), at-least-once dead-lettering
//   (needs overflow=reject-publish) to vigil.alarms.dlx (fanout) → quorum queue vigil.alarms.dead.
import type { Channel, ConfirmChannel } from "amqplib";
import { ALARM_TOPOLOGY as T } from "./messages.ts";

export async function declareAlarmTopology(ch: Channel | ConfirmChannel): Promise<void> {
  await ch.assertExchange(T.exchange, "topic", { durable: true });
  await ch.assertExchange(T.deadLetterExchange, "fanout", { durable: true });
  await ch.assertQueue(T.deadLetterQueue, { durable: true, arguments: { "x-queue-type": "quorum" } });
  await ch.bindQueue(T.deadLetterQueue, T.deadLetterExchange, "");
  await ch.assertQueue(T.queue, {
    durable: true,
    arguments: {
      "x-queue-type": "quorum",
      "x-delivery-limit": T.deliveryLimit,
      "x-dead-letter-exchange": T.deadLetterExchange,
      "x-dead-letter-strategy": "at-least-once",
      "x-overflow": "reject-publish",
    },
  });
  await ch.bindQueue(T.queue, T.exchange, "alarm.#");
}
