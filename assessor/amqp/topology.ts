// The assessment topology (assessor/messages.ts ASSESSMENT_TOPOLOGY), declared identically by the worker's task
// publisher and by `vigil assessor` on every (re)connect (amqplib's recovery `setup`), so whichever starts first
// creates it and none depends on another having run:
//   exchange vigil.assessment (topic, durable)
//     `task.#`   → quorum queue vigil.assessment.tasks: manual ack, x-delivery-limit, at-least-once dead-lettering
//                  (needs overflow=reject-publish) to vigil.assessment.dlx
//     `result.#` → quorum queue vigil.assessment.results: a feed for other systems, bounded by x-max-length with
//                  drop-head (a quorum queue's only other overflow, reject-publish, would make a feed nobody reads
//                  block the assessor's result publishes, and so its acks)
//   vigil.assessment.dlx (fanout) → quorum queue vigil.assessment.dead (the reason in x-vigil-reason)
// Every argument is part of the queue's identity: a declare with different ones fails with PRECONDITION_FAILED, so
// publishers and consumers must share this one function.
import type { Channel, ConfirmChannel } from "amqplib";
import { declareWorkQueue } from "../../alarms/amqp-topology.ts";
import { ASSESSMENT_TOPOLOGY as T } from "../messages.ts";

export const TASK_BINDING = "task.#";
export const RESULT_BINDING = "result.#";

export async function declareAssessmentTopology(ch: Channel | ConfirmChannel): Promise<void> {
  await ch.assertExchange(T.exchange, "topic", { durable: true });
  await declareWorkQueue(ch, { ...T, queue: T.tasks, binding: TASK_BINDING });
  await ch.assertQueue(T.results, {
    durable: true,
    arguments: {
      "x-queue-type": "quorum",
      "x-max-length": T.resultsMaxLength,
      "x-overflow": "drop-head",
    },
  });
  await ch.bindQueue(T.results, T.exchange, RESULT_BINDING);
}
