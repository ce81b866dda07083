// Fair inference across cameras on one model session: each camera has at most one frame waiting, a newer frame
// replaces it (live video wants the freshest frame, not a backlog), and cameras take turns in the order their
// frames arrived, so a busy camera cannot starve a quiet one. Up to `concurrency` frames are in flight (a batch
// being run and the next one queued at the model, so it never waits for us), at most `perCamera` of one camera;
// the model answers in order, so a camera's tracker still sees its frames in order.

export type Job = { run: () => Promise<void>; dropped: () => void };

export type InferenceScheduler = {
  submit(cameraId: string, job: Job): void;
  /** Frames waiting, for back-pressure decisions. */
  pending(cameraId: string): boolean;
  readonly stats: { ran: number; dropped: number; busy: number };
  idle(): Promise<void>;
};

export function createInferenceScheduler(concurrency = 1, perCamera = 1): InferenceScheduler {
  const waiting = new Map<string, Job>(); // insertion order = turn order
  const running = new Map<string, number>();
  const inFlight = (cameraId: string) => running.get(cameraId) ?? 0;
  const stats = { ran: 0, dropped: 0, busy: 0 };
  const idleWaiters: (() => void)[] = [];

  const start = (cameraId: string, job: Job) => {
    waiting.delete(cameraId);
    running.set(cameraId, inFlight(cameraId) + 1);
    stats.busy++;
    job
      .run()
      .catch(() => undefined) // the job reports its own errors; the scheduler must keep going
      .finally(() => {
        if (inFlight(cameraId) > 1) running.set(cameraId, inFlight(cameraId) - 1);
        else running.delete(cameraId);
        stats.busy--;
        stats.ran++;
        pump();
        if (stats.busy === 0 && waiting.size === 0) for (const w of idleWaiters.splice(0)) w();
      });
  };

  const pump = () => {
    for (const [cameraId, job] of waiting) {
      if (stats.busy >= concurrency) return;
      if (inFlight(cameraId) < perCamera) start(cameraId, job);
    }
  };

  return {
    stats,
    submit(cameraId, job) {
      const old = waiting.get(cameraId);
      if (old) {
        stats.dropped++;
        old.dropped();
      }
      waiting.set(cameraId, job); // a replacement keeps the camera's place in line
      pump();
    },
    pending: (cameraId) => waiting.has(cameraId),
    idle: () => (stats.busy === 0 && waiting.size === 0 ? Promise.resolve() : new Promise((r) => idleWaiters.push(r))),
  };
}

/** The scheduler a model's frames go through: in flight, the batch being run and the next one, already prepared
 * and queued at the model thread so it starts the moment the last run ends; two frames of one camera at most.
 * With several instances (instances.ts), each has its two, and a camera has one frame in flight: two of its frames
 * on two instances could finish out of order, and its tracker must see them in order. */
export const schedulerForModel = (maxBatch: number, instances = 1) =>
  createInferenceScheduler(2 * maxBatch * instances, instances > 1 ? 1 : 2);
