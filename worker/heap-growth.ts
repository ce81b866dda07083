// How far V8 lets the old generation grow past the live heap before its next full GC. Left to itself, on a worker
// streaming frames, V8 kept that margin to a few per cent of the heap: ffmpeg's pipe reads (a 64 KB buffer each, 19
// a frame at 640×640) and the frames themselves (1.2 MB, outside the heap but counted against its limit) reached it
// every ~6 frames, and each full mark-compact marked the whole ~36 MB heap, on the main thread and on V8's helper
// threads, which took cores from the model's. Measured in `npm run bench -- worker` at 1 camera (AMD EPYC, 2 cores,
// 20 s of the pipeline): full GCs 62 → 17 in 25 s, V8's helper threads 11.2 → 4.2 % of a core, the main thread
// 5.7 → 3.8 %, and the model's two threads got 165 → 172 % (182 % with nothing else running). 50 gave 6.0 % on the
// helpers, 200 gave 3.2 %: 100 doubles the heap at most (~36 → 72 MB) for most of the gain.
import { setFlagsFromString } from "node:v8";

/** Process-wide (every isolate, the model thread's too); read by V8 at each full GC, so it holds from the next one. */
export function growHeapInLargerSteps(percent: number): void {
  setFlagsFromString(`--heap-growing-percent=${percent}`);
}
