// The one value type every pipeline stage passes on (after supervision's Detections): parallel typed arrays,
// so per-frame code allocates a handful of buffers instead of an object per box.

export type Detections = {
  /** Number of detections. */
  readonly length: number;
  /** x1, y1, x2, y2 per detection, in source-frame pixels. */
  readonly xyxy: Float32Array;
  readonly score: Float32Array;
  readonly classId: Uint16Array;
  /** Tracker ids (0 = untracked) once a tracker has run. */
  readonly trackId: Int32Array;
};

export function emptyDetections(capacity = 0): Detections {
  return {
    length: 0,
    xyxy: new Float32Array(capacity * 4),
    score: new Float32Array(capacity),
    classId: new Uint16Array(capacity),
    trackId: new Int32Array(capacity),
  };
}

/** Builds Detections from plain boxes; handy at the edges and in tests, not in per-frame code. */
export function detectionsFrom(
  items: readonly {
    box: readonly [number, number, number, number];
    score: number;
    classId: number;
    trackId?: number;
  }[],
): Detections {
  const d = emptyDetections(items.length);
  items.forEach((it, i) => {
    d.xyxy.set(it.box, i * 4);
    d.score[i] = it.score;
    d.classId[i] = it.classId;
    d.trackId[i] = it.trackId ?? 0;
  });
  return { ...d, length: items.length };
}

/** Keeps the detections whose index passes `keep` (supervision's boolean-mask filtering). */
export function filterDetections(d: Detections, keep: (i: number) => boolean): Detections {
  const idx: number[] = [];
  for (let i = 0; i < d.length; i++) if (keep(i)) idx.push(i);
  const out = emptyDetections(idx.length);
  idx.forEach((src, dst) => {
    out.xyxy.set(d.xyxy.subarray(src * 4, src * 4 + 4), dst * 4);
    out.score[dst] = d.score[src] as number;
    out.classId[dst] = d.classId[src] as number;
    out.trackId[dst] = d.trackId[src] as number;
  });
  return { ...out, length: idx.length };
}

export function boxAt(d: Detections, i: number): [number, number, number, number] {
  const o = i * 4;
  return [d.xyxy[o] as number, d.xyxy[o + 1] as number, d.xyxy[o + 2] as number, d.xyxy[o + 3] as number];
}

export const COCO_CLASSES = [
  "person",
  "bicycle",
  "car",
  "motorcycle",
  "airplane",
  "bus",
  "train",
  "truck",
  "boat",
  "traffic light",
  "fire hydrant",
  "stop sign",
  "parking meter",
  "bench",
  "bird",
  "cat",
  "dog",
  "horse",
  "sheep",
  "cow",
  "elephant",
  "bear",
  "zebra",
  "giraffe",
  "backpack",
  "umbrella",
  "handbag",
  "tie",
  "suitcase",
  "frisbee",
  "skis",
  "snowboard",
  "sports ball",
  "kite",
  "baseball bat",
  "baseball glove",
  "skateboard",
  "surfboard",
  "tennis racket",
  "bottle",
  "wine glass",
  "cup",
  "fork",
  "knife",
  "spoon",
  "bowl",
  "banana",
  "apple",
  "sandwich",
  "orange",
  "broccoli",
  "carrot",
  "hot dog",
  "pizza",
  "donut",
  "cake",
  "chair",
  "couch",
  "potted plant",
  "bed",
  "dining table",
  "toilet",
  "tv",
  "laptop",
  "mouse",
  "remote",
  "keyboard",
  "cell phone",
  "microwave",
  "oven",
  "toaster",
  "sink",
  "refrigerator",
  "book",
  "clock",
  "vase",
  "scissors",
  "teddy bear",
  "hair drier",
  "toothbrush",
] as const;
