// The clip store: where workers put snapshots and replay clips, and where the alarm service and the gateway find
// them. A small interface so an S3-compatible backend can sit beside the filesystem one (fs-store.ts): every
// method names an object by key, `put` is atomic (an object is either absent or complete), and nothing here
// depends on paths. In a cluster the filesystem backend is a volume shared by workers, the alarm service and the
// gateway; under `vigil up` it is a local directory.
import type { Readable } from "node:stream";
import { z } from "zod";
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

/** Reads a small JSON object from the store and validates it; undefined when absent, unreadable or malformed. */
async function readJson<T>(store: ClipStore, key: string, schema: z.ZodType<T>): Promise<T | undefined> {
  try {
    const chunks: Buffer[] = [];
    for await (const c of store.read(key)) chunks.push(c as Buffer);
    const r = schema.safeParse(JSON.parse(Buffer.concat(chunks).toString("utf8")));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The clip's own description, stored under `<clip key>.json` just before the clip: where it really starts and how
 * long it is (a stream-copied cut starts at a keyframe before t − pre). Whoever sees the clip finds this beside it.
 * Written by a worker and read by the alarm service: a zod schema, as every cross-process message.
 */
export const clipMeta = z.object({ start_ms: z.number().int().nonnegative(), duration_s: z.number().positive() });
export type ClipMeta = z.infer<typeof clipMeta>;
export const clipMetaKey = (clipKey: string) => `${clipKey}.json`;

/** The clip's description, or undefined (the sender then names the nominal window). */
export const readClipMeta = (store: ClipStore, clipKey: string) => readJson(store, clipMetaKey(clipKey), clipMeta);

/**
 * Why a clip will never come, stored under `<clip key>.failed.json` by the worker that was to cut it (its buffer
 * no longer covered the window, the stream had a gap, ffmpeg failed): the alarm service dead-letters the alarm
 * with that reason at once instead of waiting out its clip deadline.
 */
export const clipFailure = z.object({ reason: z.string().min(1).max(2000) });
export const clipFailureKey = (clipKey: string) => `${clipKey}.failed.json`;

/** The worker's reason, when it left one; a note that does not parse still says the clip will not come. */
export async function readClipFailure(store: ClipStore, clipKey: string): Promise<string | undefined> {
  if (!(await store.stat(clipFailureKey(clipKey)).catch(() => undefined))) return undefined;
  return (await readJson(store, clipFailureKey(clipKey), clipFailure))?.reason ?? "the worker could not cut it";
}
