// Kubernetes Events for transitions, like client-go's recorder: fire-and-forget (never blocks a reconcile),
// and repeats of the same reason+message on the same object within 10 minutes bump a count instead of piling up.
import { type CoreV1Api, type CoreV1Event, PatchStrategy, setHeaderOptions } from "@kubernetes/client-node";
import type { Logger } from "pino";
import { apiError } from "./client.ts";

export type EventTarget = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string };
};
export type EventType = "Normal" | "Warning";

type Seen = { name: string; count: number; first: Date; at: number };
const REPEAT_WINDOW_MS = 10 * 60_000;

export class EventRecorder {
  private readonly seen = new Map<string, Seen>();
  private seq = 0;

  private readonly core: CoreV1Api;
  private readonly component: string;
  private readonly log: Logger | undefined;

  constructor(core: CoreV1Api, component: string, log?: Logger) {
    this.core = core;
    this.component = component;
    this.log = log;
  }

  emit(target: EventTarget, type: EventType, reason: string, message: string): void {
    void this.send(target, type, reason, message).catch((err) =>
      this.log?.warn({ err: apiError(err), reason, object: target.metadata.name }, "event not recorded"),
    );
  }

  private async send(target: EventTarget, type: EventType, reason: string, message: string): Promise<void> {
    const namespace = target.metadata.namespace ?? "default";
    const id = `${target.metadata.uid ?? `${namespace}/${target.metadata.name}`}|${type}|${reason}|${message}`;
    const now = new Date();
    const prev = this.seen.get(id);
    if (prev && now.getTime() - prev.at < REPEAT_WINDOW_MS) {
      prev.count++;
      prev.at = now.getTime();
      await this.core.patchNamespacedEvent(
        { name: prev.name, namespace, body: { count: prev.count, lastTimestamp: now } },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
      return;
    }
    const name = `${target.metadata.name}.${now.getTime().toString(16)}${(this.seq++ % 4096).toString(16)}`;
    const body: CoreV1Event = {
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: target.apiVersion,
        kind: target.kind,
        name: target.metadata.name,
        namespace,
        ...(target.metadata.uid ? { uid: target.metadata.uid } : {}),
      },
      type,
      reason,
      message,
      count: 1,
      firstTimestamp: now,
      lastTimestamp: now,
      source: { component: this.component },
      reportingComponent: this.component,
    };
    this.seen.set(id, { name, count: 1, first: now, at: now.getTime() });
    if (this.seen.size > 10_000) this.seen.delete(this.seen.keys().next().value as string);
    await this.core.createNamespacedEvent({ namespace, body });
  }
}
