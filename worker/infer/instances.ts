// Several instances of one model in a worker, each a session on its own thread (threaded.ts), as Triton's
// instance_group count or Frigate's several CPU detectors: frames go to the instance with the fewest in flight.
// Why: onnxruntime spreads one run over its intra-op threads with a cost. Measured on this project's 2-core
// machine (YOLOv8n 640, uint8 input): one session of 2 threads runs a frame in 33 ms, 67 core-ms; one of 1 thread
// in 52 ms, 52 core-ms. Many cameras want frames per core-second, so two 1-thread instances carry more of them;
// one camera wants a frame soon, so one instance of every thread serves it better.
import { availableParallelism } from "node:os";
import type { ModelHealth } from "./model-health.ts";
import type { Detector, DetectorOptions } from "./session.ts";
import { loadThreadedDetector } from "./threaded.ts";

/**
 * Intra-op threads per instance: the pool's thread budget (0 = one per core) shared out, at least one each. A
 * budget below the instance count is refused, not silently oversubscribed.
 */
export function threadsPerInstance(threads: number, instances: number, cores: number): number {
  if (!Number.isInteger(instances) || instances < 1) throw new Error(`model instances ${instances}: must be ≥ 1`);
  const budget = threads > 0 ? threads : Math.max(1, cores);
  if (threads > 0 && threads < instances)
    throw new Error(`${instances} model instances need at least ${instances} threads, the pool gives ${threads}`);
  return Math.max(1, Math.floor(budget / instances));
}

/** The instance a frame goes to: the fewest frames in flight, the lowest index on a tie. */
export function pickInstance(inFlight: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < inFlight.length; i++) if ((inFlight[i] as number) < (inFlight[best] as number)) best = i;
  return best;
}

const worstHealth = (hs: ModelHealth[]): ModelHealth => hs.find((h) => !h.ok) ?? { ok: true };

/** One model as `instances` sessions; with 1, the threaded detector itself. */
export async function loadModelInstances(
  path: string,
  opts: DetectorOptions,
  instances: number,
  cores = availableParallelism(),
): Promise<Detector & { readonly instances: number }> {
  const threads = threadsPerInstance(opts.threads ?? 0, instances, cores);
  if (instances === 1) return Object.assign(await loadThreadedDetector(path, opts), { instances: 1 });
  const all = await Promise.all(
    Array.from({ length: instances }, () => loadThreadedDetector(path, { ...opts, threads })),
  );
  const first = all[0] as Detector;
  const inFlight = all.map(() => 0);
  return {
    ...first,
    instances,
    async detect(rgb, srcW, srcH, o) {
      const i = pickInstance(inFlight);
      inFlight[i] = (inFlight[i] as number) + 1;
      try {
        return await (all[i] as Detector).detect(rgb, srcW, srcH, o);
      } finally {
        inFlight[i] = (inFlight[i] as number) - 1;
      }
    },
    runRaw: (batch) => first.runRaw(batch),
    health: () => worstHealth(all.map((d) => d.health?.() ?? { ok: true })),
    lost: Promise.race(all.map((d) => d.lost ?? new Promise<string>(() => undefined))),
    async close() {
      await Promise.all(all.map((d) => d.close()));
    },
  };
}
