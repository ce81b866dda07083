// Fair inference across cameras on one model session: each camera has at most one frame waiting, a newer frame
// replaces it (live video wants the freshest frame, not a backlog), and the camera served longest ago goes next
// (never-served first, then by its last start), so a busy camera cannot starve a quiet one and, when the model
// cannot keep up, every camera gets the same share of it. Taking turns in the order frames arrived was not fair
// under overload: a camera whose next frame came while its last was still in flight stood at the head of the line
// when that one finished, and went again at once. Simulated in test/unit/scheduler.test.ts (24 cameras at 1 fps,
// 2 instances carrying 22.2 frames a second of the 24): 27–49 of 50 frames a camera in arrival order, 45–46 this
// way. Up to `concurrency` frames are in flight (a batch being run and the next one queued at the model, so it
// never waits for us), at most `perCamera` of one camera; the model answers in order, so a camera's tracker still
// sees its frames in order.

export type Job = { run: () => Promise<void>; dropped: () => void };

export type InferenceScheduler = {
  submit(cameraId: string, job: Job): void;
  /** Frames waiting, for back-pressure decisions. */
  pending(cameraId: string): boolean;
  readonly stats: { ran: number; dropped: number; busy: number };
  idle(): Promise<void>;
};

/** Cameras whose last start is remembered; far more than one worker carries. */
const REMEMBERED = 4096;

export function createInferenceScheduler(concurrency = 1, perCamera = 1): InferenceScheduler {
  const waiting = new Map<string, Job>(); // insertion order breaks ties between cameras never served
  const running = new Map<string, number>();
  // Each camera's last start, as a count of starts (no clock: the order is all that matters). Kept in
  // least-recent-first order and bounded, so cameras removed long ago do not pile up in a worker that runs for months.
  const lastStart = new Map<string, number>();
  let starts = 0;
  const inFlight = (cameraId: string) => running.get(cameraId) ?? 0;
  const stats = { ran: 0, dropped: 0, busy: 0 };
  const idleWaiters: (() => void)[] = [];

  const start = (cameraId: string, job: Job) => {
    waiting.delete(cameraId);
    lastStart.delete(cameraId);
    lastStart.set(cameraId, starts++);
    if (lastStart.size > REMEMBERED) lastStart.delete(lastStart.keys().next().value as string);
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

  /** The waiting camera that may start and was served longest ago (never served: -1, first come first). */
  const next = (): [string, Job] | undefined => {
    let best: [string, Job] | undefined;
    let bestAt = Number.POSITIVE_INFINITY;
    for (const [cameraId, job] of waiting) {
      if (inFlight(cameraId) >= perCamera) continue;
      const at = lastStart.get(cameraId) ?? -1;
      if (at < bestAt) [best, bestAt] = [[cameraId, job], at];
    }
    return best;
  };

  const pump = () => {
    while (stats.busy < concurrency) {
      const turn = next();
      if (!turn) return;
      start(...turn);
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
      waiting.set(cameraId, job); // a replacement keeps its place among the never-served
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
