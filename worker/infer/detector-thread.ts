// The model's own thread. onnxruntime-node runs a session synchronously on the calling thread (its `run` only
// defers the call with setImmediate), so on the main thread every inference would block ffmpeg's pipes, timers
// and health endpoints for the whole model run. Here it blocks nobody, and it does nothing but run the model:
// frames and outputs live in slots of shared memory (see threaded.ts); messages only name the slot.
import { parentPort, workerData } from "node:worker_threads";
import { createBatcher } from "./batcher.ts";
import { setThreadNice } from "./priority.ts";
import { type DetectorOptions, type Frame, loadModel } from "./session.ts";

type Slot = { input: Frame; output: Float32Array };
type Request =
  | { id: number; op: "infer"; slot: number; buffers?: Slot }
  | { id: number; op: "raw"; batch: number }
  | { id: number; op: "close" };

const port = parentPort;
if (!port) throw new Error("detector-thread.ts runs as a worker thread");
const { path, opts } = workerData as { path: string; opts: DetectorOptions };

try {
  const priorityNote = opts.nice === undefined ? undefined : setThreadNice(opts.nice);
  const model = await loadModel(path, opts);
  const { infer: _, runRaw: __, close: ___, ...info } = model;
  port.postMessage({ op: "ready", ...info, classNames: [...info.classNames], priorityNote });
  const slots = new Map<number, Slot>();
  // Frames that arrive while the model runs wait here and go in together when it has a dynamic batch axis.
  const batcher = createBatcher(
    model.maxBatch,
    async (ids: number[]) => {
      const used = ids.map((k) => slots.get(k) as Slot);
      const r = await model.infer(
        used.map((s) => s.input),
        used.map((s) => s.output),
      );
      return ids.map(() => ({ inferenceMs: r.inferenceMs, batch: ids.length }));
    },
    { maxDelayMs: model.maxBatch > 1 ? (opts.maxBatchDelayMs ?? 0) : 0 },
  );
  port.on("message", async (req: Request) => {
    try {
      if (req.op === "infer") {
        if (req.buffers) slots.set(req.slot, req.buffers);
        if (!slots.has(req.slot)) throw new Error(`unknown frame slot ${req.slot}`);
        port.postMessage({ id: req.id, ok: true, ...(await batcher.submit(req.slot)) });
      } else if (req.op === "raw") port.postMessage({ id: req.id, ok: true, ms: await model.runRaw(req.batch) });
      else {
        await batcher.idle();
        await model.close();
        port.postMessage({ id: req.id, ok: true });
        port.close();
      }
    } catch (err) {
      port.postMessage({ id: req.id, ok: false, error: (err as Error).message });
    }
  });
} catch (err) {
  port.postMessage({ op: "failed", error: (err as Error).message });
}
