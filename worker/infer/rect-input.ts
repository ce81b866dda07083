// Rectangular input for a YOLOv8/v11 model exported at a fixed square size, the way Ultralytics' rect inference
// (and DeepStream's fixed 960×544 networks) feed a wide camera: letterboxed to 640×384 for 16:9, not 640×640.
// The convolutions do not care about the input's size; only the head's baked constants do. An export with a fixed
// size folds the anchor points [1, 2, N] and strides [1, N] (N = Σ (S/s)² over strides 8, 16, 32) into constants,
// and the DFL's Reshapes into shapes that name N. Here those are regenerated for the new size, after checking that
// the same rule reproduces the square ones exactly, so a head laid out any other way is refused, not guessed at.
// Measured (YOLOv8n, onnxruntime CPU, 2 threads, Intel Xeon): 640×640 45 ms, 640×480 34 ms, 640×384 26–27 ms; the
// same 7 people on a vtest.avi frame at 640×480 as at 640×640, IoU 0.984–0.998.

import type { InputShape } from "./letterbox.ts";
import {
  ATTR,
  ELEM,
  GRAPH,
  graphOf,
  MODEL_GRAPH,
  message,
  modelInput,
  NODE,
  parse,
  sub,
  TENSOR,
} from "./onnx-graph.ts";
import { bytesField, type Field, intField, parseMessage, readPackedVarints, text, writeMessage } from "./onnx-wire.ts";

/** YOLOv8/v11's detection strides (P3, P4, P5). */
export const YOLO_STRIDES = [8, 16, 32] as const;
const LARGEST = 32;

/** Rows of anchors the head has at this input size: one per grid cell of each stride. */
export const anchorCount = (s: InputShape) =>
  YOLO_STRIDES.reduce((n, st) => n + Math.ceil(s.height / st) * Math.ceil(s.width / st), 0);

/**
 * Ultralytics' make_anchors, as exported: [2, N] cell centres (x row, then y row), and [N] strides; the cells of
 * each stride row-major, strides in ascending order.
 */
export function anchorsFor(s: InputShape): { points: Float32Array; strides: Float32Array } {
  const n = anchorCount(s);
  const points = new Float32Array(2 * n);
  const strides = new Float32Array(n);
  let k = 0;
  for (const st of YOLO_STRIDES) {
    const h = Math.ceil(s.height / st);
    const w = Math.ceil(s.width / st);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++, k++) {
        points[k] = x + 0.5;
        points[n + k] = y + 0.5;
        strides[k] = st;
      }
  }
  return { points, strides };
}

/** Why a shape cannot be fed to a YOLO model: each side a positive multiple of the largest stride. */
export function shapeProblem(s: InputShape): string | undefined {
  for (const [name, v] of [
    ["width", s.width],
    ["height", s.height],
  ] as const)
    if (!(Number.isInteger(v) && v >= LARGEST && v % LARGEST === 0))
      return `input ${name} ${v} must be a positive multiple of ${LARGEST}`;
  return undefined;
}

type Tensor = { dims: number[]; type: bigint; floats?: Float32Array; ints?: bigint[] };

function readTensor(t: Field[]): Tensor {
  const dims = sub(t, TENSOR.dims).flatMap((f) =>
    f.wire === 0 ? [Number(f.value as bigint)] : readPackedVarints(f.value as Uint8Array).map(Number),
  );
  const type = (sub(t, TENSOR.dataType)[0]?.value as bigint | undefined) ?? 0n;
  const raw = sub(t, TENSOR.rawData)[0]?.value as Uint8Array | undefined;
  const copy = (b: Uint8Array) => new Uint8Array(b).buffer; // aligned
  if (type === ELEM.float) {
    if (raw) return { dims, type, floats: new Float32Array(copy(raw)) };
    // Packed (one run of float32s) or one field per value (wire type 5): the same bytes either way.
    const packed = sub(t, TENSOR.floatData).map((f) => new Float32Array(copy(f.value as Uint8Array)));
    const floats = new Float32Array(packed.reduce((a, p) => a + p.length, 0));
    let at = 0;
    for (const p of packed) {
      floats.set(p, at);
      at += p.length;
    }
    return { dims, type, floats };
  }
  if (type === ELEM.int64) {
    if (raw) return { dims, type, ints: [...new BigInt64Array(copy(raw))] };
    const ints = sub(t, TENSOR.int64Data).flatMap((f) =>
      f.wire === 0 ? [BigInt.asIntN(64, f.value as bigint)] : readPackedVarints(f.value as Uint8Array),
    );
    return { dims, type, ints };
  }
  return { dims, type };
}

/** The tensor with new dims and values, its data written as raw_data whatever it was before. */
function writeTensor(t: Field[], dims: number[], data: Float32Array | BigInt64Array): Field[] {
  const kept = t.filter(
    (f) =>
      f.num !== TENSOR.dims && f.num !== TENSOR.rawData && f.num !== TENSOR.floatData && f.num !== TENSOR.int64Data,
  );
  return [
    ...dims.map((d) => intField(TENSOR.dims, d)),
    ...kept,
    bytesField(TENSOR.rawData, new Uint8Array(data.buffer, data.byteOffset, data.byteLength)),
  ];
}

