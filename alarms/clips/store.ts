// The clip store: where workers put snapshots and replay clips, and where the alarm service and the gateway find
// them. A small interface so an S3-compatible backend can sit beside the filesystem one (fs-store.ts): every
// method names an object by key, `put` is atomic (an object is either absent or complete), and nothing here
// depends on paths. In a cluster the filesystem backend is a volume shared by workers, the alarm service and the
// gateway; under `vigil up` it is a local directory.
import type { Readable } from "node:stream";
import { parseCameraId } from "../../worker/publish/camera-id.ts";

export type ClipObject = { key: string; size: number; modifiedMs: number };

export interface ClipStore {
  /** Stores a local file (moved or copied in) or bytes under `key`; readers never see a partial object. */
  put(key: string, from: { file: string } | { bytes: Buffer }, contentType: string): Promise<void>;
  /** The object's size and time, or undefined when absent. */
  stat(key: string): Promise<ClipObject | undefined>;
  /** Reads the object, or the byte range [start, end] (inclusive, as HTTP ranges are). */
  read(key: string, range?: { start: number; end: number }): Readable;
  remove(key: string): Promise<void>;
  /** Deletes objects older than maxAgeMs, then the oldest until the total is under maxBytes; returns what it removed. */
  sweep(retention: { maxAgeMs: number; maxBytes: number }, nowMs?: number): Promise<string[]>;
}

/**
 * Keys of an alarm's snapshot and clip, from its id (`<ns>/<name>:<rule>:<track>:<start ms>`):
 * `<ns>/<name>/<rule>_<track>_<start ms>.jpg` and `.mp4`. One folder per camera keeps retention and listing cheap.
 */
export function alarmObjectKeys(alarmId: string): { snapshot: string; clip: string } {
  const m = /^([^:]+):([a-z0-9-]+):(\d+):(\d+)$/.exec(alarmId);
  if (!m) throw new Error(`alarm id ${JSON.stringify(alarmId)}: must be <camera id>:<rule>:<track>:<start ms>`);
  const { namespace, name } = parseCameraId(m[1] as string);
  const base = `${namespace}/${name}/${m[2]}_${m[3]}_${m[4]}`;
  return { snapshot: `${base}.jpg`, clip: `${base}.mp4` };
}

/**
 * The clip's own description, stored under `<clip key>.json` just before the clip: where it really starts and how
 * long it is (a stream-copied cut starts at a keyframe before t − pre). Whoever sees the clip finds this beside it.
 */
export type ClipMeta = { start_ms: number; duration_s: number };
export const clipMetaKey = (clipKey: string) => `${clipKey}.json`;

export async function readClipMeta(store: ClipStore, clipKey: string): Promise<ClipMeta | undefined> {
  try {
    const chunks: Buffer[] = [];
    for await (const c of store.read(clipMetaKey(clipKey))) chunks.push(c as Buffer);
    const m = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Partial<ClipMeta>;
    return typeof m.start_ms === "number" && typeof m.duration_s === "number" && m.duration_s > 0
      ? { start_ms: m.start_ms, duration_s: m.duration_s }
      : undefined;
  } catch {
    return undefined;
  }
}
