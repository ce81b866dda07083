// Real media for the alarm tests: an H.264 MP4 replay clip cut from vtest.avi with ffmpeg (libx264, +faststart,
// as a browser plays it), a JPEG snapshot of one frame, and ffprobe's duration of the clip; and the alarm messages
// and camera summaries the records-side tests (gateway, dashboard) write and serve.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { alarmObjectKeys } from "../../alarms/clips/store.ts";
import { ALARM_MESSAGE_VERSION, type AlarmMessage } from "../../alarms/messages.ts";
import type { CameraSummary } from "../../gateway/feed.ts";
import { FIXTURES } from "./services.ts";

export const VTEST = join(FIXTURES, "vtest.avi");

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr.slice(-800)}`);
  return r.stdout;
}

/**
 * `seconds` of vtest.avi from `from`, re-encoded (vtest.avi's MS-MPEG4 cannot go into MP4 as it is). `bitrate`
 * (e.g. "4M") makes a bigger file, one a browser does not fetch whole before it seeks.
 */
export function cutClip(file: string, from = 10, seconds = 6, bitrate?: string): string {
  const rate = bitrate ? ["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate] : [];
  run("ffmpeg", [
    ...["-hide_banner", "-loglevel", "error", "-y", "-ss", String(from), "-t", String(seconds), "-i", VTEST],
    ...["-an", "-c:v", "libx264", "-preset", "veryfast", "-g", "20", "-pix_fmt", "yuv420p", ...rate],
    ...["-movflags", "+faststart", "-f", "mp4", file],
  ]);
  return file;
}

export function snapshotJpeg(file: string, at = 12): string {
  run("ffmpeg", [
    ...["-hide_banner", "-loglevel", "error", "-y", "-ss", String(at), "-i", VTEST],
    ...["-frames:v", "1", "-q:v", "4", "-f", "image2", "-c:v", "mjpeg", file],
  ]);
  return file;
}

/** The container's duration in seconds, as ffprobe reads it. */
export function probeDuration(file: string): number {
  const out = run("ffprobe", ["-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", file]);
  const d = Number.parseFloat(out.trim());
  if (!Number.isFinite(d)) throw new Error(`ffprobe: no duration for ${file}: ${out}`);
  return d;
}

/** An alarm message of `camera` as a worker sends it (presence in zone floor), for records-side tests. */
export function alarmAt(o: {
  camera: string;
  rule: string;
  severity: AlarmMessage["severity"];
  t: number;
  track?: number;
  pre?: number;
  post?: number;
}): AlarmMessage {
  const id = `${o.camera}:${o.rule}:${o.track ?? 1}:${o.t}`;
  const keys = alarmObjectKeys(id);
  return {
    v: ALARM_MESSAGE_VERSION,
    type: "alarm",
    id,
    camera_id: o.camera,
    rule: o.rule,
    kind: "presence",
    severity: o.severity,
    track_id: o.track ?? 1,
    zone: "floor",
    box: [100, 80, 220, 400],
    timestamp: new Date(o.t).toISOString(),
    detail: "person in floor",
    snapshot_key: keys.snapshot,
    clip: { key: keys.clip, pre_seconds: o.pre ?? 3, post_seconds: o.post ?? 3 },
    dedup_window_seconds: 0,
    webhook_secret: "hook",
  };
}

/** The gateway's summary of a camera `<ns>/<name>` with nothing configured, for a memory catalog. */
export function bareSummary(id: string): CameraSummary {
  const [namespace, name] = id.split("/") as [string, string];
  return {
    id,
    name,
    namespace,
    pool: "local",
    source: "rtsp://127.0.0.1/cam",
    targetFps: 5,
    zones: [],
    rules: [],
    paused: false,
    status: {},
  };
}