const equal = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * The model, taking [N, 3, height, width] in place of its square [N, 3, S, S] float input (a symbolic batch stays
 * symbolic), with its head's constants made for that size. Throws, saying why, for a model it cannot rewrite.
 */
export function withInputShape(model: Uint8Array, shape: InputShape): Uint8Array {
  const problem = shapeProblem(shape);
  if (problem) throw new Error(problem);
  const input = modelInput(model);
  const [, , h, w] = input.dims;
  if (input.form !== "float-nchw" || typeof h !== "number" || h !== w)
    throw new Error(`the model's input ${input.name} is not a square float [N, 3, S, S]; cannot resize it`);
  const from = { width: w, height: h };
  if (shapeProblem(from)) throw new Error(`the model's input side ${w} is not a multiple of ${LARGEST}`);
  if (from.width === shape.width && from.height === shape.height) return model;
  const n0 = anchorCount(from);
  const n1 = anchorCount(shape);
  const old = anchorsFor(from);
  const next = anchorsFor(shape);

  const { modelFields, graphField, graph } = graphOf(model);
  const nodes = sub(graph, GRAPH.node).map(parse);
  const reshapeShapes = new Set(
    nodes.filter((n) => text(sub(n, NODE.opType)[0]) === "Reshape").map((n) => text(sub(n, NODE.input)[1])),
  );
  const found = { anchors: 0, strides: 0, shapes: 0 };
  const rewrite = (t: Field[], name: string): Field[] => {
    const v = readTensor(t);
    const last = v.dims.at(-1);
    const count = v.dims.reduce((a, b) => a * b, 1);
    if (v.floats && last === n0 && count === 2 * n0 && equal(v.floats, old.points)) {
      found.anchors++;
      return writeTensor(t, [...v.dims.slice(0, -1), n1], next.points);
    }
    if (v.floats && last === n0 && count === n0 && equal(v.floats, old.strides)) {
      found.strides++;
      return writeTensor(t, [...v.dims.slice(0, -1), n1], next.strides);
    }
    const names = v.ints?.some((x) => x === BigInt(n0));
    if (v.ints && names && reshapeShapes.has(name)) {
      found.shapes++;
      return writeTensor(
        t,
        v.dims,
        BigInt64Array.from(v.ints, (x) => (x === BigInt(n0) ? BigInt(n1) : x)),
      );
    }
    if (names || v.dims.includes(n0))
      throw new Error(`constant ${name} depends on the input size in a way this rewrite does not know`);
    return t;
  };

  const out = graph
    .filter((f) => f.num !== GRAPH.valueInfo) // intermediate shapes name the old size; onnxruntime infers them
    .map((f) => {
      if (f.num === GRAPH.initializer) {
        const t = parse(f);
        return message(GRAPH.initializer, rewrite(t, text(sub(t, TENSOR.name)[0])));
      }
      if (f.num === GRAPH.node) {
        const n = parse(f);
        if (text(sub(n, NODE.opType)[0]) !== "Constant") return f;
        const output = text(sub(n, NODE.output)[0]);
        return message(
          GRAPH.node,
          n.map((a) => {
            if (a.num !== NODE.attribute) return a;
            const attr = parse(a);
            if (text(sub(attr, ATTR.name)[0]) !== "value") return a;
            return message(
              NODE.attribute,
              attr.map((x) => (x.num === ATTR.t ? message(ATTR.t, rewrite(parse(x), output)) : x)),
            );
          }),
        );
      }
      if (f.num === GRAPH.input && text(sub(parse(f), 1)[0]) === input.name)
        return message(
          GRAPH.input,
          withDims(parse(f), (d, i) => (i === 2 ? shape.height : i === 3 ? shape.width : d)),
        );
      if (f.num === GRAPH.output)
        return message(
          GRAPH.output,
          withDims(parse(f), (d) => (d === n0 ? n1 : d)),
        );
      return f;
    });
  if (found.anchors !== 1 || found.strides !== 1)
    throw new Error(
      `not a YOLOv8/v11 head with anchors for ${w}×${h} folded in (found ${found.anchors} anchor and ${found.strides} stride constants)`,
    );
  return writeMessage(modelFields.map((f) => (f === graphField ? message(MODEL_GRAPH, out) : f)));
}

/** ValueInfoProto with each fixed dimension mapped (type(2) → tensor_type(1) → shape(2) → dim(1) → dim_value(1)). */
function withDims(info: Field[], fn: (d: number, i: number) => number): Field[] {
  const edit = (fields: Field[], num: number, inner: (f: Field[]) => Field[]) =>
    fields.map((f) => (f.num === num ? message(num, inner(parse(f))) : f));
  return edit(info, 2, (type) =>
    edit(type, 1, (tensor) =>
      edit(tensor, 2, (shape) => {
        let i = 0;
        return shape.map((d) => {
          if (d.num !== 1) return d;
          const k = i++;
          const dim = parseMessage(d.value as Uint8Array);
          const value = sub(dim, 1)[0];
          if (!value) return d;
          return message(1, [intField(1, fn(Number(value.value as bigint), k)), ...dim.filter((x) => x.num !== 1)]);
        });
      }),
    ),
  );
}
