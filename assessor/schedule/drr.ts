// The assessor's scheduler core: which waiting task goes to the key pool next. Pure (time comes in as an argument),
// so fairness, bounds and deadlines are tested with a fake clock.
//
// - One queue per camera, in arrival order. Deficit round robin (Shreedhar & Varghese) across the cameras that have
//   work: each turn a camera earns `quantum` and spends a task's `cost` per task it sends, so a camera with 50 tasks
//   waiting gets the same share as one with 2, and a camera whose tasks cost more (more images, more tokens) gets
//   proportionally fewer of them.
// - Two tiers: tasks with priority "alarm" (from alarm-severity rules) are served before any "normal" task, with
//   their own round robin, so one camera's alarms cannot starve another camera's alarms either.
// - A bound per camera (AssessmentPool spec.maxTasksPerCamera, both tiers together): a push into a full camera drops
//   its oldest normal task (an alarm outranks a normal task; an alarm is dropped only for a newer alarm, and a
//   normal task pushed into a camera full of alarms is itself the one dropped): `dropped-overflow`.
// - A task whose deadline has passed is never handed out: `next` drops it (`dropped-stale`) and looks further;
//   `expire` sweeps every queue so the counts (and acks) come even while no key is free.

export type Priority = "alarm" | "normal";
export type DropReason = "dropped-stale" | "dropped-overflow";

export type Scheduled<T> = {
  id: string;
  cameraId: string;
  priority: Priority;
  /** Epoch ms; at or after this the task is stale. */
  deadline: number;
  /** What a send costs in the camera's deficit (default 1: round robin by task). */
  cost?: number;
  item: T;
};

export type Dropped<T> = { reason: DropReason; task: Scheduled<T> };

type Lane<T> = { tasks: Scheduled<T>[]; deficit: number; inRing: boolean; fresh: boolean };
type Camera<T> = { id: string; lanes: Record<Priority, Lane<T>> };

const TIERS: readonly Priority[] = ["alarm", "normal"];

export type DrrOptions = {
  /** Tasks kept per camera, both tiers together. */
  maxPerCamera: number;
  /** Deficit a camera earns per turn; tasks cost 1 unless they say otherwise. */
  quantum?: number;
};

export class DrrScheduler<T> {
  #cameras = new Map<string, Camera<T>>();
  #rings: Record<Priority, string[]> = { alarm: [], normal: [] };
  #size = 0;
  #maxPerCamera: number;
  readonly #quantum: number;

