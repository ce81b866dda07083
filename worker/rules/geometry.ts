// Geometry for the rules engine: zones are polygons in normalized frame coordinates (0..1, y down), boxes are
// [x1, y1, x2, y2] in source-frame pixels.

export type Box = readonly [number, number, number, number];
/** [x, y] points, normalized; the zod schema types them as number[] of length 2. */
export type Polygon = readonly (readonly number[])[];

// Tolerance for "on an edge" in normalized units: far below a pixel of any real frame, far above float noise.
const EDGE_EPS = 1e-9;

/**
 * Whether (x, y) lies inside the polygon (even-odd ray casting, so self-intersecting polygons behave like SVG's
 * evenodd fill, and concave ones work as drawn).
 *
 * Points on the boundary (edges and vertices) count as inside. Box anchors are clamped into the frame, so a person
 * cut off by the bottom of the picture has its feet at exactly y = 1, and a zone drawn along the frame edge has to
 * contain them. The price is that a point on an edge shared by two adjacent zones is in both, which is harmless:
 * zones are independent and may overlap anyway.
 */
export function pointInPolygon(x: number, y: number, polygon: Polygon): boolean {
  const n = polygon.length;
  if (n < 3) return false;
  let inside = false;
  for (let i = 0, j = n - 1; i < n; j = i++) {
    const pi = polygon[i] as readonly number[];
    const pj = polygon[j] as readonly number[];
    const xi = pi[0] as number;
    const yi = pi[1] as number;
    const xj = pj[0] as number;
    const yj = pj[1] as number;
    if (onSegment(x, y, xi, yi, xj, yj)) return true;
    // Half-open in y ((yi > y) !== (yj > y)) so a ray through a vertex counts it once, not twice or never.
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function onSegment(px: number, py: number, ax: number, ay: number, bx: number, by: number): boolean {
  const dx = bx - ax;
  const dy = by - ay;
  const cross = dx * (py - ay) - dy * (px - ax);
  if (Math.abs(cross) > EDGE_EPS * Math.max(1, Math.hypot(dx, dy))) return false;
  return (
    px >= Math.min(ax, bx) - EDGE_EPS &&
    px <= Math.max(ax, bx) + EDGE_EPS &&
    py >= Math.min(ay, by) - EDGE_EPS &&
    py <= Math.max(ay, by) + EDGE_EPS
  );
}

/**
 * The point of a box that decides which zone an object is in: bottom-centre ("feet", as Frigate does), normalized
 * by the frame size. The feet, not the box centre, because zones are drawn on the floor: a tall person standing
 * just in front of a zone has a centre that projects deep into it. Clamped to 0..1 because detectors put boxes a
 * little outside the frame at its edges.
 */
export function boxAnchor(box: Box, width: number, height: number): [number, number] {
  return [clamp01((box[0] + box[2]) / 2 / width), clamp01(box[3] / height)];
}

function clamp01(v: number): number {
  return Math.min(Math.max(v, 0), 1);
}

/**
 * Intersection area / area of `a`: how much of `a` lies inside `b` (0..1, 0 for an empty `a`). Asymmetric on
 * purpose: for PPE, `a` is the equipment and `b` the person, and a small hairnet fully inside a large person box
 * must score 1, which IoU would not give.
 */
export function boxOverlap(a: Box, b: Box): number {
  const area = (a[2] - a[0]) * (a[3] - a[1]);
  if (!(area > 0)) return 0;
  const w = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const h = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  return w > 0 && h > 0 ? (w * h) / area : 0;
}

/**
 * Minimum boxOverlap(equipment, person) for the equipment to count as worn by that person.
 *
 * Measured against the whole person box, not its upper part: required classes are not only headwear (vests,
 * gloves, aprons, boots), and a head region would need per-class knowledge the spec does not carry. Half the
 * equipment box inside the person box rejects a neighbour's helmet that merely touches it. Limitation: where person
 * boxes overlap heavily, one worn item can count for both people.
 */
export const PPE_MIN_OVERLAP = 0.5;
