// A task's JPEGs, encoded by sharp (libvips, off the JS thread) from the letterboxed RGB frame the pipeline already
// holds: the whole frame at low resolution, then one crop per subject. Frames arrive letterboxed to the model's
// input shape (ffmpeg scaled the source by min(W/w, H/h) and padded it with grey), so the grey bars are
// cut off and source-pixel boxes are mapped through the letterbox (crops.ts letterboxRegion). Crops are at that
// scaled resolution, the most the worker has (768×576 vtest.avi: 0.83 of the source), capped at CROP_MAX_SIDE.
import sharp from "sharp";
import type { TaskImage } from "../../assessor/messages.ts";
import { type InputShape, letterboxParams } from "../infer/letterbox.ts";
import { letterboxRegion, type Rect } from "./crops.ts";

/** Enough to see the scene; Qwen-VL counts a 320×240 image as 100 patch tokens, a 640×480 one as 400. */
export const FRAME_WIDTH = 320;
/** A close-up of one person needs no more; at most 16×16 patches (258 tokens) per crop. */
export const CROP_MAX_SIDE = 448;
const QUALITY = 80;

export type ImageInput = {
  /** Letterboxed RGB, the model's width×height×3. */
  letterboxed: Buffer;
  shape: InputShape;
  /** The source frame's size: what boxes are in. */
  width: number;
  height: number;
};

export async function encodeTaskImages(
  frame: ImageInput,
  crops: readonly Rect[],
  opts: { frameWidth?: number; cropMaxSide?: number; quality?: number } = {},
): Promise<TaskImage[]> {
  const { shape, width, height } = frame;
  const lb = letterboxParams(width, height, shape);
  const raw = { raw: { width: shape.width, height: shape.height, channels: 3 as const } };
  const quality = opts.quality ?? QUALITY;
  const maxSide = opts.cropMaxSide ?? CROP_MAX_SIDE;
  const encode = async (
    region: { left: number; top: number; width: number; height: number },
    resize: { width?: number; height?: number },
  ) => {
    const { data, info } = await sharp(frame.letterboxed, raw)
      .extract(region)
      .resize({ ...resize, fit: "inside", withoutEnlargement: true })
      .jpeg({ quality })
      .toBuffer({ resolveWithObject: true });
    return { jpeg_base64: data.toString("base64"), width: info.width, height: info.height };
  };
  const whole = encode(
    { left: lb.padX, top: lb.padY, width: lb.newW, height: lb.newH },
    { width: opts.frameWidth ?? FRAME_WIDTH },
  );
  const parts = crops.map((rect) =>
    encode(letterboxRegion(rect, width, height, shape), { width: maxSide, height: maxSide }),
  );
  const [f, ...cs] = await Promise.all([whole, ...parts]);
  return [
    { role: "frame", ...(f as Awaited<typeof whole>) },
    ...cs.map((c, i) => ({ role: "crop" as const, ...c, box: crops[i] as Rect })),
  ];
}
