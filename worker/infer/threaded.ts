// A Detector whose model lives on its own thread (see detector-thread.ts); same interface as loadDetector's.
// This side puts ffmpeg's letterboxed bytes into a slot (as they are for a uint8-input model, else as CHW floats)
// and decodes outputs, so the model thread only ever runs the model.
// Frames and outputs sit in slots of shared memory, reused: a frame allocates nothing (measured: transferring
// fresh 4.9 MB inputs and 2.8 MB outputs instead made V8 run a full GC every ~4 frames on the main thread).
import { Worker } from "node:worker_threads";
import { modelHealth } from "./model-health.ts";
import {
  classFilterOf,
  type Detector,
  type DetectorOptions,
  detectionsOf,
  type Frame,
  frameBuffer,
  frameInto,
  ModelError,
  type ModelInfo,
} from "./session.ts";

type Pending = { resolve: (v: never) => void; reject: (e: Error) => void };

export async function loadThreadedDetector(path: string, opts: DetectorOptions = {}): Promise<Detector> {
  const thread = new Worker(new URL("./detector-thread.ts", import.meta.url), { workerData: { path, opts } });
  const info = await new Promise<ModelInfo & { priorityNote?: string }>((resolve, reject) => {
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
  // For liveness (model-health.ts): the last answer, or when calls started waiting after an idle spell.
  let quietSince = Date.now();
  const lost = Promise.withResolvers<string>();
  thread.on("message", (m: { id: number; ok: boolean; error?: string }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    quietSince = Date.now();
    m.ok ? p.resolve(m as never) : p.reject(new Error(m.error));
  });
  // However the thread ends, every call waiting on it fails (the pipeline logs it per camera) instead of hanging.
  const die = (err: Error) => {
    const first = !dead;
    dead ??= err;
    for (const p of pending.values()) p.reject(dead);
    pending.clear();
    if (first && !closed) lost.resolve(dead.message);
  };
  // An uncaught error ends the thread ("exit" follows): the reason worth reporting is the error's.
  thread.on("error", (err) => die(new Error(`the model thread exited on an uncaught error: ${err.message}`)));
  thread.on("messageerror", die);
  thread.on("exit", (code) => die(new Error(`the model thread exited (code ${code})`)));
  const call = <T>(msg: Record<string, unknown>, transfer: ArrayBuffer[] = []): Promise<T> => {
    if (dead) return Promise.reject(dead);
    if (closed && msg.op !== "close") return Promise.reject(new Error("the detector is closed"));
    const id = ++seq;
    if (pending.size === 0) quietSince = Date.now();
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (v: never) => void, reject });
      thread.postMessage({ id, ...msg }, transfer);
    });
  };
  type Slot = { input: Frame; output: Float32Array };
  const slots: Slot[] = [];
  const free: number[] = [];
  const outputFloats = info.outputDims.reduce((a, b) => a * b, 1);
  const shared = (floats: number) => new Float32Array(new SharedArrayBuffer(floats * 4));

  return {
    shape: info.shape,
    head: info.head,
    provider: info.provider,
    providerNote: info.providerNote,
    maxBatch: info.maxBatch,
    batchNote: info.batchNote,
    classNames: info.classNames,
    input: info.input,
    inputNote: info.inputNote,
    priorityNote: info.priorityNote,
    classFilter: (names) => classFilterOf(info.classNames, names),
    health: () => modelHealth({ dead: dead?.message, waiting: pending.size, quietSince }, Date.now(), opts.stallMs),
    lost: lost.promise,
    async detect(rgb, srcW, srcH, o) {
      let k = free.pop();
      let buffers: Slot | undefined;
      if (k === undefined) {
        // A new slot, shown to the thread once: as many exist as frames were ever in flight at once.
        k = slots.length;
        buffers = { input: frameBuffer(info.input, info.shape, true), output: shared(outputFloats) };
        slots.push(buffers);
      }
      const slot = slots[k] as Slot;
      try {
        frameInto(info.input, rgb, info.shape, slot.input);
        const r = await call<{ inferenceMs: number; batch: number }>({ op: "infer", slot: k, buffers });
        return {
          detections: detectionsOf(info, slot.output, srcW, srcH, o),
          inferenceMs: r.inferenceMs,
          batch: r.batch,
        };
      } finally {
        free.push(k);
      }
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
