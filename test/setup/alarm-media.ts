// Real media for the alarm tests: an H.264 MP4 replay clip cut from vtest.avi with ffmpeg (libx264, +faststart,
// as a browser plays it), a JPEG snapshot of one frame, and ffprobe's duration of the clip.
import { spawnSync } from "node:child_process";
import { join } from "node:path";
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
