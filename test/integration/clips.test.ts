// Replay clips on real components: the GStreamer RTSP server (H.264, behind basic auth), ffmpeg's segment muxer
// and concat demuxer, ffprobe, the filesystem clip store, and the worker's own decoder (FfmpegSource) as the
// wall clock that alarm event times come from.
//
// Which frame is which: the RTSP server plays a video whose every frame shows its own number as three grey blocks
// (one decimal digit each), so a frame decoded from a clip can be matched with the moment the worker's decoder
// delivered the same frame. That turns "the clip covers [t − pre, t + post] of wall-clock time" into a check.
import { execFile, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pino from "pino";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ClipService, createClipService } from "../../alarms/clips/clip-service.ts";
import { probeClip } from "../../alarms/clips/cut.ts";
import { createFsClipStore } from "../../alarms/clips/fs-store.ts";
import { Recorder } from "../../alarms/clips/recorder.ts";
import { clipDurationBounds, DEFAULT_MARGINS } from "../../alarms/clips/window.ts";
import { FfmpegSource } from "../../worker/ingest/ffmpeg-source.ts";
import { metricValue } from "../setup/operator-env.ts";
import { FIXTURES, type Service, startRtsp, waitFor } from "../setup/services.ts";

const run = promisify(execFile);
const PASSWORD = "clip-Pa55-word";
const RTSP_CAM = "default/door";
const FILE_CAM = "default/demo";
/** The RTSP server's x264 makes a keyframe at least every 10 frames at 10 fps (hack/rtsp/server.py). */
const GOP_S = 1;
const FRAME_S = 0.1;

const tmp = mkdtempSync(join(tmpdir(), "vigil-clips-"));
const storeDir = join(tmp, "store");
const scratch = join(tmp, "scratch");
const logs: string[] = [];
const registry = new Registry();
const store = createFsClipStore(storeDir);
/** When the worker's decoder delivered each frame number (its frame handler's wall clock). */
const arrival = new Map<number, number>();
let firstFrameAt = 0;
/** Since when the decoder has had a frame every ~100 ms (no pause over 300 ms). */
let steadySince = 0;
let lastFrameAt = 0;
let rtsp: Service;
let decoder: FfmpegSource;
let clips: ClipService;
let firstEventMs = 0;
const measured: string[] = [];

/**
 * A frame's number from its five grey blocks: digit 0's level, digit 9's level, then hundreds, tens and ones. The
 * two reference levels make the decoding immune to the range conversions on the way (GStreamer's and ffmpeg's
 * YUV → RGB shift and stretch the levels).
 */
function frameNumber(rgb: Buffer, width: number, y: number): number {
  const level = (x: number) => {
    let sum = 0;
    for (let dy = -2; dy <= 2; dy++) for (let dx = -2; dx <= 2; dx++) sum += rgb[((y + dy) * width + x + dx) * 3]!;
    return sum / 25;
  };
  const [zero, nine, ...digits] = [6, 19, 32, 45, 58].map(level) as [number, number, number, number, number];
  return digits.reduce((n, v) => n * 10 + Math.round((9 * (v - zero)) / (nine - zero)), 0);
}

/** The frame numbers of an MP4, in order, decoded as the worker decodes (64 px wide RGB). */
async function clipFrames(file: string): Promise<number[]> {
  const { stdout } = await run(
    "ffmpeg",
    ["-v", "error", "-i", file, "-vf", "scale=64:48", "-pix_fmt", "rgb24", "-f", "rawvideo", "-"],
    { encoding: "buffer", maxBuffer: 256 << 20 },
  );
  const size = 64 * 48 * 3;
  return Array.from({ length: stdout.length / size }, (_, i) => frameNumber(stdout.subarray(i * size), 64, 24));
}

/**
 * Checks a clip against the worker's decoder: every frame it delivered within [t − pre, t + post] is in the clip,
 * the clip's first frame was delivered at or before t − pre and its last within a frame of t + post or later.
 */
