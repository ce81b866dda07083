// The alarm queue's two ends, behind small interfaces: RabbitMQ in a cluster (amqp-publisher.ts, amqp-consumer.ts),
// an embedded node:sqlite queue under `vigil up` (sqlite-queue.ts). Both are at-least-once: a message leaves the
// queue only when its handler says so, and a consumer that dies returns its unacked messages.
import type { AlarmMessage } from "./messages.ts";

export interface AlarmPublisher {
  /**
   * Queues an alarm for the broker and returns at once: detection never waits. Unconfirmed alarms sit in a
   * bounded outbox until the broker confirms them (publisher confirms); what overflows is counted and dropped.
   */
  publish(m: AlarmMessage): void;
  /** Alarms not yet confirmed. */
  pending(): number;
  /** Waits up to `timeoutMs` for the outbox to drain, then closes. */
  close(timeoutMs?: number): Promise<void>;
}

export type Delivery = {
  /** The raw body; the consumer validates it (messages.ts) and dead-letters what does not parse. */
  body: Buffer;
  /** False guarantees a first delivery; true means it may have been handled before. */
  redelivered: boolean;
  /** How many times the queue has delivered it before (x-delivery-count), when the queue knows. */
  deliveryCount: number;
};

export type Outcome =
  | { kind: "ack" }
  /** To the dead-letter queue with the reason (a header there), then acked. */
  | { kind: "dead"; reason: string }
  /** Back to the queue for another try (counts toward the delivery limit). */
  | { kind: "requeue" }
  /**
   * Left unsettled (shutting down mid-step): the queue gives it back when this consumer goes (RabbitMQ when the
   * channel closes, the embedded queue when the lease is released or expires), with no ack and no requeue-nack.
   */
  | { kind: "abandon" };

export interface AlarmConsumer {
  /** Runs `handle` for each delivery, up to `prefetch` at once; the outcome settles the message. */
  start(handle: (d: Delivery) => Promise<Outcome>): Promise<void>;
  /** Messages ready and dead-lettered, for the DLQ-depth metric. */
  depth(): Promise<{ ready: number; dead: number }>;
  close(): Promise<void>;
}
