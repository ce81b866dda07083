// The clip store on a filesystem: a directory (under `vigil up`), or a volume shared by workers, the alarm service
// and the gateway (in a cluster). `put` writes to a temporary name in the same directory and renames it, so a
// reader sees an object whole or not at all, across processes and pods (rename is atomic on one filesystem).
import { randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, readdir, rename, rm, stat, unlink, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve, sep } from "node:path";
import type { Readable } from "node:stream";
import type { ClipObject, ClipStore } from "./store.ts";

const TMP = ".tmp-";

export function createFsClipStore(root: string): ClipStore {
  const base = resolve(root);
  /** A key is a relative path of plain segments; anything that could leave the root is refused. */
  const pathOf = (key: string): string => {
    if (!key || key.startsWith("/") || key.split("/").some((s) => !s || s === "." || s === ".." || s.startsWith(TMP)))
      throw new Error(`clip store key ${JSON.stringify(key)}: must be a relative path of plain segments`);
    return join(base, ...key.split("/"));
  };

  async function list(dir = base): Promise<ClipObject[]> {
    const out: ClipObject[] = [];
    let entries: import("node:fs").Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return out;
    }
    for (const e of entries) {
      const p = join(dir, e.name);
      if (e.isDirectory()) out.push(...(await list(p)));
      else if (e.isFile() && !e.name.startsWith(TMP)) {
        const s = await stat(p).catch(() => undefined);
        if (s) out.push({ key: relative(base, p).split(sep).join("/"), size: s.size, modifiedMs: s.mtimeMs });
      }
    }
    return out;
  }

  return {
    async put(key, from) {
      const target = pathOf(key);
      await mkdir(dirname(target), { recursive: true });
      const tmp = join(dirname(target), `${TMP}${randomBytes(6).toString("hex")}`);
      try {
        if ("bytes" in from) await writeFile(tmp, from.bytes);
        else
          await rename(from.file, tmp).catch(async (err: NodeJS.ErrnoException) => {
            // Another filesystem (a worker's scratch dir beside a shared volume): copy, then drop the original.
            if (err.code !== "EXDEV") throw err;
            await copyFile(from.file, tmp);
            await unlink(from.file);
          });
        await rename(tmp, target);
      } catch (err) {
        await rm(tmp, { force: true });
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
