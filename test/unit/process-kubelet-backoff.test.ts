import { describe, expect, it } from "vitest";
import { afterRestart, type BackoffEntry, restartDelay } from "../setup/kubelet/backoff.ts";
import { LogTail } from "../setup/kubelet/container.ts";
import { imageRepository, isImageOf } from "../setup/kubelet/image.ts";

describe("restart backoff", () => {
  it("restarts the first crash at once, then waits 10 s, 20 s, 40 s … capped at 300 s", () => {
    let entry: BackoffEntry | undefined;
    let now = 0;
    const delays: number[] = [];
    for (let i = 0; i < 8; i++) {
      const finishedAt = now + 1000; // each run lasts 1 s
      const d = restartDelay(entry, finishedAt, finishedAt);
      delays.push(d);
      now = finishedAt + d;
      entry = afterRestart(entry, now);
    }
    expect(delays).toEqual([0, 10_000, 20_000, 40_000, 80_000, 160_000, 300_000, 300_000]);
  });

  it("counts the delay from the container's finish time", () => {
    const entry = { delayMs: 20_000, updatedAt: 0 };
    expect(restartDelay(entry, 5000, 12_000)).toBe(13_000);
    expect(restartDelay(entry, 5000, 30_000)).toBe(0);
  });

  it("starts over after a container ran for more than 10 minutes", () => {
    const entry = { delayMs: 300_000, updatedAt: 0 };
    expect(restartDelay(entry, 600_001, 600_001)).toBe(0);
    expect(afterRestart(entry, 600_001)).toEqual({ delayMs: 10_000, updatedAt: 600_001 });
    expect(restartDelay(entry, 599_000, 599_000)).toBe(300_000);
  });
});

describe("image repository", () => {
  it("drops the tag and digest but keeps a registry port", () => {
    expect(imageRepository("ghcr.io/vigil-dev/vigil:0.1.0")).toBe("ghcr.io/vigil-dev/vigil");
    expect(imageRepository("ghcr.io/vigil-dev/vigil@sha256:abc")).toBe("ghcr.io/vigil-dev/vigil");
    expect(imageRepository("ghcr.io/vigil-dev/vigil:0.2@sha256:abc")).toBe("ghcr.io/vigil-dev/vigil");
    expect(imageRepository("localhost:5000/vigil")).toBe("localhost:5000/vigil");
    expect(isImageOf("ghcr.io/vigil-dev/vigil", "ghcr.io/vigil-dev/vigil")).toBe(true);
    expect(isImageOf("ghcr.io/vigil-dev/vigil-extra:1", "ghcr.io/vigil-dev/vigil")).toBe(false);
    expect(isImageOf(undefined, "ghcr.io/vigil-dev/vigil")).toBe(false);
  });
});

describe("log tail", () => {
  it("keeps about the last max bytes", () => {
    const t = new LogTail(10);
    for (const s of ["aaaa", "bbbb", "cccc", "dd"]) t.push(s);
    expect(t.text()).toBe("bbbbccccdd");
    t.push("0123456789AB");
    expect(t.text()).toBe("23456789AB");
  });
});
