import { describe, expect, it } from "vitest";
import { createMotionGate } from "../../worker/motion/gate.ts";

const SIDE = 128;
const AREA = { width: SIDE, height: SIDE };
function frame(fill: number, square?: { x: number; y: number; w: number; value: number }): Uint8Array {
  const f = new Uint8Array(SIDE * SIDE * 3).fill(fill);
  if (square)
    for (let y = square.y; y < square.y + square.w; y++)
      for (let x = square.x; x < square.x + square.w; x++)
        f.fill(square.value, (y * SIDE + x) * 3, (y * SIDE + x) * 3 + 3);
  return f;
}

describe("motion gate", () => {
  it("always runs the first frame, then skips identical frames", () => {
    const g = createMotionGate({ threshold: 0.01, maxSkipMs: 10_000 });
    expect(g.check(frame(100), AREA, 0)).toBe(true);
    expect(g.check(frame(100), AREA, 100)).toBe(false);
    expect(g.check(frame(102), AREA, 200)).toBe(false); // sensor noise below pixelDelta
    expect(g.stats).toMatchObject({ frames: 3, skipped: 2 });
  });

  it("runs inference when enough of the frame changes", () => {
    const g = createMotionGate({ threshold: 0.02, maxSkipMs: 10_000 });
    g.check(frame(100), AREA, 0);
    // A 16×16 square is 1.6 % of the frame: below 2 %.
    expect(g.check(frame(100, { x: 10, y: 10, w: 16, value: 250 }), AREA, 100)).toBe(false);
    // 32×32 is 6 %: motion.
    expect(g.check(frame(100, { x: 10, y: 10, w: 32, value: 250 }), AREA, 200)).toBe(true);
    expect(g.stats.lastChangedFraction).toBeGreaterThan(0.05);
  });

  it("re-checks a still scene after maxSkipMs", () => {
    const g = createMotionGate({ threshold: 0.02, maxSkipMs: 1000 });
    g.check(frame(50), AREA, 0);
    expect(g.check(frame(50), AREA, 999)).toBe(false);
    expect(g.check(frame(50), AREA, 1000)).toBe(true);
    expect(g.check(frame(50), AREA, 1500)).toBe(false);
  });

  it("compares with the last inferred frame, so slow drift accumulates", () => {
    const g = createMotionGate({ threshold: 0.5, maxSkipMs: 60_000, pixelDelta: 25 });
    g.check(frame(100), AREA, 0);
    expect(g.check(frame(115), AREA, 100)).toBe(false);
    expect(g.check(frame(130), AREA, 200)).toBe(true); // 30 levels from the reference, though 15 from the last frame
  });

  it("samples a rectangular frame across its whole width and height", () => {
    // 256×96, as a 640×384 input scaled down: a change only in the bottom-right corner must be seen, which a grid
    // laid out for a square (rows of the width's step) would miss or read past the end of the frame.
    const shape = { width: 256, height: 96 };
    const rect = (corner: number) => {
      const f = new Uint8Array(shape.width * shape.height * 3).fill(100);
      for (let y = 64; y < 96; y++) f.fill(corner, (y * shape.width + 192) * 3, (y * shape.width + 256) * 3);
      return f;
    };
    const g = createMotionGate({ threshold: 0.05, maxSkipMs: 60_000 });
    g.check(rect(100), shape, 0);
    expect(g.check(rect(100), shape, 100)).toBe(false);
    expect(g.check(rect(250), shape, 200)).toBe(true);
    // The corner is a twelfth of the frame (64×32 of 256×96): so is its share of the thumbnail.
    expect(g.stats.lastChangedFraction).toBeCloseTo(1 / 12, 2);
  });
});