async function decoderCoverage(file: string, t: number, pre: number, post: number): Promise<string> {
  const frames = await clipFrames(file);
  const wanted = [...arrival].filter(([, at]) => at >= t - pre * 1000 && at <= t + post * 1000).map(([n]) => n);
  expect(wanted.length).toBeGreaterThanOrEqual((pre + post) * 10 - 5); // 10 fps, a steady stream
  expect(wanted.filter((n) => !frames.includes(n))).toEqual([]);
  const firstAt = arrival.get(frames[0]!)!;
  const lastAt = arrival.get(frames.at(-1)!)!;
  expect(firstAt).toBeLessThanOrEqual(t - pre * 1000);
  expect(lastAt).toBeGreaterThanOrEqual(t + post * 1000 - FRAME_S * 1000);
  return `decoder saw its first frame ${t - pre * 1000 - firstAt} ms before t−pre, its last ${lastAt - (t + post * 1000)} ms after t+post`;
}

/** Whether the decoder has had a frame every ~100 ms for the last `ms`, and since `notBefore`. */
const steadyFor = (ms: number, notBefore = 0) =>
  Date.now() - lastFrameAt < 300 && Date.now() - Math.max(steadySince, notBefore) > ms;

const metrics = () => registry.metrics();
/** Waits until the camera's buffer holds `seconds` of settled recording up to now. */
const covered = (cam: string, seconds: number) =>
  waitFor(
    `${cam} covers the last ${seconds} s`,
    async () => {
      const s = clips.status(cam);
      return s?.coveredFromMs !== undefined && s.coveredFromMs <= Date.now() - seconds * 1000 && s;
    },
    30_000,
  );

/** A 2 + 2 s clip at now from a re-encoded vtest.avi camera, once it covers that: H.264 at the source's 768×576. */
async function reencodedClipNow(cam: string, key: string) {
  await covered(cam, 2 + DEFAULT_MARGINS.startMarginMs / 1000 + 0.5);
  const t = Date.now();
  const r = await clips.requestClip({ key, cameraId: cam, eventMs: t, preSeconds: 2, postSeconds: 2 });
  const probe = await probeClip(join(storeDir, key));
  expect(probe).toMatchObject({ codec: "h264", width: 768, height: 576 });
  return { t, r, probe };
}

beforeAll(async () => {
  // 75 s of 160×120 at 10 fps, each frame's number in blocks of grey (x264 at qp 4: the levels survive).
  const video = join(tmp, "numbered.mp4");
  const digit = [
    "if(lt(X,W/5),0,if(lt(X,2*W/5),9,",
    "if(lt(X,3*W/5),mod(floor(N/100),10),if(lt(X,4*W/5),mod(floor(N/10),10),mod(N,10)))))",
  ].join("");
  await run("ffmpeg", [
    ...["-v", "error", "-f", "lavfi", "-i", `color=black:s=160x120:r=10:d=75,format=gray,geq=lum='16+20*${digit}'`],
    ...["-c:v", "libx264", "-preset", "ultrafast", "-qp", "4", "-pix_fmt", "yuv420p", video],
  ]);
  rtsp = await startRtsp(video, { auth: `viewer:${PASSWORD}` });
  const url = `rtsp://127.0.0.1:${rtsp.port}/cam1`;
  const credentials = { username: "viewer", password: PASSWORD };
  // The worker's decoder as the worker runs it (fps 10, letterboxed 64 px square: the picture at rows 8–56).
  decoder = new FfmpegSource(
    { url, credentials, shape: { width: 64, height: 64 }, fps: 10 },
    {
      frame: (f) => {
        const now = Date.now();
        firstFrameAt ||= now;
        if (now - lastFrameAt > 300) steadySince = now;
        lastFrameAt = now;
        arrival.set(frameNumber(f.data, 64, 32), now);
      },
    },
  );
  decoder.start();
  // Before the recorders connect: the RTSP server plays the file from its start for the first client, and again
  // for a client that finds none connected, so the decoder must hold the session open for frame numbers to be
  // unique.
  await waitFor("the decoder's first frame", async () => firstFrameAt > 0);
  clips = createClipService({
    store,
    scratchDir: scratch,
    log: pino({ level: "info" }, { write: (line: string) => void logs.push(line) }),
    registry,
    bufferSeconds: 16,
    backoffMinMs: 300,
  });
  clips.addCamera(RTSP_CAM, { url, credentials });
  clips.addCamera(FILE_CAM, { url: `file://${join(FIXTURES, "vtest.avi")}`, realtimeFile: true });
});

