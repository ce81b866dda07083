// Stopping and starting single cameras of a worker forked by `vigil up` (the gateway's POST /cameras/{id}/stop and
// /start under the local executor): a paused camera's pipeline is removed (its ffmpeg ends, its stats stop) and
// added again from the same config when started; the worker and its other cameras keep running. The parent says
// which over the IPC channel (a zod-checked "pause" message) and the worker answers each with "paused", which
// also goes out at start for every camera it was started with paused (`--paused`, so a restart keeps the state).
import type { Logger } from "pino";
import type { CameraConfig, Pipeline } from "./pipeline.ts";
import { type IpcPausedMessage, ipcPauseMessage } from "./publish/ipc-bus.ts";

export type PausedCameras = {
  /** Pauses or resumes one camera; false when this worker has no such camera. Idempotent. */
  set(id: string, paused: boolean): boolean;
  paused(): string[];
};

export function createPausedCameras(
  pipeline: Pick<Pipeline, "add" | "remove">,
  cameras: readonly CameraConfig[],
  initiallyPaused: Iterable<string>,
  log?: Logger,
): PausedCameras {
  const configs = new Map(cameras.map((c) => [c.id, c]));
  const paused = new Set([...initiallyPaused].filter((id) => configs.has(id)));
  for (const c of cameras) if (!paused.has(c.id)) pipeline.add(c);
  return {
    set(id, pause) {
      const config = configs.get(id);
      if (!config) return false;
      if (pause === paused.has(id)) return true;
      if (pause) {
        paused.add(id);
        pipeline.remove(id);
      } else {
        paused.delete(id);
        pipeline.add(config);
      }
      log?.info({ camera: id }, pause ? "camera paused" : "camera resumed");
      return true;
    },
    paused: () => [...paused],
  };
}

/** The part of `process` this uses. */
export type PauseChannel = {
  send?: ((message: unknown, callback: (err: Error | null) => void) => boolean) | undefined;
  on(event: "message", listener: (m: unknown) => void): unknown;
  off(event: "message", listener: (m: unknown) => void): unknown;
};

/**
 * Applies the parent's pause messages and answers each; announces the cameras paused at start. Returns the
 * function that stops listening.
 */
export function listenForPauses(cameras: PausedCameras, channel: PauseChannel, log?: Logger): () => void {
  const reply = (m: IpcPausedMessage) => {
    try {
      channel.send?.call(channel, m, (err) => {
        if (err) log?.debug({ err: err.message }, "pause answer not delivered");
      });
    } catch {
      // The channel closed in between: the parent is gone.
    }
  };
  const onMessage = (raw: unknown) => {
    if (typeof raw !== "object" || raw === null || (raw as { t?: unknown }).t !== "pause") return;
    const r = ipcPauseMessage.safeParse(raw);
    if (!r.success) {
      log?.warn({ why: r.error.issues[0]?.message }, "malformed pause message dropped");
      return;
    }
    const known = cameras.set(r.data.camera, r.data.paused);
    reply({ t: "paused", camera: r.data.camera, paused: r.data.paused, known });
  };
  channel.on("message", onMessage);
  for (const camera of cameras.paused()) reply({ t: "paused", camera, paused: true, known: true });
  return () => channel.off("message", onMessage);
}
