import { describe, expect, it } from "vitest";
import {
  decodeModeFor,
  GOP_TOLERANCE,
  gopSeconds,
  KEY_HISTORY,
  keyframeSampling,
  pushKeyTime,
  showinfoTime,
} from "../../worker/ingest/keyframe-decode.ts";

/** The keyframe history after each of `times`, as FfmpegSource builds it. */
const history = (times: number[]) => times.reduce<number[]>((h, t) => pushKeyTime(h, t), []);

describe("gopSeconds", () => {
  it("is unknown until three intervals are seen", () => {
    expect(gopSeconds(history([])) ?? "unknown").toBe("unknown");
    expect(gopSeconds(history([10, 11, 12])) ?? "unknown").toBe("unknown");
    expect(gopSeconds(history([10, 11, 12, 13]))).toBe(1);
  });

  it("is the median interval: one odd interval (a lost keyframe, a client joining mid-GOP) does not move it", () => {
    expect(gopSeconds(history([0, 1, 3, 4]))).toBe(1); // 1, 2, 1: one keyframe lost
    expect(gopSeconds(history([0, 0.2, 1.2, 2.2]))).toBe(1); // the first 0.2 s
    expect(gopSeconds(history([0, 4, 8, 12, 16]))).toBe(4);
  });

  it("keeps the last KEY_HISTORY keyframes, so a GOP that changes mid-stream is followed", () => {
    const h = history([0, 1, 2, 3, 4, 8, 12, 16, 20]);
    expect(h).toHaveLength(KEY_HISTORY);
    expect(gopSeconds(h)).toBe(4);
  });

  it("starts over when the stream's clock goes back or stands still", () => {
    expect(history([5, 6, 7, 0.5])).toEqual([0.5]);
    expect(history([5, 6, 6])).toEqual([6]);
  });
});

describe("decodeModeFor", () => {
  it("decodes keyframes only when a keyframe comes at least as often as a sample is wanted", () => {
    expect(decodeModeFor(1, 1)).toBe("keyframes"); // 25 fps, GOP 25, 1 detection/s: the goal's cameras
    expect(decodeModeFor(0.5, 1)).toBe("keyframes");
    expect(decodeModeFor(0.5, 2)).toBe("keyframes");
    expect(decodeModeFor(1, 2)).toBe("all"); // 2 samples per GOP
    expect(decodeModeFor(4, 1)).toBe("all"); // a 4 s GOP at 1 fps
    expect(decodeModeFor(1, 5)).toBe("all");
  });

  it("allows a GOP a few percent long (encoder and clock jitter), not more", () => {
    expect(decodeModeFor(1 + GOP_TOLERANCE * 0.9, 1)).toBe("keyframes");
    expect(decodeModeFor(1 + GOP_TOLERANCE * 1.1, 1)).toBe("all");
  });

  it("decodes every frame when the GOP is unknown or every frame is wanted", () => {
    expect(decodeModeFor(undefined, 1)).toBe("all");
    expect(decodeModeFor(1, 0)).toBe("all");
    expect(decodeModeFor(0, 1)).toBe("all");
  });
});

describe("keyframeSampling", () => {
  /** The keyframe times (s) a sampler takes from keyframes every `gop` s over `seconds`, as ffmpeg's select does. */
  function taken(gop: number, fps: number, seconds: number): number[] {
    const { minGapS } = keyframeSampling(gop, fps);
    const out: number[] = [];
    for (let i = 0; i * gop < seconds; i++) {
      const t = Math.round(i * gop * 1000) / 1000;
      const last = out.at(-1);
      if (last === undefined || t - last >= minGapS) out.push(t);
    }
    return out;
  }

  it("takes every keyframe when the GOP is the sample period", () => {
    expect(keyframeSampling(1, 1)).toEqual({ stride: 1, minGapS: 0.5, rate: 1 });
    expect(taken(1, 1, 5)).toEqual([0, 1, 2, 3, 4]);
  });

  it("takes every n-th keyframe of a shorter GOP, at the wanted rate", () => {
    expect(taken(0.5, 1, 4)).toEqual([0, 1, 2, 3]);
    expect(keyframeSampling(0.5, 1).rate).toBe(1);
    expect(taken(1 / 3, 1, 3)).toEqual([0, 1, 2]);
    expect(keyframeSampling(0.25, 1)).toEqual({ stride: 4, minGapS: 0.875, rate: 1 });
  });

  it("rounds the stride down when the GOP does not divide the period (never fewer samples), and says the rate", () => {
    const s = keyframeSampling(0.4, 1); // 2.5 GOPs per second: every 2nd keyframe, 1.25 per second
    expect(s.stride).toBe(2);
    expect(s.rate).toBeCloseTo(1.25);
    expect(taken(0.4, 1, 2.4)).toEqual([0, 0.8, 1.6]);
    expect(taken(0.2, 2, 1.2)).toEqual([0, 0.4, 0.8]); // 2.5 GOPs per sample: every 2nd, 2.5 per second
  });
});

describe("showinfoTime", () => {
  it("reads a showinfo frame line's pts_time, and nothing from its other lines", () => {
    const frame =
      "[Parsed_showinfo_2 @ 0x55bf9e0bfe40] n:   3 pts: 367200 pts_time:4.08    pos:       -1 fmt:yuv420p " +
      "sar:0/1 s:1920x1080 i:P iskey:1 type:I";
    expect(showinfoTime(frame)).toBe(4.08);
    expect(showinfoTime("[Parsed_showinfo_2 @ 0x5] config in time_base: 1/90000, frame_rate: 25/1")).toBeUndefined();
    expect(showinfoTime("frame=  10 fps=1.0 q=-0.0 pts_time:3")).toBeUndefined();
  });
});
