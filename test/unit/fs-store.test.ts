import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { createFsClipStore } from "../../alarms/clips/fs-store.ts";
import { clipFailureKey, clipMetaKey, readClipFailure, readClipMeta } from "../../alarms/clips/store.ts";

const dirs: string[] = [];
const tmp = (base = tmpdir()) => {
  const d = mkdtempSync(join(base, "vigil-store-"));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const readAll = async (r: Readable) => {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

describe("the filesystem clip store", () => {
  it("puts bytes and files, and readers see an object whole or not at all", async () => {
    const root = tmp();
    const store = createFsClipStore(root);
    const big = randomBytes(24 << 20);
    let polls = 0;
    let partial = 0;
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const s = await store.stat("ns/cam/big.mp4");
        polls++;
        if (s && s.size !== big.length) partial++;
        // Only the final name is visible to listings: no temporary name is ever an object.
        const names = readdirSync(join(root, "ns", "cam")).filter((n) => !n.startsWith(".tmp-"));
        if (names.length && !names.includes("big.mp4")) partial++;
        await new Promise((r) => setImmediate(r));
      }
    })();
    mkdirSync(join(root, "ns", "cam"), { recursive: true });
    await store.put("ns/cam/big.mp4", { bytes: big }, "video/mp4");
    polling = false;
    await poller;
    expect(polls).toBeGreaterThan(0);
    expect(partial).toBe(0);
    expect((await readAll(store.read("ns/cam/big.mp4"))).equals(big)).toBe(true);

    const src = join(tmp(), "clip.mp4");
    writeFileSync(src, "file body");
    await store.put("ns/cam/a.mp4", { file: src }, "video/mp4");
    expect(existsSync(src)).toBe(false); // moved in
    expect((await readAll(store.read("ns/cam/a.mp4"))).toString()).toBe("file body");
    expect(readdirSync(join(root, "ns", "cam")).sort()).toEqual(["a.mp4", "big.mp4"]);
  });

  it("copies a file from another filesystem and removes the original only after", async () => {
    if (!existsSync("/dev/shm")) return;
    const store = createFsClipStore(tmp());
    const src = join(tmp("/dev/shm"), "clip.mp4");
    writeFileSync(src, "across filesystems");
    await store.put("ns/cam/x.mp4", { file: src }, "video/mp4");
    expect(existsSync(src)).toBe(false);
    expect((await readAll(store.read("ns/cam/x.mp4"))).toString()).toBe("across filesystems");
  });

  it("leaves the caller's file in place and no temporary behind when a put fails", async () => {
    const root = tmp();
    const store = createFsClipStore(root);
    mkdirSync(join(root, "ns", "cam", "taken.mp4"), { recursive: true }); // a directory where the object should go
    writeFileSync(join(root, "ns", "cam", "taken.mp4", "inner"), "x");
    const src = join(tmp(), "clip.mp4");
    writeFileSync(src, "keep me");
    await expect(store.put("ns/cam/taken.mp4", { file: src }, "video/mp4")).rejects.toThrow();
    expect(existsSync(src)).toBe(true);
    await expect(store.put("ns/cam/taken.mp4", { bytes: Buffer.from("b") }, "video/mp4")).rejects.toThrow();
    expect(readdirSync(join(root, "ns", "cam"))).toEqual(["taken.mp4"]);
  });

  it("reads byte ranges inclusively, as HTTP ranges are, and stats objects", async () => {
    const store = createFsClipStore(tmp());
    await store.put("a/b.bin", { bytes: Buffer.from("0123456789") }, "application/octet-stream");
    expect((await readAll(store.read("a/b.bin", { start: 2, end: 5 }))).toString()).toBe("2345");
    expect((await readAll(store.read("a/b.bin", { start: 9, end: 9 }))).toString()).toBe("9");
    expect((await readAll(store.read("a/b.bin", { start: 0, end: 0 }))).toString()).toBe("0");
    expect((await readAll(store.read("a/b.bin", { start: 8, end: 100 }))).toString()).toBe("89");
    const s = await store.stat("a/b.bin");
    expect(s).toMatchObject({ key: "a/b.bin", size: 10 });
    expect(await store.stat("a/missing.bin")).toBeUndefined();
    expect(await store.stat("a")).toBeUndefined(); // a folder is no object
    await store.remove("a/b.bin");
    expect(await store.stat("a/b.bin")).toBeUndefined();
    await store.remove("a/b.bin"); // removing what is gone is fine (idempotent)
  });

  it("refuses keys that could leave the root or name a temporary", async () => {
    const store = createFsClipStore(tmp());
    for (const key of ["", "/etc/passwd", "../x", "a/../../x", "a//b", "a/./b", "a/", ".tmp-abc", "a/.tmp-1"]) {
      await expect(store.put(key, { bytes: Buffer.from("x") }, "text/plain"), key).rejects.toThrow(/clip store key/);
      await expect(store.stat(key), key).rejects.toThrow(/plain segments/);
      expect(() => store.read(key), key).toThrow(/plain segments/);
    }
  });

  it("sweeps by age first, then the oldest until the total fits; abandoned temporaries go too", async () => {
    const root = tmp();
    const store = createFsClipStore(root);
    const now = Date.now();
    const at = async (key: string, ageS: number, size: number) => {
      await store.put(key, { bytes: Buffer.alloc(size) }, "video/mp4");
      const t = new Date(now - ageS * 1000);
      utimesSync(join(root, ...key.split("/")), t, t);
    };
    await at("ns/a/old.mp4", 500, 10);
    await at("ns/b/older.mp4", 600, 10);
    await at("ns/a/mid.mp4", 300, 40);
    await at("ns/b/new.mp4", 200, 40);
    await at("ns/a/newest.mp4", 100, 40);
    // A put that died midway, an hour and more ago, and one that is still running.
    writeFileSync(join(root, "ns", "a", ".tmp-dead"), "partial");
    utimesSync(join(root, "ns", "a", ".tmp-dead"), new Date(now - 7200_000), new Date(now - 7200_000));
    writeFileSync(join(root, "ns", "a", ".tmp-live"), "partial");

    // Age 400 s removes the two old ones (20 bytes); 120 bytes remain, over 100, so the oldest of the rest goes too.
    const removed = await store.sweep({ maxAgeMs: 400_000, maxBytes: 100 }, now);
    expect(removed).toEqual(["ns/b/older.mp4", "ns/a/old.mp4", "ns/a/mid.mp4"]);
    expect(readdirSync(join(root, "ns", "a")).sort()).toEqual([".tmp-live", "newest.mp4"]);
    expect(await store.sweep({ maxAgeMs: 400_000, maxBytes: 100 }, now)).toEqual([]);
    expect(await store.sweep({ maxAgeMs: 150_000, maxBytes: 1000 }, now)).toEqual(["ns/b/new.mp4"]);
  });

  it("counts a moved file's age from its put, not from when it was written", async () => {
    const store = createFsClipStore(tmp());
    const src = join(tmp(), "old.mp4");
    writeFileSync(src, "x");
    const yesterday = new Date(Date.now() - 86_400_000);
    utimesSync(src, yesterday, yesterday);
    await store.put("ns/cam/old.mp4", { file: src }, "video/mp4");
    expect(await store.sweep({ maxAgeMs: 3_600_000, maxBytes: 1 << 30 })).toEqual([]);
    expect(Date.now() - (await store.stat("ns/cam/old.mp4"))!.modifiedMs).toBeLessThan(60_000);
  });
});

