// The clip phase of `npm run bench -- alarms`: the worker-side clip service (alarms/clips/clip-service.ts)
// recording vtest.avi served over RTSP (GStreamer, H.264 with a keyframe every second, so the recorder copies the
// stream), and clip requests as a worker makes them, each for an event at "now". The lag is the time from the end
// of a clip's post-roll to the clip being in the store; the baseline is the segment length, since a segment must
// close (at the first keyframe after its length) before the post-roll's last second can be cut. The lag is split
// into the wait for the covering segment to be listed and the rest (the cut, ffprobe, the put).
import { join } from "node:path";
import pino from "pino";
import { Registry } from "prom-client";
import { createClipService } from "../alarms/clips/clip-service.ts";
import type { ClipStore } from "../alarms/clips/store.ts";
import { FIXTURES, startRtsp, waitFor } from "../test/setup/services.ts";

const CLIPS = Number(process.env.BENCH_ALARMS_CLIPS ?? 10);
const SEGMENT_S = Number(process.env.BENCH_ALARMS_SEGMENT_SECONDS ?? 2);
const SPACING_MS = Number(process.env.BENCH_ALARMS_CLIP_SPACING_MS ?? 1500);
const PRE_S = 2;
const POST_S = 2;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
};
const r2 = (v: number) => Math.round(v * 100) / 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type One = { lagMs: number; segmentWaitMs: number; durationS: number; earlyS: number; inStore: boolean };

export async function benchClips(o: { store: ClipStore; scratchDir: string; progress: (s: string) => void }) {
  const rtsp = await startRtsp(join(FIXTURES, "vtest.avi"));
  const registry = new Registry();
  const svc = createClipService({
    store: o.store,
    scratchDir: o.scratchDir,
    log: pino({ level: "warn" }),
    registry,
    segmentSeconds: SEGMENT_S,
  });
  const cam = "bench-clips/cam";
  try {
    svc.addCamera(cam, { url: `rtsp://127.0.0.1:${rtsp.port}/cam1` });
    await waitFor(
      "the pre-roll in the recorder's buffer",
      async () => {
        const s = svc.status(cam);
        return (s?.coveredToMs ?? 0) - (s?.coveredFromMs ?? Number.POSITIVE_INFINITY) >= (PRE_S + SEGMENT_S) * 1000;
      },
      60_000,
      100,
    );
    o.progress(`clips: recording (${svc.status(cam)?.mode}); ${CLIPS} requests, pre ${PRE_S} s, post ${POST_S} s`);
    const errors: string[] = [];
    const done = await Promise.all(
      Array.from({ length: CLIPS }, async (_, i): Promise<One | undefined> => {
        await sleep(i * SPACING_MS);
        const eventMs = Date.now();
        const endMs = eventMs + POST_S * 1000;
        const key = `bench-clips/cam/entry_${i + 1}_${eventMs}.mp4`;
        // When the recorder lists a segment reaching past the post-roll: the cut may start from then on.
        let coveredAt: number | undefined;
        let settled = false;
        const watch = (async () => {
          while (!settled && coveredAt === undefined) {
            if ((svc.status(cam)?.coveredToMs ?? 0) >= endMs) coveredAt = Date.now();
            else await sleep(20);
          }
        })();
        try {
          const r = await svc.requestClip({ key, cameraId: cam, eventMs, preSeconds: PRE_S, postSeconds: POST_S });
          const at = Date.now();
          settled = true;
          await watch;
          return {
            lagMs: at - endMs,
            segmentWaitMs: (coveredAt ?? at) - endMs,
            durationS: r.durationS,
            earlyS: (eventMs - PRE_S * 1000 - r.startMs) / 1000,
            inStore: (await o.store.stat(key)) !== undefined,
          };
        } catch (err) {
          settled = true;
          errors.push((err as Error).message);
          return undefined;
        }
      }),
    );
    const ok = done.filter((x): x is One => x !== undefined);
    const lags = ok.map((x) => x.lagMs);
    const waits = ok.map((x) => x.segmentWaitMs);
    const rest = ok.map((x) => x.lagMs - x.segmentWaitMs);
    const p95 = pct(lags, 95);
    return {
      segment_seconds: SEGMENT_S,
      pre_seconds: PRE_S,
      post_seconds: POST_S,
      recorder_mode: svc.status(cam)?.mode,
      requested: CLIPS,
      clips: ok.length,
      not_in_store: ok.filter((x) => !x.inStore).length,
      failed: errors.length,
      ...(errors.length ? { errors: errors.slice(0, 3) } : {}),
      clip_lag_p50_ms: pct(lags, 50),
      clip_lag_p95_ms: p95,
      clip_lag_max_ms: pct(lags, 100),
      clip_lag_p95_vs_segment: r2(p95 / (SEGMENT_S * 1000)),
      segment_wait_p50_ms: pct(waits, 50),
      segment_wait_p95_ms: pct(waits, 95),
      cut_and_put_p50_ms: pct(rest, 50),
      cut_and_put_p95_ms: pct(rest, 95),
      duration_min_s: r2(Math.min(...ok.map((x) => x.durationS))),
      duration_max_s: r2(Math.max(...ok.map((x) => x.durationS))),
      short_clips: ok.filter((x) => x.durationS < PRE_S + POST_S).length,
      start_early_max_s: r2(Math.max(...ok.map((x) => x.earlyS))),
    };
  } finally {
    await svc.stop();
    await rtsp.stop();
  }
}
