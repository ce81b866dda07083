// Annotated JPEG frames for live view: boxes with class and track id, and the camera's zones, drawn as an SVG
// overlay and encoded by sharp (libvips, off the JS thread). Only called while someone watches.
import sharp from "sharp";
import type { CameraDetectionSpec } from "../../operator/api/camera-detection.ts";
import type { FrameResult } from "../camera.ts";
import { type InputShape, letterboxParams } from "../infer/letterbox.ts";

const esc = (s: string) => s.replace(/[<>&"]/g, (c) => `&#${c.charCodeAt(0)};`);

export async function renderAnnotated(
  letterboxed: Buffer,
  shape: InputShape,
  r: Pick<FrameResult, "detections" | "width" | "height">,
  zones: CameraDetectionSpec["zones"],
  classNames: readonly string[],
  quality = 70,
): Promise<Buffer> {
  const lb = letterboxParams(r.width, r.height, shape);
  const w = lb.newW;
  const h = lb.newH;
  const parts: string[] = [];
  for (const z of zones) {
    const pts = z.polygon.map(([x, y]) => `${((x ?? 0) * w).toFixed(1)},${((y ?? 0) * h).toFixed(1)}`).join(" ");
    parts.push(`<polygon points="${pts}" fill="rgba(255,200,0,0.15)" stroke="#ffc800" stroke-width="2"/>`);
    const [x0, y0] = z.polygon[0] ?? [0, 0];
    parts.push(
      `<text x="${((x0 ?? 0) * w + 4).toFixed(0)}" y="${((y0 ?? 0) * h + 14).toFixed(0)}" fill="#ffc800" font-size="13" font-family="sans-serif">${esc(z.name)}</text>`,
    );
  }
  const d = r.detections;
  for (let i = 0; i < d.length; i++) {
    const [x1, y1, x2, y2] = [0, 1, 2, 3].map((k) => (d.xyxy[i * 4 + k] as number) * lb.scale) as [
      number,
      number,
      number,
      number,
    ];
    const label = `${classNames[d.classId[i] as number] ?? "?"} ${d.trackId[i] || ""}`.trim();
    parts.push(
      `<rect x="${x1.toFixed(1)}" y="${y1.toFixed(1)}" width="${(x2 - x1).toFixed(1)}" height="${(y2 - y1).toFixed(1)}" fill="none" stroke="#00ff66" stroke-width="2"/>`,
    );
    parts.push(
      `<text x="${x1.toFixed(0)}" y="${Math.max(12, y1 - 3).toFixed(0)}" fill="#00ff66" font-size="12" font-family="sans-serif">${esc(label)}</text>`,
    );
  }
  const svg = Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}">${parts.join("")}</svg>`);
  return sharp(letterboxed, { raw: { width: shape.width, height: shape.height, channels: 3 } })
    .extract({ left: lb.padX, top: lb.padY, width: w, height: h })
    .composite([{ input: svg }])
    .jpeg({ quality })
    .toBuffer();
}
