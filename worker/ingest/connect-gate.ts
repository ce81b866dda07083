// How many of a worker's streams may be connecting at once. A worker given many cameras together (its start, or
// cameras moved off a dead worker) would otherwise start every ffmpeg at the same moment: process start, codec
// probing, the RTSP handshake and the first keyframe, all competing with the model for the same cores. Measured
// (24 cameras of the 1080p RTSP fixture on 2 cores): first frames took 7–9 s, and 8–16 of the 24 went past the
// first-frame watchdog (10 s), were killed and started over, redoing the work that had been spent on them. A
// stream holds its slot from spawning ffmpeg until its first frame, or until that connection ends.
export type ConnectGate = {
  /** Resolves with the slot's release (idempotent) when one is free; first come, first served. */
  acquire(): Promise<() => void>;
  readonly active: number;
  readonly waiting: number;
};

export function createConnectGate(limit: number): ConnectGate {
  if (!(Number.isInteger(limit) && limit >= 1)) throw new Error(`connect limit ${limit}: must be an integer ≥ 1`);
  let active = 0;
  const queue: ((release: () => void) => void)[] = [];
  const slot = () => {
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const next = queue.shift();
      if (next) next(slot());
      else active--;
    };
  };
  return {
    acquire() {
      if (active < limit) {
        active++;
        return Promise.resolve(slot());
      }
      return new Promise((resolve) => queue.push(resolve));
    },
    get active() {
      return active;
    },
    get waiting() {
      return queue.length;
    },
  };
}
