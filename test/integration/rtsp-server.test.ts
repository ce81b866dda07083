// The test RTSP server (hack/rtsp/server.py) shares one encode between its clients, as a camera does: a client that
// joins or leaves must not disturb the stream the others receive. It used to: every ffmpeg PLAY asks for the range
// npt=0.000-, and the shared media seeked there for everyone, so a watching client was thrown back to the file's
// start (its timestamps went back and its ffmpeg dropped frames for seconds).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, expect, it } from "vitest";
import { type Service, startRtsp, waitFor } from "../setup/services.ts";

const run = promisify(execFile);
const tmp = mkdtempSync(join(tmpdir(), "vigil-rtsp-"));
let rtsp: Service;
let url: string;

/** A client reading the stream's video packets without decoding them: their timestamps (90 kHz), as they come. */
function packets(
  extra: string[] = [],
  from = url,
): { proc: ChildProcess; pts: number[]; keys: number[]; exited: Promise<number | null> } {
  const proc = spawn("ffprobe", [
    ...["-v", "error", "-rtsp_transport", "tcp", ...extra, "-select_streams", "v"],
    ...["-show_entries", "packet=pts,flags", "-of", "compact=p=0:nk=1", from],
  ]);
  const pts: number[] = [];
  const keys: number[] = [];
  let rest = "";
  proc.stdout.on("data", (b: Buffer) => {
    const lines = (rest + b.toString()).split("\n");
    rest = lines.pop() ?? "";
    for (const line of lines) {
      const m = /^(\d+)\|(K?)/.exec(line); // "N/A" for the first packet, before the clock is known
      if (!m) continue;
      pts.push(Number(m[1]));
      if (m[2]) keys.push(Number(m[1]));
    }
  });
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  return { proc, pts, keys, exited };
}

beforeAll(async () => {
  // 10 s of 160×120 at 10 fps: 100 frames.
  const video = join(tmp, "ten.mp4");
  await run("ffmpeg", [
    ...["-v", "error", "-f", "lavfi", "-i", "testsrc=s=160x120:r=10:d=10"],
    ...["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", video],
  ]);
  rtsp = await startRtsp(video);
  url = `rtsp://127.0.0.1:${rtsp.port}/cam1`;
});

afterAll(async () => {
  await rtsp?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

it("a second client joining and leaving leaves the first one's stream going on, to the file's end", async () => {
  const a = packets();
  try {
    // Past the connection's first burst, so the shared stream is well into the file when B joins.
    await waitFor("A receiving", async () => a.pts.length >= 30, 30_000);
    const b = packets(["-read_intervals", "%+2"]);
    expect(await b.exited).toBe(0);
    expect(b.pts.length).toBeGreaterThan(0);
    // The file still ends: A's stream stops by itself, once.
    expect(await a.exited).toBe(0);
  } finally {
    a.proc.kill();
  }
  const backwards = a.pts.flatMap((p, i) => (i > 0 && p <= (a.pts[i - 1] ?? 0) ? [`${a.pts[i - 1]} → ${p}`] : []));
  expect(backwards).toEqual([]);
  expect(a.pts.length).toBeGreaterThan(90);
  expect(a.pts.length).toBeLessThanOrEqual(100);
}, 60_000);

it("looped (a camera's stream never ends): the file plays again and again, its timestamps going on without a break", async () => {
  // 3 s of video, read for 8 s: two loops, at 10 fps.
  const short = join(tmp, "three.mp4");
  await run("ffmpeg", [
    ...["-v", "error", "-f", "lavfi", "-i", "testsrc=s=160x120:r=10:d=3"],
    ...["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", short],
  ]);
  const looped = await startRtsp(short, { loop: true });
  const a = packets(["-read_intervals", "%+8"], `rtsp://127.0.0.1:${looped.port}/cam1`);
  try {
    expect(await a.exited).toBe(0);
  } finally {
    a.proc.kill();
    await looped.stop();
  }
  const steps = a.pts.slice(1).map((p, i) => p - (a.pts[i] ?? 0));
  // At each loop the first frame repeats the last one's timestamp (a decoder drops one frame); never goes back.
  expect(steps.filter((d) => d < 0)).toEqual([]);
  expect(Math.max(...steps)).toBeLessThanOrEqual(0.2 * 90_000);
  expect((a.pts.at(-1) ?? 0) / 90_000).toBeGreaterThan(7);
  expect(a.pts.length).toBeGreaterThan(70);
}, 60_000);

it("passthrough (VIGIL_RTSP_PASSTHROUGH=1): the file's own H.264 is paid as is, its GOP kept, looping without a break", async () => {
  // GOP 15 at 10 fps: a keyframe every 1.5 s, where the re-encoding mode would make one every second.
  const gop15 = join(tmp, "gop15.mp4");
  await run("ffmpeg", [
    ...["-v", "error", "-f", "lavfi", "-i", "testsrc=s=160x120:r=10:d=3"],
    ...["-c:v", "libx264", "-preset", "ultrafast", "-g", "15", "-keyint_min", "15", "-sc_threshold", "0"],
    ...["-pix_fmt", "yuv420p", gop15],
  ]);
  process.env.VIGIL_RTSP_PASSTHROUGH = "1";
  const served = startRtsp(gop15, { loop: true });
  delete process.env.VIGIL_RTSP_PASSTHROUGH; // read at spawn
  const server = await served;
  const a = packets(["-read_intervals", "%+5"], `rtsp://127.0.0.1:${server.port}/cam1`);
  try {
    expect(await a.exited).toBe(0);
  } finally {
    a.proc.kill();
    await server.stop();
  }
  const steps = a.pts.slice(1).map((p, i) => p - (a.pts[i] ?? 0));
  expect(steps.filter((d) => d < 0)).toEqual([]);
  expect(Math.max(...steps)).toBeLessThanOrEqual(0.2 * 90_000);
  expect((a.pts.at(-1) ?? 0) / 90_000).toBeGreaterThan(4);
  // Past the first keyframe (the server's own restart 0.2 s in): keyframes 15 frames (1.5 s) apart, one frame less
  // across a loop (its repeated timestamp), never the re-encoding mode's 1 s.
  const gaps = a.keys.slice(2).map((k, i) => Math.round((k - (a.keys[i + 1] ?? 0)) / 9000) / 10);
  expect(gaps.length).toBeGreaterThanOrEqual(2);
  expect(gaps.filter((g) => g !== 1.5 && g !== 1.4)).toEqual([]);
}, 30_000);
