// Whether the model can still run frames, from what the detector saw of its thread. Pure: the caller passes the
// time. A dead thread fails at once. A thread that is alive but has answered nothing for stallMs while frames
// wait for it (a hung native call, a wedged GPU) fails too; an idle one (no camera, a still scene the motion
// gate skips) never does.

export type ModelActivity = {
  /** Why the model thread is gone, once it is. */
  dead?: string | undefined;
  /** Frames sent to the model and not answered yet. */
  waiting: number;
  /** The last answer from the model thread, or when frames started waiting after an idle spell if later. */
  quietSince: number;
};

export type ModelHealth = { ok: true } | { ok: false; state: "dead" | "stalled"; reason: string };

/** Far above any model run measured here (YOLOv8n on 2 CPU cores: 30–45 ms a frame, a batch of 8 under 1 s),
 * and below what a kubelet adds before it acts (the worker's livenessProbe: 6 failures 10 s apart). */
export const MODEL_STALL_MS = 30_000;

export function modelHealth(a: ModelActivity, now: number, stallMs = MODEL_STALL_MS): ModelHealth {
  if (a.dead) return { ok: false, state: "dead", reason: a.dead };
  const quietMs = now - a.quietSince;
  if (a.waiting > 0 && quietMs > stallMs)
    return {
      ok: false,
      state: "stalled",
      reason: `the model thread answered nothing for ${Math.round(quietMs / 1000)} s with ${a.waiting} frame(s) waiting`,
    };
  return { ok: true };
}
