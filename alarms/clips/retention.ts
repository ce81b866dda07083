// Clip-store retention: snapshots and clips older than the age limit go, then the oldest until the store is under
// its size limit. Run by every alarm-service replica (a sweep is idempotent: removing what another replica removed
// is a no-op), at start and then every `everyMs`. A clip swept before its alarm's alarm.clip went out is the size
// limit doing its job: the alarm is then dead-lettered as "clip never ready", not lost silently.
import type { Logger } from "pino";
import { Counter, type Registry } from "prom-client";
import type { ClipStore } from "./store.ts";

export type Retention = { maxAgeMs: number; maxBytes: number };

export function startClipRetention(
  store: ClipStore,
  retention: Retention,
  opts: { log: Logger; registry: Registry; everyMs?: number },
): { stop(): void } {
  const removed = new Counter({
    name: "vigil_clip_store_swept_total",
    help: "Snapshots and clips removed by retention (age, then size)",
    registers: [opts.registry],
  });
  let running = false;
  const sweep = async () => {
    if (running) return;
    running = true;
    try {
      const gone = await store.sweep(retention);
      removed.inc(gone.length);
      if (gone.length) opts.log.info({ removed: gone.length }, "clip store retention");
    } catch (err) {
      opts.log.warn({ err: (err as Error).message }, "clip store retention failed");
    } finally {
      running = false;
    }
  };
  void sweep();
  const timer = setInterval(sweep, opts.everyMs ?? 10 * 60_000);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
