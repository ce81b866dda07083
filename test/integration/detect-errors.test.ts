// Bad input to the worker's pipeline gets a clear error naming the cause: `vigil detect` as a user runs it.
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { loadDetector } from "../../worker/infer/session.ts";
import { loadThreadedDetector } from "../../worker/infer/threaded.ts";
import { identityModel } from "../setup/onnx.ts";
import { ROOT } from "../setup/operator-env.ts";
import { FIXTURES } from "../setup/services.ts";

const VIDEO = join(FIXTURES, "vtest.avi");
const tmp = (name: string, data: Buffer | string) => {
  const f = join(tmpdir(), `vigil-${process.pid}-${name}`);
  writeFileSync(f, data);
  return f;
};

const detect = (...args: string[]) => run(["detect", ...args]);

async function run(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stderr: string; stdout: string }> {
  try {
    const r = await promisify(execFile)(process.execPath, [join(ROOT, "bin", "vigil.ts"), ...args], {
      maxBuffer: 1 << 24,
      env: { ...process.env, ...env },
    });
    return { code: 0, ...r };
  } catch (err) {
    const e = err as { code: number; stderr: string; stdout: string };
    return { code: e.code, stderr: e.stderr, stdout: e.stdout };
  }
}

describe("vigil detect on bad input", { timeout: 30_000 }, () => {
  it("a corrupt model file", async () => {
    const r = await detect(
      "--source",
      VIDEO,
      "--model",
      tmp("corrupt.onnx", Buffer.from("definitely not onnx")),
      "--max-frames",
      "1",
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/corrupt\.onnx: not a loadable ONNX model/);
  });

  it("a model whose input is not an RGB image", async () => {
    const r = await detect(
      "--source",
      VIDEO,
      "--model",
      tmp("flat.onnx", identityModel([1, 4, 64, 32])),
      "--max-frames",
      "1",
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("input must be [batch, 3, H, W], got [1, 4, 64, 32]");
  });

  it("a model whose output is no YOLO head", async () => {
    const r = await detect(
      "--source",
      VIDEO,
      "--model",
      tmp("identity.onnx", identityModel([1, 3, 64, 64])),
      "--max-frames",
      "1",
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unrecognised YOLO output shape \[1, 3, 64, 64\]/);
  });

  it("a model file that does not exist", async () => {
    const r = await detect("--source", VIDEO, "--model", "/nonexistent/yolo.onnx");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("model /nonexistent/yolo.onnx: cannot read it (ENOENT)");
  });

  it("a source that is not a video", async () => {
    // Random bytes named like a video (ffmpeg would happily render a .txt file as text-mode video).
    const r = await detect(
      "--source",
      tmp("noise.mp4", Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 251))),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/noise\.mp4: not a video/);
  });

  it("a source file that does not exist", async () => {
    const r = await detect("--source", "/nonexistent/clip.mp4");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("/nonexistent/clip.mp4: file not found");
  });

  it("an unreachable stream, with the credentials kept out of the message", async () => {
    const r = await detect("--source", "rtsp://admin:hunter2@127.0.0.1:9/stream", "--max-frames", "1");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("rtsp://***@127.0.0.1:9/stream");
    expect(r.stderr).not.toContain("hunter2");
  }, 60_000);

  it("a class the model does not know", async () => {
    const r = await detect("--source", VIDEO, "--classes", "person,hairnet", "--max-frames", "1");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("detection.classes: the model does not know hairnet");
  });

  it("a model whose checksum differs from the pool's", async () => {
    await expect(loadDetector(join(FIXTURES, "yolov8n.onnx"), { sha256: "0".repeat(64) })).rejects.toThrow(
      /sha256 is 9697a185.*expects 0000/,
    );
  });

  it("a model whose input size differs from the pool's, or a batch fixed above 1", async () => {
    await expect(loadDetector(join(FIXTURES, "yolov8n.onnx"), { inputSize: 320 })).rejects.toThrow(
      /the pool says model.inputSize 320, the model takes 640×640/,
    );
    // Also when model.inputWidth × inputHeight is the shape the model already has.
    const shape = { inputSize: 320, inputShape: { width: 640, height: 640 } };
    await expect(loadDetector(join(FIXTURES, "yolov8n.onnx"), shape)).rejects.toThrow(
      /the pool says model.inputSize 320, the model takes 640×640/,
    );
    await expect(loadDetector(tmp("batch4.onnx", identityModel([4, 3, 64, 64])))).rejects.toThrow(
      /its batch is fixed at 4; export it with batch 1 or a dynamic batch/,
    );
  });

  it("a worker given class names that are not a JSON array names the variable", async () => {
    const r = await run(["worker", "--cameras", "/nonexistent.yaml"], {
      VIGIL_MODEL_CLASS_NAMES: "person,hairnet",
    });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("VIGIL_MODEL_CLASS_NAMES: must be a JSON array of class names");
  });

  it("GPU providers this host cannot load: the model runs on CPU and says why", async () => {
    const d = await loadThreadedDetector(join(FIXTURES, "yolov8n.onnx"), {
      providers: ["tensorrt", "cuda"],
      threads: 1,
    });
    try {
      expect(d.provider).toBe("cpu");
      expect(d.providerNote).toMatch(/^tensorrt: .+; cuda: .+/);
    } finally {
      await d.close();
    }
  });
});
