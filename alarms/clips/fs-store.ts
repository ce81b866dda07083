// The clip store on a filesystem: a directory (under `vigil up`), or a volume shared by workers, the alarm service
// and the gateway (in a cluster). `put` writes to a temporary name in the same directory and renames it, so a
// reader sees an object whole or not at all, across processes and pods (rename is atomic on one filesystem).
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, open, readdir, rename, rm, stat, unlink, utimes, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import type { Readable } from "node:stream";
import type { ClipObject, ClipStore } from "./store.ts";

const TMP = ".tmp-";
const ABANDONED_MS = 3_600_000;

export function createFsClipStore(root: string): ClipStore {
  const base = resolve(root);
  /** A key is a relative path of plain segments; anything that could leave the root is refused. */
  const pathOf = (key: string): string => {
    if (!key || key.startsWith("/") || key.split("/").some((s) => !s || s === "." || s === ".." || s.startsWith(TMP)))
      throw new Error(`clip store key ${JSON.stringify(key)}: must be a relative path of plain segments`);
    return join(base, ...key.split("/"));
  };

  async function list(dir = base, withTemporary = false): Promise<ClipObject[]> {
    const out: ClipObject[] = [];
    let entries: import("node:fs").Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return out;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) out.push(...(await list(p, withTemporary)));
      else if (e.isFile() && (withTemporary || !e.name.startsWith(TMP))) {
        const s = await stat(p).catch(() => undefined);
        if (s) out.push({ key: relative(base, p).split(sep).join("/"), size: s.size, modifiedMs: s.mtimeMs });
      }
    }
    return out;
  }

  return {
    async put(key, from) {
      const target = pathOf(key);
      const dir = dirname(target);
      await mkdir(dir, { recursive: true });
      const tmp = join(dir, `${TMP}${randomBytes(6).toString("hex")}`);
      const source = "file" in from ? from.file : undefined;
      let moved = false;
      let copied = false;
      try {
        if (source === undefined) await writeFile(tmp, (from as { bytes: Buffer }).bytes);
        else
          await rename(source, tmp).then(
            () => {
              moved = true;
            },
            async (err: NodeJS.ErrnoException) => {
              // Another filesystem (a worker's scratch dir beside a shared volume): copy; the original goes only
              // once the copy is in place, so a failed put leaves the caller's file where it was.
              if (err.code !== "EXDEV") throw err;
              await copyFile(source, tmp);
              copied = true;
            },
          );
        // Retention counts age in the store, not since the file was written (a moved file keeps its mtime).
        const now = new Date();
        await utimes(tmp, now, now);
        // Data before name: without the fsync a crash after the rename can leave the key naming an empty file
        // (ext4 and xfs flush a renamed file's blocks lazily), and the alarm that points at it would lie.
        await fsyncPath(tmp);
        await rename(tmp, target);
        await fsyncPath(dir);
        if (copied && source) await unlink(source);
      } catch (err) {
        if (moved && source) await rename(tmp, source).catch(() => rm(tmp, { force: true }));
        else await rm(tmp, { force: true });
        throw err;
      }
    },
    async stat(key) {
      const s = await stat(pathOf(key)).catch(() => undefined);
      return s?.isFile() ? { key, size: s.size, modifiedMs: s.mtimeMs } : undefined;
    },
    read(key, range): Readable {
      return createReadStream(pathOf(key), range ? { start: range.start, end: range.end } : {});
    },
    async remove(key) {
      await rm(pathOf(key), { force: true });
    },
    async sweep({ maxAgeMs, maxBytes }, nowMs = Date.now()) {
      // A temporary file older than an hour is a put that died midway (a crash, kill -9): nothing will rename it.
      for (const t of await list(base, true))
        if (t.key.split("/").at(-1)?.startsWith(TMP) && nowMs - t.modifiedMs > ABANDONED_MS)
          await rm(join(base, ...t.key.split("/")), { force: true });
      const all = (await list()).sort((a, b) => a.modifiedMs - b.modifiedMs);
      const removed: string[] = [];
      let total = all.reduce((n, o) => n + o.size, 0);
      for (const o of all) {
        if (nowMs - o.modifiedMs <= maxAgeMs && total <= maxBytes) break;
        await rm(pathOf(o.key), { force: true });
        removed.push(o.key);
        total -= o.size;
      }
      return removed;
    },
  };
}

/** fsync of a file or a directory (a directory's fsync makes a rename inside it durable). */
async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
