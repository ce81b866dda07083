// A named controller: a rate-limited workqueue of keys, N workers and controller-runtime's metrics around a reconcile.
import type { Logger } from "pino";
import { apiError } from "./client.ts";
import {
  activeWorkers,
  initReconcileMetrics,
  maxConcurrent,
  reconcileErrors,
  reconcileTime,
  reconcileTotal,
  workqueueMetrics,
} from "./metrics.ts";
import { type ReconcileResult, runWorkers, WorkQueue } from "./workqueue.ts";

export type Reconcile = (key: string) => Promise<ReconcileResult | undefined>;

export class Controller {
  readonly queue: WorkQueue;
  readonly name: string;
  private readonly reconcile: Reconcile;
  private readonly opts: { concurrency: number; log: Logger };

  constructor(name: string, reconcile: Reconcile, opts: { concurrency: number; log: Logger }) {
    this.name = name;
    this.reconcile = reconcile;
    this.opts = opts;
    this.queue = new WorkQueue({ name, metrics: workqueueMetrics(name) });
    maxConcurrent.set({ controller: name }, opts.concurrency);
    initReconcileMetrics(name);
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  /** Runs until stop(); resolves once in-flight reconciles have finished. */
  run(): Promise<void> {
    const controller = this.name;
    return runWorkers(
      this.queue,
      this.opts.concurrency,
      async (key) => {
        activeWorkers.inc({ controller });
        const end = reconcileTime.startTimer({ controller });
        try {
          const result = await this.reconcile(key);
          const kind = result?.requeueAfterMs ? "requeue_after" : result?.requeue ? "requeue" : "success";
          reconcileTotal.inc({ controller, result: kind });
          return result;
        } finally {
          end();
          activeWorkers.dec({ controller });
        }
      },
      (key, err) => {
        reconcileTotal.inc({ controller, result: "error" });
        reconcileErrors.inc({ controller });
        this.opts.log.warn({ controller, key, err: apiError(err) }, "reconcile failed");
      },
    );
  }

  stop(): void {
    this.queue.shutDown();
  }
}
