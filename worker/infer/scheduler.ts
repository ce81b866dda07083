// Fair inference across cameras on one model session: each camera has at most one frame waiting, a newer frame
// replaces it (live video wants the freshest frame, not a backlog), and cameras take turns in the order their
// frames arrived, so a busy camera cannot starve a quiet one. With a batching model (concurrency > 1) several
// cameras' frames are in flight at once, but never two of one camera: its tracker must see frames in order.

export type Job = { run: () => Promise<void>; dropped: () => void };

export type InferenceScheduler = {
  submit(cameraId: string, job: Job): void;
  /** Frames waiting, for back-pressure decisions. */
  pending(cameraId: string): boolean;
  readonly stats: { ran: number; dropped: number; busy: number };
  idle(): Promise<void>;
};

export function createInferenceScheduler(concurrency = 1): InferenceScheduler {
  const waiting = new Map<string, Job>(); // insertion order = turn order
  const running = new Set<string>();
  const stats = { ran: 0, dropped: 0, busy: 0 };
  const idleWaiters: (() => void)[] = [];

  const start = (cameraId: string, job: Job) => {
    waiting.delete(cameraId);
    running.add(cameraId);
    stats.busy++;
    job
      .run()
      .catch(() => undefined) // the job reports its own errors; the scheduler must keep going
      .finally(() => {
        running.delete(cameraId);
        stats.busy--;
        stats.ran++;
        pump();
        if (stats.busy === 0 && waiting.size === 0) for (const w of idleWaiters.splice(0)) w();
      });
  };

  const pump = () => {
    for (const [cameraId, job] of waiting) {
      if (stats.busy >= concurrency) return;
      if (!running.has(cameraId)) start(cameraId, job);
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
