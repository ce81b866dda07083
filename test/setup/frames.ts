// Real vtest.avi frames as the worker decodes them (FfmpegSource, letterboxed to the model's side), for tests that
// run the model on them.
import { join } from "node:path";
import { expect } from "vitest";
import { FfmpegSource, type Frame } from "../../worker/ingest/ffmpeg-source.ts";
import { FIXTURES } from "./services.ts";

/** The first `n` frames of vtest.avi sampled at `fps`, each with its own copy of the bytes. */
export async function vtestFrames(n: number, fps: number, size = 640): Promise<Frame[]> {
  const frames: Frame[] = [];
  const source = new FfmpegSource(
    { url: join(FIXTURES, "vtest.avi"), fps, size, stallTimeoutMs: 10_000 },
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
