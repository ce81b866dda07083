import { describe, expect, it } from "vitest";
import { fillInputTensor, letterboxParams, PAD_VALUE, toSource } from "../../worker/infer/letterbox.ts";

const PAD = Math.fround(114 / 255);

describe("letterboxParams", () => {
  it("fits 768x576 into 640 with the spare height split top and bottom", () => {
    const p = letterboxParams(768, 576, 640);
    expect(p.scale).toBeCloseTo(640 / 768, 12);
    expect(p.scale).toBeCloseTo(0.8333333, 6);
    expect(p.newW).toBe(640);
    expect(p.newH).toBe(480);
    expect(p.padX).toBe(0);
    expect(p.padY).toBe(80);
  });

  it("pads left and right for portrait sources", () => {
    expect(letterboxParams(480, 640, 640)).toEqual({ scale: 1, newW: 480, newH: 640, padX: 80, padY: 0 });
  });

  it("puts the odd pixel of padding at the bottom/right, as Ultralytics does", () => {
    // Total pad 1: Ultralytics gives top = round(0.5 - 0.1) = 0, bottom = round(0.5 + 0.1) = 1.
    const p = letterboxParams(640, 639, 640);
    expect(p).toEqual({ scale: 1, newW: 640, newH: 639, padX: 0, padY: 0 });
    // Total pad 161: top 80, bottom 81.
    const r = letterboxParams(640, 479, 640);
    expect(r.padY).toBe(80);
    expect(640 - r.newH - r.padY).toBe(81);
    // Total pad 3: top 1, bottom 2.
    const q = letterboxParams(637, 640, 640);
    expect(q.padX).toBe(1);
    expect(640 - q.newW - q.padX).toBe(2);
  });

  it("scales small sources up and 1080p down", () => {
    const up = letterboxParams(320, 240, 640);
    expect(up).toEqual({ scale: 2, newW: 640, newH: 480, padX: 0, padY: 80 });
    const hd = letterboxParams(1920, 1080, 640);
    expect(hd.scale).toBeCloseTo(1 / 3, 12);
    expect(hd.newW).toBe(640);
    expect(hd.newH).toBe(360);
    expect(hd.padY).toBe(140);
  });

  it("rejects nonsense sizes", () => {
    expect(() => letterboxParams(0, 576, 640)).toThrow(/0x576/);
    expect(() => letterboxParams(768, 576, 0)).toThrow(/model size/);
  });
});

describe("toSource", () => {
  it("maps the content corners back to the source corners", () => {
    const p = letterboxParams(768, 576, 640);
    expect(toSource(p, 0, 80)).toEqual([0, 0]);
    const [x, y] = toSource(p, 640, 560);
    expect(x).toBeCloseTo(768, 9);
    expect(y).toBeCloseTo(576, 9);
  });

  it("round-trips source points through the letterbox", () => {
    for (const [w, h] of [
      [768, 576],
      [1920, 1080],
      [480, 640],
      [637, 640],
    ] as const) {
      const p = letterboxParams(w, h, 640);
      for (const [sx, sy] of [
        [0, 0],
        [123.5, 45.25],
        [w / 2, h / 2],
        [w, h],
      ] as const) {
        const [x, y] = toSource(p, sx * p.scale + p.padX, sy * p.scale + p.padY);
        expect(x).toBeCloseTo(sx, 9);
        expect(y).toBeCloseTo(sy, 9);
      }
    }
  });
});

