// A Detector whose model lives on its own thread (see detector-thread.ts); same interface as loadDetector's.
import { Worker } from "node:worker_threads";
import { classFilterOf, type Detector, type DetectorOptions, type DetectResult, ModelError } from "./session.ts";

type Pending = { resolve: (v: never) => void; reject: (e: Error) => void };

export async function loadThreadedDetector(path: string, opts: DetectorOptions = {}): Promise<Detector> {
  const thread = new Worker(new URL("./detector-thread.ts", import.meta.url), { workerData: { path, opts } });
  const info = await new Promise<{
    size: number;
    head: Detector["head"];
    provider: Detector["provider"];
    providerNote?: string;
    maxBatch: number;
    batchNote?: string;
    classNames: string[];
  }>((resolve, reject) => {
    thread.once("message", (m) => (m.op === "ready" ? resolve(m) : reject(new ModelError(m.error))));
    thread.once("error", reject);
  });
  const pending = new Map<number, Pending>();
  let seq = 0;
  let dead: Error | undefined;
  let closed = false;
  thread.on("message", (m: { id: number; ok: boolean; error?: string }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    m.ok ? p.resolve(m as never) : p.reject(new Error(m.error));
  });
  thread.on("error", (err) => {
    dead = err;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  });
  const call = <T>(msg: Record<string, unknown>): Promise<T> => {
    if (dead) return Promise.reject(dead);
    const id = ++seq;
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (v: never) => void, reject });
      thread.postMessage({ id, ...msg });
    });
  };

  return {
    size: info.size,
    head: info.head,
    provider: info.provider,
    providerNote: info.providerNote,
    maxBatch: info.maxBatch,
    batchNote: info.batchNote,
    classNames: info.classNames,
    classFilter: (names) => classFilterOf(info.classNames, names),
    async detect(rgb, srcW, srcH, o) {
      // The frame is copied (structured clone, ~0.3 ms): the caller keeps it for the live view. Calls made while
      // the thread is busy are batched over there (maxBatch > 1).
      const r = await call<DetectResult>({
        op: "detect",
        rgb,
        srcW,
        srcH,
        minScore: o.minScore,
        classFilter: o.classFilter ?? null,
        iou: o.iouThreshold,
      });
      return { detections: r.detections, inferenceMs: r.inferenceMs, batch: r.batch };
    },
    async runRaw(batch = 1) {
      return (await call<{ ms: number }>({ op: "raw", batch })).ms;
    },
    async close() {
      if (closed) return; // a terminated thread would never answer a second "close"
      closed = true;
      await call({ op: "close" }).catch(() => undefined);
      await thread.terminate();
    },
  };
}
