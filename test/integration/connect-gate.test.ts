// Streams connecting through one gate (worker/ingest/connect-gate.ts), as the worker's cameras do: real ffmpeg
// sources on the test RTSP server, a gate of one. Each ffmpeg is spawned only after the one before it delivered its
// first frame; a source stopped while it waits gives its turn back; none of them is ever taken for stalled.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { createConnectGate } from "../../worker/ingest/connect-gate.ts";
import { FfmpegSource, type SourceState } from "../../worker/ingest/ffmpeg-source.ts";
import { type Service, startRtsp, waitFor } from "../setup/services.ts";

const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), "vigil-gate-"));
let rtsp: Service;
let url: string;

beforeAll(async () => {
  const video = join(tmp, "src.mp4");
  await run("ffmpeg", [
    ...["-v", "error", "-f", "lavfi", "-i", "testsrc=s=320x240:r=10:d=30"],
    ...["-c:v", "libx264", "-preset", "ultrafast", "-g", "10", "-pix_fmt", "yuv420p", video],
  ]);
  rtsp = await startRtsp(video, { loop: true });
  url = `rtsp://127.0.0.1:${rtsp.port}/cam1`;
});

afterAll(async () => {
  await rtsp?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

it("spawns each stream's ffmpeg after the one before it streams, and gives a stopped waiter's turn back", {
  timeout: 60_000,
}, async () => {
  const gate = createConnectGate(1);
  const events: { source: number; state: SourceState | "frame"; at: number }[] = [];
  const sources = Array.from(
    { length: 4 },
    (_, i) =>
      new FfmpegSource(
        { url, fps: 2, shape: { width: 64, height: 64 }, connectGate: gate },
        {
          frame: () => void events.push({ source: i, state: "frame", at: performance.now() }),
          state: (state) => void events.push({ source: i, state, at: performance.now() }),
        },
      ),
  );
  for (const s of sources) s.start();
  await new Promise((r) => setImmediate(r));
  expect([gate.active, gate.waiting]).toEqual([1, 3]);
  sources[2]?.stop(); // waiting its turn: it never spawns, and source 3 does not wait for it
  await waitFor("sources 0, 1 and 3 streaming", async () =>
    [0, 1, 3].every((i) => sources[i]?.stats.state === "streaming"),
  );
  const first = (i: number, state: SourceState | "frame") => events.find((e) => e.source === i && e.state === state);
  // "connecting" is set as ffmpeg is spawned (a waiting source says nothing yet).
  expect((first(1, "connecting")?.at ?? 0) >= (first(0, "frame")?.at ?? Number.POSITIVE_INFINITY)).toBe(true);
  expect((first(3, "connecting")?.at ?? 0) >= (first(1, "frame")?.at ?? Number.POSITIVE_INFINITY)).toBe(true);
  expect(events.filter((e) => e.source === 2).map((e) => e.state)).toEqual(["stopped"]);
  expect(events.filter((e) => e.state === "stalled")).toEqual([]);
  expect([gate.active, gate.waiting]).toEqual([0, 0]);
  for (const s of sources) s.stop();
});

/** This process's ffmpeg children (fluent-ffmpeg spawns them directly). */
async function ffmpegChildren(): Promise<number> {
  const r = await run("pgrep", ["-P", String(process.pid), "-x", "ffmpeg"]).catch(() => ({ stdout: "" }));
  return r.stdout.split("\n").filter(Boolean).length;
}

it("a source stopped and started again behind a full gate runs one ffmpeg, and none once stopped", {
  timeout: 60_000,
}, async () => {
  await waitFor("no ffmpeg left from the test before", async () => (await ffmpegChildren()) === 0);
  const gate = createConnectGate(1);
  const connecting: number[] = [];
  const s = new FfmpegSource(
    { url, fps: 2, shape: { width: 64, height: 64 }, connectGate: gate },
    {
      frame: () => undefined,
      state: (state) => void (state === "connecting" && connecting.push(performance.now())),
    },
  );
  s.start();
  await waitFor("streaming", async () => s.stats.state === "streaming");
  const release = await gate.acquire(); // another camera connecting
  s.stop(); // its killed ffmpeg ends after the new start below: that end is not this connection's failure
  s.start();
  await new Promise((r) => setTimeout(r, 200));
  release();
  await waitFor("streaming again", async () => s.stats.state === "streaming");
  // Past the first backoff (500 ms), when a retry of the old connection's end would spawn a second ffmpeg.
  await new Promise((r) => setTimeout(r, 2000));
  expect([connecting.length, s.stats.reconnects, await ffmpegChildren()]).toEqual([2, 0, 1]);
  s.stop();
  await waitFor("its ffmpeg gone", async () => (await ffmpegChildren()) === 0, 5000);
});