describe("fillInputTensor", () => {
  it("writes grey padding and normalised RGB planes (top/bottom padding)", () => {
    // 4x2 source into a 4x4 input: one pad row above and below.
    const p = letterboxParams(4, 2, 4);
    expect(p).toEqual({ scale: 1, newW: 4, newH: 2, padX: 0, padY: 1 });
    const rgb = new Uint8Array(4 * 2 * 3);
    for (let i = 0; i < 8; i++) {
      rgb[i * 3] = i * 30; // R
      rgb[i * 3 + 1] = 255 - i; // G
      rgb[i * 3 + 2] = i === 0 ? 0 : 255; // B
    }
    const out = new Float32Array(3 * 16).fill(Number.NaN); // a dirty reused tensor
    fillInputTensor(rgb, p, 4, out);

    expect(out.some(Number.isNaN)).toBe(false);
    for (let c = 0; c < 3; c++) {
      const plane = out.subarray(c * 16, c * 16 + 16);
      // Rows 0 and 3 are padding, including all four corners.
      for (const i of [0, 1, 2, 3, 12, 13, 14, 15]) expect(plane[i]).toBe(PAD);
    }
    expect(PAD).toBeCloseTo(PAD_VALUE / 255, 7);
    // Source pixel (x, y) lands at input (x, y + 1).
    for (let i = 0; i < 8; i++) {
      const d = 4 + i;
      expect(out[d]).toBe(Math.fround((i * 30) / 255));
      expect(out[16 + d]).toBe(Math.fround((255 - i) / 255));
      expect(out[32 + d]).toBe(i === 0 ? 0 : 1);
    }
  });

  it("pads left and right columns for portrait content", () => {
    // 2x4 source into a 4x4 input: one pad column either side.
    const p = letterboxParams(2, 4, 4);
    expect(p).toEqual({ scale: 1, newW: 2, newH: 4, padX: 1, padY: 0 });
    const rgb = new Uint8Array(2 * 4 * 3).fill(51); // 51/255 = 0.2
    const out = new Float32Array(3 * 16);
    fillInputTensor(rgb, p, 4, out);
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < 4; y++) {
        const row = c * 16 + y * 4;
        expect([out[row], out[row + 1], out[row + 2], out[row + 3]]).toEqual([
          PAD,
          Math.fround(0.2),
          Math.fround(0.2),
          PAD,
        ]);
      }
    }
  });

  it("fills a 640 input from a 768x576 camera frame scaled by ffmpeg to 640x480", () => {
    const size = 640;
    const p = letterboxParams(768, 576, size);
    const rgb = new Uint8Array(p.newW * p.newH * 3);
    for (let i = 0; i < rgb.length; i++) rgb[i] = (i * 7) & 255;
    const out = new Float32Array(3 * size * size);
    fillInputTensor(rgb, p, size, out);
    const plane = size * size;
    for (let c = 0; c < 3; c++) {
      const base = c * plane;
      expect(out[base]).toBe(PAD); // top-left
      expect(out[base + size - 1]).toBe(PAD); // top-right
      expect(out[base + 79 * size]).toBe(PAD); // last top pad row
      expect(out[base + plane - size]).toBe(PAD); // bottom-left
      expect(out[base + plane - 1]).toBe(PAD); // bottom-right
      expect(out[base + 560 * size]).toBe(PAD); // first bottom pad row
    }
    // Content pixel (x, y) in the scaled frame sits at input row y + 80.
    for (const [x, y] of [
      [0, 0],
      [639, 0],
      [321, 200],
      [639, 479],
    ] as const) {
      const s = (y * p.newW + x) * 3;
      const d = (y + 80) * size + x;
      expect(out[d]).toBe(Math.fround(rgb[s]! / 255));
      expect(out[plane + d]).toBe(Math.fround(rgb[s + 1]! / 255));
      expect(out[2 * plane + d]).toBe(Math.fround(rgb[s + 2]! / 255));
    }
  });

  it("refuses frames and tensors of the wrong size", () => {
    const p = letterboxParams(768, 576, 640);
    expect(() => fillInputTensor(new Uint8Array(10), p, 640, new Float32Array(3 * 640 * 640))).toThrow(/640x480x3/);
    expect(() => fillInputTensor(new Uint8Array(640 * 480 * 3), p, 640, new Float32Array(5))).toThrow(/3x640x640/);
  });
});
