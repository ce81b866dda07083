// Real vtest.avi frames as the worker decodes them (FfmpegSource, letterboxed to the model's shape), for tests that
// run the model on them.
import { join } from "node:path";
import { expect } from "vitest";
import { type InputShape, square } from "../../worker/infer/letterbox.ts";
import { FfmpegSource, type Frame } from "../../worker/ingest/ffmpeg-source.ts";
import { FIXTURES } from "./services.ts";

/** The first `n` frames of vtest.avi (or another fixture) sampled at `fps`, each with its own copy of the bytes. */
export async function vtestFrames(
  n: number,
  fps: number,
  shape: InputShape = square(640),
  file = "vtest.avi",
): Promise<Frame[]> {
  const frames: Frame[] = [];
  const source = new FfmpegSource(
    { url: join(FIXTURES, file), fps, shape, stallTimeoutMs: 10_000 },
    {
      frame: (f) => {
        frames.push({ ...f, data: Buffer.from(f.data) });
        if (frames.length === n) source.stop();
      },
    },
  );
  source.start();
  await source.done;
  expect(frames).toHaveLength(n);
  return frames;
}
