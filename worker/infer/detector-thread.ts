// The model's own thread. onnxruntime-node runs a session synchronously on the calling thread (its `run` only
// defers the call with setImmediate), so on the main thread every inference would block ffmpeg's pipes, timers
// and health endpoints for the whole model run. Here it blocks nobody, and it does nothing but run the model:
// frames arrive as CHW floats and leave as raw outputs (both transferred, not copied), while the main thread
// prepares the next frame and decodes the last one.
import { parentPort, workerData } from "node:worker_threads";
import { createBatcher } from "./batcher.ts";
import { type DetectorOptions, loadModel, spread } from "./session.ts";

type Request =
  | { id: number; op: "infer"; chw: Float32Array }
  | { id: number; op: "raw"; batch: number }
  | { id: number; op: "close" };

const port = parentPort;
if (!port) throw new Error("detector-thread.ts runs as a worker thread");
const { path, opts } = workerData as { path: string; opts: DetectorOptions };

try {
  const model = await loadModel(path, opts);
  const { infer: _, runRaw: __, close: ___, ...info } = model;
  port.postMessage({ op: "ready", ...info, classNames: [...info.classNames] });
  // Frames that arrive while the model runs wait here and go in together when it has a dynamic batch axis.
  const batcher = createBatcher(model.maxBatch, (frames: Float32Array[]) => model.infer(frames).then(spread));
  port.on("message", async (req: Request) => {
    try {
      if (req.op === "infer") {
        const r = await batcher.submit(req.chw);
        // The input buffer goes back too, for the main thread's next frame.
        port.postMessage({ id: req.id, ok: true, ...r, chw: req.chw }, [
          r.output.buffer,
          req.chw.buffer,
        ] as ArrayBuffer[]);
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
