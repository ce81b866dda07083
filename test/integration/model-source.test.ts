// Pool models over real HTTP: downloaded into the model volume, checked against their sha256, reused after.
import { readFileSync } from "node:fs";
import { mkdtemp, readdir } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { resolveModelUri } from "../../worker/infer/model-source.ts";
import { loadDetector } from "../../worker/infer/session.ts";
import { FIXTURES, freePort } from "../setup/services.ts";

const MODEL = readFileSync(join(FIXTURES, "yolov8n.onnx"));
const SHA = "9697a185dd8eb7448aea4c979e10db2b4977f70a46687890ef796936c44a848b";

describe("model.uri", () => {
  let server: Server;
  let base: string;
  const hits: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      hits.push(req.url ?? "");
      const auth = req.headers.authorization;
      if (req.url === "/private/yolov8n.onnx" && auth !== `Basic ${btoa("ml:pa ss")}` && auth !== "Bearer t0ken") {
        res.writeHead(401).end();
      } else if (req.url?.startsWith("/models/yolov8n.onnx") || req.url === "/private/yolov8n.onnx") {
        res.writeHead(200, { "content-type": "application/octet-stream", "content-length": MODEL.length });
        res.end(MODEL);
      } else if (req.url === "/cut") {
        res.writeHead(200, { "content-length": MODEL.length });
        res.end(MODEL.subarray(0, 1000)); // the connection ends early: a broken download
        res.socket?.destroy();
      } else res.writeHead(404).end();
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise((r) => server.close(r)));

  it("downloads an http model once, checks its sha256, and the worker loads it", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vigil-models-"));
    const uri = `${base}/models/yolov8n.onnx?token=hunter2`;
    const path = await resolveModelUri(uri, { cacheDir: dir, sha256: SHA });
    expect(path).toBe(join(dir, `${SHA}.onnx`));
    expect(readFileSync(path).equals(MODEL)).toBe(true);
    const before = hits.length;
    expect(await resolveModelUri(uri, { cacheDir: dir, sha256: SHA })).toBe(path); // cached on the volume
    expect(hits.length).toBe(before);
    const detector = await loadDetector(path, { sha256: SHA, threads: 1 });
    expect(detector.head).toBe("yolov8");
    await detector.close();
  });

  it("sends the Secret's user and password as Basic auth, or its token as Bearer, and never shows them", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vigil-models-"));
    const uri = `${base}/private/yolov8n.onnx`;
    const basic = { username: "ml", password: "pa ss" };
    expect(readFileSync(await resolveModelUri(uri, { cacheDir: dir, credentials: basic })).equals(MODEL)).toBe(true);
    const bearer = await resolveModelUri(uri, { cacheDir: join(dir, "t"), credentials: { token: "t0ken" } });
    expect(readFileSync(bearer).equals(MODEL)).toBe(true);
    const wrong = await resolveModelUri(uri, {
      cacheDir: join(dir, "b"),
      credentials: { username: "ml", password: "nope" },
    }).catch((e) => e);
    expect(String(wrong)).toMatch(/model\.uri http:\/\/127\.0\.0\.1:\d+\/private\/yolov8n\.onnx: HTTP 401/);
    expect(String(wrong)).not.toContain("nope");
  });

  it("refuses credentials inside the URL, naming the Secret reference instead, and never shows them", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vigil-models-"));
    const uri = `${base.replace("http://", "http://ml:pa%20ss@")}/private/yolov8n.onnx`;
    const before = hits.length;
    const err = await resolveModelUri(uri, { cacheDir: dir }).catch((e) => e);
    expect(String(err)).toMatch(/must not carry credentials; reference a Secret in model\.credentialsSecretRef/);
    expect(String(err)).not.toContain("pa%20ss");
    expect(hits.length).toBe(before); // refused before any request
  });

  it("refuses a download whose sha256 differs, and keeps no file", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vigil-models-"));
    await expect(
      resolveModelUri(`${base}/models/yolov8n.onnx?token=hunter2`, { cacheDir: dir, sha256: "0".repeat(64) }),
    ).rejects.toThrow(/downloaded sha256 is 9697a185.*model\.sha256 says 0000/);
    expect(await readdir(dir)).toEqual([]);
  });

  it("names the HTTP status, a cut download and a refused connection, never the token", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vigil-models-"));
    const err404 = await resolveModelUri(`${base}/missing.onnx?token=hunter2`, { cacheDir: dir }).catch((e) => e);
    expect(String(err404)).toMatch(/model\.uri http:\/\/127\.0\.0\.1:\d+\/missing\.onnx\?…: HTTP 404 Not Found/);
    expect(String(err404)).not.toContain("hunter2");
    await expect(resolveModelUri(`${base}/cut`, { cacheDir: dir })).rejects.toThrow(/download failed/);
    const closed = await freePort(); // nobody listens there
    await expect(resolveModelUri(`http://127.0.0.1:${closed}/m.onnx`, { cacheDir: dir })).rejects.toThrow(
      /download failed \(ECONNREFUSED\)/,
    );
    expect(await readdir(dir)).toEqual([]);
  });

  it("takes file:// and plain paths as they are, and refuses other schemes by name", async () => {
    expect(await resolveModelUri("file:///models/a%20b.onnx", { cacheDir: "/nonexistent" })).toBe("/models/a b.onnx");
    expect(await resolveModelUri("/models/x.onnx", { cacheDir: "/nonexistent" })).toBe("/models/x.onnx");
    await expect(resolveModelUri("s3://bucket/x.onnx", { cacheDir: "/nonexistent" })).rejects.toThrow(
      /model\.uri s3:\/\/bucket\/x\.onnx: only file:\/\/ and http\(s\):\/\/ models can be loaded/,
    );
  });
});
