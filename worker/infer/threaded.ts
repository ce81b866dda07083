// A Detector whose model lives on its own thread (see detector-thread.ts); same interface as loadDetector's.
// This side letterboxes into CHW floats and decodes outputs, so the model thread only ever runs the model.
import { Worker } from "node:worker_threads";
import {
  classFilterOf,
  type Detector,
  type DetectorOptions,
  detectionsOf,
  hwcToChw,
  ModelError,
  type ModelInfo,
} from "./session.ts";

type Pending = { resolve: (v: never) => void; reject: (e: Error) => void };

export async function loadThreadedDetector(path: string, opts: DetectorOptions = {}): Promise<Detector> {
  const thread = new Worker(new URL("./detector-thread.ts", import.meta.url), { workerData: { path, opts } });
  const info = await new Promise<ModelInfo>((resolve, reject) => {
    thread.once("message", (m) => (m.op === "ready" ? resolve(m) : reject(new ModelError(m.error))));
    thread.once("error", reject);
    thread.once("exit", (code) =>
      reject(new ModelError(`model ${path}: its thread exited (code ${code}) while loading`)),
    );
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
  // However the thread ends, every call waiting on it fails (the pipeline logs it per camera) instead of hanging.
  const die = (err: Error) => {
    dead ??= err;
    for (const p of pending.values()) p.reject(dead);
    pending.clear();
  };
  thread.on("error", die);
  thread.on("messageerror", die);
  thread.on("exit", (code) => die(new Error(`the model thread exited (code ${code})`)));
  const call = <T>(msg: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<T> => {
    if (dead) return Promise.reject(dead);
    if (closed && msg.op !== "close") return Promise.reject(new Error("the detector is closed"));
    const id = ++seq;
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (v: never) => void, reject });
      thread.postMessage({ id, ...msg }, transfer);
    });
  };
  // Input buffers come back with their results: a few circulate, none is allocated per frame.
  const spare: Float32Array[] = [];
  const frameFloats = 3 * info.size * info.size;

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
      const chw = spare.pop() ?? new Float32Array(frameFloats);
      hwcToChw(rgb, info.size, chw);
      const r = await call<{ output: Float32Array; inferenceMs: number; batch: number; chw: Float32Array }>(
        { op: "infer", chw },
        [chw.buffer as ArrayBuffer],
      );
      if (spare.length < 2 * info.maxBatch + 2) spare.push(r.chw);
      return { detections: detectionsOf(info, r.output, srcW, srcH, o), inferenceMs: r.inferenceMs, batch: r.batch };
    },
    async runRaw(batch = 1) {
      return (await call<{ ms: number }>({ op: "raw", batch })).ms;
    },
    async close() {
      if (closed) return; // a terminated thread would never answer a second "close"
      closed = true;
      // The thread finishes the frames it holds, then releases the session; it gets 10 s before it is stopped.
      await Promise.race([
        call({ op: "close" }).catch(() => undefined),
        new Promise((r) => setTimeout(r, 10_000).unref()),
      ]);
      await thread.terminate();
    },
  };
}