  constructor(opts: DrrOptions) {
    if (!(opts.maxPerCamera >= 1)) throw new Error("maxPerCamera must be at least 1");
    this.#maxPerCamera = opts.maxPerCamera;
    this.#quantum = opts.quantum ?? 1;
    if (!(this.#quantum > 0)) throw new Error("quantum must be positive");
  }

  get size(): number {
    return this.#size;
  }

  /** Tasks waiting for one camera. */
  sizeOf(cameraId: string): number {
    const c = this.#cameras.get(cameraId);
    return c ? c.lanes.alarm.tasks.length + c.lanes.normal.tasks.length : 0;
  }

  /** A new bound (the pool's spec changed): cameras over it lose their oldest tasks at their next push. */
  setMaxPerCamera(n: number): void {
    if (!(n >= 1)) throw new Error("maxPerCamera must be at least 1");
    this.#maxPerCamera = n;
  }

  /** Queues a task; returns what the bound dropped (possibly the task itself). */
  push(task: Scheduled<T>): Dropped<T>[] {
    const cam = this.#camera(task.cameraId);
    const dropped: Dropped<T>[] = [];
    const lane = cam.lanes[task.priority];
    lane.tasks.push(task);
    this.#size++;
    this.#enter(cam, task.priority);
    while (cam.lanes.alarm.tasks.length + cam.lanes.normal.tasks.length > this.#maxPerCamera) {
      // The oldest normal task goes first; only a camera full of alarms loses its oldest alarm.
      const from: Priority = cam.lanes.normal.tasks.length > 0 ? "normal" : "alarm";
      const victim = cam.lanes[from].tasks.shift() as Scheduled<T>;
      this.#size--;
      dropped.push({ reason: "dropped-overflow", task: victim });
      this.#leaveIfEmpty(cam, from);
    }
    return dropped;
  }

  /**
   * The next task to send at `now`, or undefined when nothing (fresh) waits; stale tasks met on the way are
   * dropped and returned.
   */
  next(now: number): { task?: Scheduled<T>; dropped: Dropped<T>[] } {
    const dropped: Dropped<T>[] = [];
    for (const tier of TIERS) {
      const ring = this.#rings[tier];
      while (ring.length > 0) {
        const cam = this.#cameras.get(ring[0] as string) as Camera<T>;
        const lane = cam.lanes[tier];
        while (lane.tasks.length > 0 && (lane.tasks[0] as Scheduled<T>).deadline <= now) {
          dropped.push({ reason: "dropped-stale", task: lane.tasks.shift() as Scheduled<T> });
          this.#size--;
        }
        if (lane.tasks.length === 0) {
          this.#leave(cam, tier);
          continue;
        }
        if (lane.fresh) {
          lane.deficit += this.#quantum;
          lane.fresh = false;
        }
        const head = lane.tasks[0] as Scheduled<T>;
        const cost = head.cost ?? 1;
        if (lane.deficit >= cost) {
          lane.deficit -= cost;
          lane.tasks.shift();
          this.#size--;
          // An emptied lane forgets its deficit (DRR: an idle flow banks nothing); one with deficit left keeps the
          // turn for its next task, one without yields it.
          if (lane.tasks.length === 0) this.#leave(cam, tier);
          else if (lane.deficit < ((lane.tasks[0] as Scheduled<T>).cost ?? 1)) this.#rotate(tier, lane);
          return { task: head, dropped };
        }
        this.#rotate(tier, lane);
      }
    }
    return { dropped };
  }

  /** Drops every stale task (not only those at a queue's head). */
  expire(now: number): Dropped<T>[] {
    const dropped: Dropped<T>[] = [];
    for (const cam of this.#cameras.values()) {
      for (const tier of TIERS) {
        const lane = cam.lanes[tier];
        if (lane.tasks.length === 0) continue;
        const keep: Scheduled<T>[] = [];
        for (const t of lane.tasks) {
          if (t.deadline <= now) dropped.push({ reason: "dropped-stale", task: t });
          else keep.push(t);
        }
        this.#size -= lane.tasks.length - keep.length;
        lane.tasks = keep;
        this.#leaveIfEmpty(cam, tier);
      }
    }
    return dropped;
  }

  /** Removes (without counting them as drops) the tasks `pred` picks: deliveries of a channel that closed. */
  removeWhere(pred: (t: Scheduled<T>) => boolean): Scheduled<T>[] {
    const removed: Scheduled<T>[] = [];
    for (const cam of this.#cameras.values()) {
      for (const tier of TIERS) {
        const lane = cam.lanes[tier];
        const keep: Scheduled<T>[] = [];
        for (const t of lane.tasks) (pred(t) ? removed : keep).push(t);
        this.#size -= lane.tasks.length - keep.length;
        lane.tasks = keep;
        this.#leaveIfEmpty(cam, tier);
      }
    }
    return removed;
  }

  /** Every waiting task (shutdown: they are left unacked). */
  drain(): Scheduled<T>[] {
    return this.removeWhere(() => true);
  }

  #camera(id: string): Camera<T> {
    let c = this.#cameras.get(id);
    if (!c) {
      const lane = (): Lane<T> => ({ tasks: [], deficit: 0, inRing: false, fresh: true });
      c = { id, lanes: { alarm: lane(), normal: lane() } };
      this.#cameras.set(id, c);
    }
    return c;
  }

  #enter(cam: Camera<T>, tier: Priority): void {
    const lane = cam.lanes[tier];
    if (lane.inRing) return;
    lane.inRing = true;
    lane.fresh = true;
    lane.deficit = 0;
    this.#rings[tier].push(cam.id);
  }

  /** Takes the lane at the ring's head out of its ring. */
  #leave(cam: Camera<T>, tier: Priority): void {
    const ring = this.#rings[tier];
    if (ring[0] === cam.id) ring.shift();
    else ring.splice(ring.indexOf(cam.id), 1);
    cam.lanes[tier].inRing = false;
    cam.lanes[tier].deficit = 0;
    this.#forgetIfIdle(cam);
  }

  #leaveIfEmpty(cam: Camera<T>, tier: Priority): void {
    if (cam.lanes[tier].tasks.length === 0 && cam.lanes[tier].inRing) this.#leave(cam, tier);
  }

  /** The head's turn is over: to the ring's tail, with a fresh quantum at its next turn. */
  #rotate(tier: Priority, lane: Lane<T>): void {
    const ring = this.#rings[tier];
    ring.push(ring.shift() as string);
    lane.fresh = true;
  }

  /** A camera with nothing waiting is forgotten, so churned camera ids do not accumulate. */
  #forgetIfIdle(cam: Camera<T>): void {
    if (!cam.lanes.alarm.inRing && !cam.lanes.normal.inRing) this.#cameras.delete(cam.id);
  }
}
