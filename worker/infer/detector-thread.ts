// The model's own thread. onnxruntime-node runs a session synchronously on the calling thread (its `run` only
// defers the call with setImmediate), so on the main thread every inference would block ffmpeg's pipes, timers
// and health endpoints for the whole model run. Here it blocks nobody; the main thread keeps decoding.
import { parentPort, workerData } from "node:worker_threads";
import { type DetectorOptions, loadDetector } from "./session.ts";

type Request =
  | {
      id: number;
      op: "detect";
      rgb: Uint8Array;
      srcW: number;
      srcH: number;
      minScore: number;
      classFilter: Uint8Array | null;
      iou?: number;
    }
  | { id: number; op: "raw"; batch: number }
  | { id: number; op: "close" };

const port = parentPort;
if (!port) throw new Error("detector-thread.ts runs as a worker thread");
const { path, opts } = workerData as { path: string; opts: DetectorOptions };

try {
  const detector = await loadDetector(path, opts);
  port.postMessage({
    op: "ready",
    size: detector.size,
    head: detector.head,
    provider: detector.provider,
    providerNote: detector.providerNote,
    maxBatch: detector.maxBatch,
    batchNote: detector.batchNote,
    classNames: [...detector.classNames],
  });
  port.on("message", async (req: Request) => {
    try {
      if (req.op === "detect") {
        const {
          detections: d,
          inferenceMs,
          batch,
        } = await detector.detect(req.rgb, req.srcW, req.srcH, {
          minScore: req.minScore,
          classFilter: req.classFilter,
          ...(req.iou ? { iouThreshold: req.iou } : {}),
        });
        const out = { length: d.length, xyxy: d.xyxy, score: d.score, classId: d.classId, trackId: d.trackId };
        port.postMessage({ id: req.id, ok: true, detections: out, inferenceMs, batch }, [
          d.xyxy.buffer,
          d.score.buffer,
          d.classId.buffer,
          d.trackId.buffer,
        ] as ArrayBuffer[]);
      } else if (req.op === "raw") port.postMessage({ id: req.id, ok: true, ms: await detector.runRaw(req.batch) });
      else {
        await detector.close();
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
