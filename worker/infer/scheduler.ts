// Fair inference across cameras on one model session (our fixture has a fixed batch of 1): each camera has at
// most one frame waiting, a newer frame replaces it (live video wants the freshest frame, not a backlog), and
// cameras take turns in the order their frames arrived, so a busy camera cannot starve a quiet one.

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
  const stats = { ran: 0, dropped: 0, busy: 0 };
  const idleWaiters: (() => void)[] = [];

  const pump = () => {
    while (stats.busy < concurrency && waiting.size > 0) {
      const [cameraId, job] = waiting.entries().next().value as [string, Job];
      waiting.delete(cameraId);
      stats.busy++;
      job
        .run()
        .catch(() => undefined) // the job reports its own errors; the scheduler must keep going
        .finally(() => {
          stats.busy--;
          stats.ran++;
          pump();
          if (stats.busy === 0 && waiting.size === 0) for (const w of idleWaiters.splice(0)) w();
        });
    }
  };

  return {
    stats,
    submit(cameraId, job) {
      const old = waiting.get(cameraId);
      if (old) {
        stats.dropped++;
        old.dropped();
        waiting.set(cameraId, job); // keeps the camera's place in line
      } else waiting.set(cameraId, job);
      pump();
    },
    pending: (cameraId) => waiting.has(cameraId),
    idle: () => (stats.busy === 0 && waiting.size === 0 ? Promise.resolve() : new Promise((r) => idleWaiters.push(r))),
  };
}