describe("the clip's notes beside it", () => {
  it("reads a clip's real start and length, and refuses a malformed description", async () => {
    const root = mkdtempSync(join(tmpdir(), "vigil-clipmeta-"));
    const store = createFsClipStore(root);
    const key = "ns/cam/r_1_2.mp4";
    expect(await readClipMeta(store, key)).toBeUndefined();
    await store.put(
      clipMetaKey(key),
      { bytes: Buffer.from('{"start_ms":1700000000000,"duration_s":8.3}') },
      "application/json",
    );
    expect(await readClipMeta(store, key)).toEqual({ start_ms: 1700000000000, duration_s: 8.3 });
    await store.put(
      clipMetaKey(key),
      { bytes: Buffer.from('{"start_ms":"soon","duration_s":-1}') },
      "application/json",
    );
    expect(await readClipMeta(store, key)).toBeUndefined();
    rmSync(root, { recursive: true, force: true });
  });

  it("reads why a clip will not come; a note that does not parse still says so", async () => {
    const root = mkdtempSync(join(tmpdir(), "vigil-clipfail-"));
    const store = createFsClipStore(root);
    const key = "ns/cam/r_1_3.mp4";
    expect(await readClipFailure(store, key)).toBeUndefined();
    await store.put(clipFailureKey(key), { bytes: Buffer.from('{"reason":"stream gap"}') }, "application/json");
    expect(await readClipFailure(store, key)).toBe("stream gap");
    await store.put(clipFailureKey(key), { bytes: Buffer.from("not json") }, "application/json");
    expect(await readClipFailure(store, key)).toBe("the worker could not cut it");
    rmSync(root, { recursive: true, force: true });
  });
});
