// FfmpegSource.recycle: buffers handed back are decoded into again, ones kept by the consumer never are, and every
// frame still carries its own picture (checked against a decode that copies each frame).
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { square } from "../../worker/infer/letterbox.ts";
import { FfmpegSource } from "../../worker/ingest/ffmpeg-source.ts";
import { vtestFrames } from "../setup/frames.ts";
import { FIXTURES } from "../setup/services.ts";

const N = 24;

describe("frame buffer recycling", () => {
  it("reuses handed-back buffers only, and each frame holds its own picture", async () => {
    const reference = await vtestFrames(N, 10);
    const seen: Buffer[] = [];
    const kept = new Set<Buffer>();
    const recycled = new Set<Buffer>();
    let reusedRecycled = 0;
    let reusedKept = 0;
    const mismatched: number[] = [];
    const source = new FfmpegSource(
      { url: join(FIXTURES, "vtest.avi"), fps: 10, shape: square(640), stallTimeoutMs: 10_000 },
      {
        frame: (f) => {
          const i = seen.length;
          if (recycled.has(f.data)) reusedRecycled++;
          if (kept.has(f.data)) reusedKept++;
          recycled.delete(f.data);
          if (!f.data.equals((reference[i] as { data: Buffer }).data)) mismatched.push(i);
          seen.push(f.data);
          // Odd frames are kept (as a snapshot would keep one); even ones handed back, plus a foreign buffer
          // of the wrong size, which must be ignored.
          if (i % 2) kept.add(f.data);
          else {
            recycled.add(f.data);
            source.recycle(f.data);
          }
          source.recycle(Buffer.alloc(16));
          if (seen.length === N) source.stop();
        },
      },
    );
    source.start();
    await source.done;
    expect(seen).toHaveLength(N);
    expect(mismatched).toEqual([]);
    expect(reusedKept).toBe(0);
    // Each handed-back buffer comes back for a later frame: N/2 handed back, the last few still spare at the end.
    expect(reusedRecycled).toBeGreaterThanOrEqual(N / 2 - 2);
    expect(new Set(seen).size).toBeLessThan(N);
    expect(seen.every((b) => b.length === 640 * 640 * 3)).toBe(true);
  });
});