afterAll(async () => {
  decoder?.stop();
  await clips?.stop();
  await rtsp?.stop();
  console.info(`clips: ${measured.join("; ")}`);
  rmSync(tmp, { recursive: true, force: true });
});

describe("replay clips", () => {
  it("cuts [t − pre, t + post] of an RTSP camera into an MP4 that covers that wall-clock window, never short", async () => {
    // The decoder's first ~2 s of frames come in a burst (ffmpeg probes the stream first), and the test server
    // holds back its shared stream for seconds while new clients (the recorders) join: arrival times there are not
    // the live stream's, so the window starts once the decoder has been steady for a while.
    await waitFor("a steady stream", async () => steadyFor(5500), 30_000);
    await covered(RTSP_CAM, 4 + DEFAULT_MARGINS.startMarginMs / 1000 + 0.5);
    const t = Date.now();
    firstEventMs = t;
    const key = "default/door/entered_1_first.mp4";
    const ask = () => clips.requestClip({ key, cameraId: RTSP_CAM, eventMs: t, preSeconds: 4, postSeconds: 4 });
    // The same clip asked for twice (a redelivered event) is cut once.
    const [r, again] = await Promise.all([ask(), ask()]);
    const lagMs = Date.now() - (t + 4000);
    expect(again).toBe(r);
    expect((await store.stat(key))?.size).toBeGreaterThan(0);
    const file = join(storeDir, key);
    const probe = await probeClip(file);
    expect(probe.codec).toBe("h264");
    expect(r.durationS).toBe(probe.durationS);
    const { minS, maxS } = clipDurationBounds({ preSeconds: 4, postSeconds: 4 }, GOP_S, FRAME_S);
    expect(probe.durationS).toBeGreaterThanOrEqual(minS);
    expect(probe.durationS).toBeLessThanOrEqual(maxS + 0.001); // ffprobe rounds to the ms
    expect(r.startMs).toBeLessThanOrEqual(t - 4000);

    const c = await decoderCoverage(file, t, 4, 4);
    measured.push(
      `rtsp 4+4 s → ${probe.durationS} s (service: starts ${t - 4000 - r.startMs} ms before t−pre), ${c}, lag ${lagMs} ms`,
    );
  });

  it("re-encodes a file:// source it cannot copy (MS-MPEG4 vtest.avi, looped at real time) into a valid H.264 MP4", async () => {
    expect(clips.status(FILE_CAM)?.mode).toBe("encode");
    const { t, r, probe } = await reencodedClipNow(FILE_CAM, "default/demo/loitering_3_file.mp4");
    // The recorder forces a keyframe every second.
    const { minS, maxS } = clipDurationBounds({ preSeconds: 2, postSeconds: 2 }, 1, FRAME_S);
    expect(probe.durationS).toBeGreaterThanOrEqual(minS);
    expect(probe.durationS).toBeLessThanOrEqual(maxS + 0.001); // ffprobe rounds to the ms
    expect(r.startMs).toBeLessThanOrEqual(t - 2000);
    measured.push(`file 2+2 s → ${probe.durationS} s, lag ${Date.now() - (t + 2000)} ms`);
  });

  it("records a network camera it cannot copy (MPEG-4 Part 2 over HTTP): copies at once, reads the codec from the first segment, and re-encodes from then on", async () => {
    // An older camera's stream: vtest.avi as MPEG-4 Part 2 in MPEG-TS, served over HTTP at real time, looped.
    const ts = join(tmp, "mpeg4.ts");
    await run("ffmpeg", [
      ...["-v", "error", "-i", join(FIXTURES, "vtest.avi"), "-t", "12", "-an", "-c:v", "mpeg4", "-q:v", "5"],
      ...["-g", "10", "-f", "mpegts", ts],
    ]);
    const feeds = new Set<ReturnType<typeof spawn>>();
    const server = createServer((_req, res) => {
      const feed = spawn("ffmpeg", [
        "-v",
        "error",
        "-re",
        "-stream_loop",
        "-1",
        "-i",
        ts,
        "-c",
        "copy",
        "-f",
        "mpegts",
        "-",
      ]);
      feeds.add(feed);
      res.writeHead(200, { "content-type": "video/mp2t" });
      feed.stdout.pipe(res);
      res.on("close", () => feed.kill("SIGKILL"));
      feed.on("exit", () => feeds.delete(feed));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const cam = "default/lobby";
    try {
      clips.addCamera(cam, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/cam.ts` });
      const s = await waitFor(
        "the lobby's re-encoded recording settles",
        async () => {
          const st = clips.status(cam);
          return st?.mode === "encode" && st.coveredFromMs !== undefined && st;
        },
        30_000,
      );
      // One copy run, killed after its first segment named the codec; not counted as a failure.
      expect(logs.some((l) => l.includes(cam) && /cannot be copied/.test(l) && l.includes('"codec":"mpeg4"'))).toBe(
        true,
      );
      const runs = logs.filter((l) => l.includes(`"camera":"${cam}"`) && l.includes("clip recorder started"));
      expect(runs.map((l) => JSON.parse(l).mode)).toEqual(["copy", "encode"]);
      expect(s.restarts).toBe(0);
      expect(metricValue(await metrics(), "vigil_clip_recorder_restarts_total", `camera="${cam}"`)).toBe(0);
      expect(readdirSync(s.dir).filter((n) => /^r1[-.]/.test(n))).toEqual([]); // the copied segments are gone
      const { t, r, probe } = await reencodedClipNow(cam, "default/lobby/entered_5_http.mp4");
      expect(r.durationS).toBeGreaterThanOrEqual(4);
      expect(r.startMs).toBeLessThanOrEqual(t - 2000);
      measured.push(`http mpeg4 → encode, 2+2 s → ${probe.durationS} s`);
    } finally {
      clips.removeCamera(cam);
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      for (const f of feeds) f.kill("SIGKILL");
    }
  });

  it("cuts an alarm in a camera's first seconds from where its recording began, with the pre-roll it has", async () => {
    const cam = "default/early";
    clips.addCamera(cam, { url: `file://${join(FIXTURES, "vtest.avi")}`, realtimeFile: true });
    try {
      // An event ~2.5 s after the recording began that asks for 6 s before it: without the shortening, "gone".
      const began = await waitFor(
        "the new camera's recording settles",
        async () => clips.status(cam)?.coveredFromMs,
        30_000,
      );
      await waitFor("2.5 s of recording", async () => Date.now() - began >= 2500, 10_000);
      const t = Date.now();
      const key = "default/early/entered_4_early.mp4";
      const r = await clips.requestClip({ key, cameraId: cam, eventMs: t, preSeconds: 6, postSeconds: 2 });
      expect(r.preSeconds).toBeGreaterThan(0);
      expect(r.preSeconds).toBeLessThan(6);
      expect(r.preSeconds).toBeLessThanOrEqual((t - DEFAULT_MARGINS.startMarginMs - began) / 1000);
      expect(r.startMs).toBeLessThanOrEqual(t - r.preSeconds * 1000);
      const probe = await probeClip(join(storeDir, key));
      expect(probe.codec).toBe("h264");
      const { minS, maxS } = clipDurationBounds({ preSeconds: r.preSeconds, postSeconds: 2 }, 1, FRAME_S);
      expect(probe.durationS).toBeGreaterThanOrEqual(minS);
      expect(probe.durationS).toBeLessThanOrEqual(maxS + 0.001);
      expect(metricValue(await metrics(), "vigil_alarm_clip_pre_roll_shortened_total")).toBe(1);
      expect(logs.some((l) => /pre-roll shortened/.test(l) && l.includes(key))).toBe(true);
      measured.push(`early 6+2 s, recording ${t - began} ms old → pre-roll ${r.preSeconds} s, ${probe.durationS} s`);

      // An event 0.4 s after the recording began (a rule on the decoder's first frames): no pre-roll, the clip from
      // where the recording began, the post-roll whole.
      const t0 = began + 400;
      const key0 = "default/early/entered_4_first.mp4";
      const r0 = await clips.requestClip({ key: key0, cameraId: cam, eventMs: t0, preSeconds: 6, postSeconds: 2 });
      expect(r0.preSeconds).toBe(0);
      expect(Math.abs(r0.startMs - clips.status(cam)!.coveredFromMs!)).toBeLessThanOrEqual(FRAME_S * 1000); // its start
      expect(r0.startMs + r0.durationS * 1000).toBeGreaterThanOrEqual(t0 + 2000);
      const probe0 = await probeClip(join(storeDir, key0));
      expect(probe0.durationS).toBeGreaterThanOrEqual(2);
      expect(metricValue(await metrics(), "vigil_alarm_clip_pre_roll_shortened_total")).toBe(2);
      measured.push(
        `first frames 6+2 s, event ${t0 - began} ms into the recording → pre-roll 0, ${probe0.durationS} s`,
      );
    } finally {
      clips.removeCamera(cam);
    }
  });

  it("restarts a recorder killed with SIGKILL, losing only the open segment; a later clip works", async () => {
    const before = clips.status(RTSP_CAM)!;
    expect(before.state).toBe("recording");
    const dir = before.dir;
    const killedAt = Date.now();
    process.kill(before.pid!, "SIGKILL");
    const after = await waitFor(
      "the recorder restarted",
      async () => {
        const s = clips.status(RTSP_CAM)!;
        return s.restarts === 1 && s.pid !== undefined && s.pid !== before.pid && s;
      },
      20_000,
    );
    expect(after.lastError).toMatch(/SIGKILL/);
    const restartMs = Date.now() - killedAt;
    expect(metricValue(await metrics(), "vigil_clip_recorder_restarts_total", `camera="${RTSP_CAM}"`)).toBe(1);
    // The first run's finished segments stay; its open one (never listed, 0 bytes after kill -9) is deleted.
    const run1 = readdirSync(dir).filter((n) => /^r1-\d+\.ts$/.test(n));
    expect(run1.length).toBeGreaterThanOrEqual(before.segments - 1);
    expect(run1.filter((n) => statSync(join(dir, n)).size === 0)).toEqual([]);

    // A window across the restart has a hole in it: refused, not cut short.
    const across = clips.requestClip({
      key: "default/door/entered_2_across.mp4",
      cameraId: RTSP_CAM,
      eventMs: killedAt,
      preSeconds: 2,
      postSeconds: 2,
    });
    await expect(across).rejects.toMatchObject({ result: "gap", message: expect.stringMatching(/gap/) });
    expect(await store.stat("default/door/entered_2_across.mp4")).toBeUndefined();

    // The test server holds back its shared stream for 4–9 s after a client leaves or joins (measured with a
    // decoder beside an ffmpeg that joins, is killed and replaced: every frame delayed, none lost). The recorder
    // sees that as a step in delay and refuses to cut across it (planClip's gap), so the later clip is asked for
    // once the stream is steady again.
    const restartedAt = Date.now();
    await waitFor("a steady stream after the restart", async () => steadyFor(6000, restartedAt), 30_000);
    await covered(RTSP_CAM, 2 + DEFAULT_MARGINS.startMarginMs / 1000 + 0.5);
    const t = Date.now();
    const key = "default/door/entered_2_later.mp4";
    const r = await clips.requestClip({ key, cameraId: RTSP_CAM, eventMs: t, preSeconds: 2, postSeconds: 2 });
    const file = join(storeDir, key);
    const probe = await probeClip(file);
    expect(probe.codec).toBe("h264");
    const { minS, maxS } = clipDurationBounds({ preSeconds: 2, postSeconds: 2 }, GOP_S, FRAME_S);
    expect(r.durationS).toBeGreaterThanOrEqual(minS);
    expect(r.durationS).toBeLessThanOrEqual(maxS + 0.001);
    const c = await decoderCoverage(file, t, 2, 2);
    measured.push(`after kill -9 (new ffmpeg in ${restartMs} ms): 2+2 s → ${probe.durationS} s, ${c}`);
  });

  it("rejects a window that has fallen out of the buffer, and keeps the buffer to its size", async () => {
    const dir = clips.status(RTSP_CAM)!.dir;
    // 16 s of buffer at ~2 s per segment, plus the one being written.
    expect(readdirSync(dir).filter((n) => n.endsWith(".ts")).length).toBeLessThanOrEqual(10);
    expect(Date.now() - firstEventMs).toBeGreaterThan(16_000 + 5_000);
    const gone = clips.requestClip({
      key: "default/door/entered_1_again.mp4",
      cameraId: RTSP_CAM,
      eventMs: firstEventMs,
      preSeconds: 4,
      postSeconds: 4,
    });
    await expect(gone).rejects.toMatchObject({
      result: "gone",
      message: expect.stringMatching(/buffer no longer covers the window start/),
    });
    await expect(
      clips.requestClip({
        key: "x/y.mp4",
        cameraId: "default/nope",
        eventMs: Date.now(),
        preSeconds: 1,
        postSeconds: 1,
      }),
    ).rejects.toMatchObject({
      result: "not_recorded",
      message: expect.stringMatching(/default\/nope is not recorded/),
    });
    await expect(
      clips.requestClip({ key: "../x.mp4", cameraId: RTSP_CAM, eventMs: Date.now(), preSeconds: 1, postSeconds: 1 }),
    ).rejects.toMatchObject({ result: "invalid", message: expect.stringMatching(/clip store key/) });
  });

  it("ends a copy run whose segments' codec cannot be read (3 tries, said in lastError), and asks the camera instead", async () => {
    // An ffprobe that reads the camera but no copied segment (a broken install, a host too busy for its timeout).
    const fake = join(tmp, "ffprobe-no-segments");
    writeFileSync(
      fake,
      `#!/bin/sh\ncase "$*" in *.ts) echo "fake: unreadable" >&2; exit 1;; esac\nexec ffprobe "$@"\n`,
    );
    chmodSync(fake, 0o755);
    const cam = "default/probe";
    const log = pino({ level: "info" }, { write: (line: string) => void logs.push(line) });
    const rec = new Recorder({
      id: cam,
      dir: join(tmp, "probe-recorder"),
      source: { url: `rtsp://127.0.0.1:${rtsp.port}/cam1`, credentials: { username: "viewer", password: PASSWORD } },
      segmentSeconds: 1,
      bufferSeconds: 16,
      log,
      ffprobePath: fake,
    });
    rec.start();
    try {
      await waitFor(
        "the copy run ended",
        async () => rec.lastError?.startsWith("could not read the codec of 3"),
        30_000,
      );
      expect(rec.wallSegments()).toEqual([]); // nothing of an unverified run is cut
      // The next run asked the camera (H.264: copy), and then every segment counts, the unverified ones too.
      const placed = await waitFor(
        "segments placed after the camera was asked",
        async () => rec.mode === "copy" && rec.wallSegments().length >= 2 && rec.wallSegments(),
        30_000,
      );
      expect(placed.some((s) => s.run === 1)).toBe(true);
      expect(logs.filter((l) => l.includes(cam) && l.includes("could not read the codec")).length).toBe(3);
      expect(rec.restarts).toBe(0);
    } finally {
      await rec.stop();
    }
  });

  it("counts results and lag, keeps credentials out of every log line, and cleans its scratch on stop", async () => {
    const text = await metrics();
    expect(metricValue(text, "vigil_alarm_clips_total", 'result="ok"')).toBe(6);
    expect(metricValue(text, "vigil_alarm_clips_total", 'result="gap"')).toBe(1);
    expect(metricValue(text, "vigil_alarm_clips_total", 'result="gone"')).toBe(1);
    expect(metricValue(text, "vigil_alarm_clips_total", 'result="not_recorded"')).toBe(1);
    expect(metricValue(text, "vigil_alarm_clips_total", 'result="invalid"')).toBe(1);
    expect(metricValue(text, "vigil_alarm_clip_lag_seconds_count")).toBe(6);
    const all = logs.join("");
    expect(all).toContain("rtsp://***@127.0.0.1"); // the recorder's argv is logged, redacted
    expect(all).not.toContain(PASSWORD);
    expect(all).not.toContain(encodeURIComponent(PASSWORD));

    const rtspDir = clips.status(RTSP_CAM)!.dir;
    clips.removeCamera(FILE_CAM);
    expect(clips.status(FILE_CAM)).toBeUndefined();
    await clips.stop();
    expect(readdirSync(scratch)).toEqual([]);
    expect(() => readdirSync(rtspDir)).toThrow(/ENOENT/);
  });
});
