import { describe, expect, it } from "vitest";
import { classifyFfmpegError, isFileSource, redact, withCredentials } from "../../worker/ingest/source-url.ts";

describe("stream URLs", () => {
  it("injects percent-encoded credentials only into the URL ffmpeg opens", () => {
    expect(withCredentials("rtsp://cam:554/s1", { username: "admin", password: "p@ss:w/rd" })).toBe(
      "rtsp://admin:p%40ss%3Aw%2Frd@cam:554/s1",
    );
    expect(withCredentials("rtsp://cam/s1")).toBe("rtsp://cam/s1");
  });

  it("redacts credentials from URLs inside any text, and listed secrets wherever they appear", () => {
    const line = "Input #0, rtsp, from 'rtsp://admin:hunter2@10.0.0.5:554/stream':";
    expect(redact(line)).toBe("Input #0, rtsp, from 'rtsp://***@10.0.0.5:554/stream':");
    expect(redact("auth failed for hunter2 and p%40ss", ["hunter2", "p@ss"])).toBe("auth failed for *** and ***");
  });

  it("tells files from streams", () => {
    expect(isFileSource("/data/clip.mp4")).toBe(true);
    expect(isFileSource("file:///data/clip.mp4")).toBe(true);
    expect(isFileSource("rtsp://cam/s1")).toBe(false);
    expect(isFileSource("https://cam/mjpeg")).toBe(false);
  });

  it("names the cause of ffmpeg's failure", () => {
    expect(classifyFfmpegError("[rtsp @ 0x1] method DESCRIBE failed: 401 Unauthorized")).toBe("authentication failed");
    expect(classifyFfmpegError("rtsp://***@127.0.0.1:9/x: Connection refused")).toBe("connection refused");
    expect(classifyFfmpegError("moov atom not found\n/tmp/x.mp4: Invalid data found when processing input")).toBe(
      "not a video",
    );
    expect(classifyFfmpegError("[rtsp @ 0x1] method DESCRIBE failed: 404 Not Found")).toBe("stream not found");
    expect(classifyFfmpegError("/nope.mp4: No such file or directory")).toBe("file not found");
    expect(classifyFfmpegError("something odd")).toBe("stream error");
  });
});
