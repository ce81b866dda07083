// Rewrites a YOLO ONNX model exported with a fixed batch of 1 into one with a dynamic batch axis, the way
// `yolo export dynamic=True` would have written it: the image input and the output get a symbolic first dimension
// and every Reshape whose target shape starts with a literal 1 copies the batch instead (0 = "keep this dimension").
// We use it to make the batch-capable twin of the test model (hack/fixtures.sh); users can run it on theirs:
//   node hack/onnx/dynamic-batch.ts model.onnx model-dynamic.onnx
import { readFileSync, writeFileSync } from "node:fs";
import { bytesField, type Field, parseMessage, readPackedVarints, text, varint, writeMessage } from "./wire.ts";

// Field numbers from onnx.proto.
const MODEL_GRAPH = 7;
const GRAPH = { node: 1, initializer: 5, input: 11, output: 12, valueInfo: 13 };
const NODE = { input: 1, output: 2, opType: 4, attribute: 5 };
const ATTR = { name: 1, i: 3, t: 5 };
const TENSOR = { dims: 1, dataType: 2, int64Data: 7, name: 8, rawData: 9 };
const INT64 = 7n;

const sub = (fields: Field[], num: number) => fields.filter((f) => f.num === num);
const edit = (fields: Field[], num: number, fn: (inner: Field[]) => Field[]): Field[] =>
  fields.map((f) => (f.num === num ? { ...f, value: writeMessage(fn(parseMessage(f.value as Uint8Array))) } : f));

/** ValueInfoProto with its first dimension made symbolic: type(2) → tensor_type(1) → shape(2) → first dim(1). */
function symbolicBatch(valueInfo: Field[]): Field[] {
  return edit(valueInfo, 2, (type) =>
    edit(type, 1, (tensor) =>
      edit(tensor, 2, (shape) => {
        const firstDim = shape.findIndex((f) => f.num === 1);
        if (firstDim < 0) throw new Error(`${text(valueInfo[0])} has no dimensions`);
        return shape.map((f, i) => (i === firstDim ? bytesField(1, writeMessage([bytesField(2, "batch")])) : f));
      }),
    ),
  );
}

/** An int64 TensorProto whose first value is 1, with that value made 0; undefined for any other tensor. */
function batchFromInput(tensor: Field[]): Field[] | undefined {
  if (sub(tensor, TENSOR.dataType)[0]?.value !== INT64) return undefined;
  const raw = sub(tensor, TENSOR.rawData)[0];
  if (raw) {
    const values = new BigInt64Array(new Uint8Array(raw.value as Uint8Array).buffer);
    if (values[0] !== 1n) return undefined;
    values[0] = 0n;
    return tensor.map((f) => (f === raw ? bytesField(TENSOR.rawData, new Uint8Array(values.buffer)) : f));
  }
  const first = sub(tensor, TENSOR.int64Data)[0];
  if (!first) return undefined;
  if (first.wire === 0)
    return first.value === 1n ? tensor.map((f) => (f === first ? { ...f, value: 0n } : f)) : undefined;
  // Packed (proto3's default for repeated int64): one length-delimited run of varints.
  const values = readPackedVarints(first.value as Uint8Array);
  if (values[0] !== 1n) return undefined;
  values[0] = 0n;
  const packed = Uint8Array.from(values.flatMap((v) => varint(v)));
  return tensor.map((f) => (f === first ? { ...f, value: packed } : f));
}

/** `inputsOnly` marks only the input and output dynamic, leaving the graph pinned: a broken export, for tests. */
export function makeBatchDynamic(
  model: Uint8Array,
  opts: { inputsOnly?: boolean } = {},
): { model: Uint8Array; reshapes: number } {
  const modelFields = parseMessage(model);
  const graphField = sub(modelFields, MODEL_GRAPH)[0];
  if (!graphField) throw new Error("not an ONNX model: no graph");
  let graph = parseMessage(graphField.value as Uint8Array);

  const nodes = sub(graph, GRAPH.node).map((f) => parseMessage(f.value as Uint8Array));
  const shapeInputs = new Set<string>();
  const otherInputs = new Set<string>();
  for (const n of nodes) {
    const inputs = sub(n, NODE.input).map(text);
    if (text(sub(n, NODE.opType)[0]) === "Reshape") {
      const allowZero = sub(n, NODE.attribute)
        .map((a) => parseMessage(a.value as Uint8Array))
        .find((a) => text(sub(a, ATTR.name)[0]) === "allowzero");
      if (allowZero && sub(allowZero, ATTR.i)[0]?.value === 1n)
        throw new Error("a Reshape has allowzero=1: 0 would mean a zero-sized dimension there");
      if (inputs[1]) shapeInputs.add(inputs[1]);
      if (inputs[0]) otherInputs.add(inputs[0]);
    } else for (const i of inputs) otherInputs.add(i);
  }
  for (const name of shapeInputs)
    if (otherInputs.has(name)) throw new Error(`shape tensor ${name} is also used outside Reshape; not rewriting it`);

  let reshapes = 0;
  const rewriteTensor = (tensor: Field[]) => {
    const out = opts.inputsOnly ? undefined : batchFromInput(tensor);
    if (!out) return tensor;
    reshapes++;
    return out;
  };
  graph = graph.map((f) => {
    if (f.num === GRAPH.node) {
      const node = parseMessage(f.value as Uint8Array);
      const output = text(sub(node, NODE.output)[0]);
      if (text(sub(node, NODE.opType)[0]) !== "Constant" || !shapeInputs.has(output)) return f;
      const attrs = edit(node, NODE.attribute, (attr) =>
        text(sub(attr, ATTR.name)[0]) === "value" ? edit(attr, ATTR.t, rewriteTensor) : attr,
      );
      return { ...f, value: writeMessage(attrs) };
    }
    if (f.num === GRAPH.initializer) {
      const tensor = parseMessage(f.value as Uint8Array);
      return shapeInputs.has(text(sub(tensor, TENSOR.name)[0]))
        ? { ...f, value: writeMessage(rewriteTensor(tensor)) }
        : f;
    }
    return f;
  });
  const initializers = new Set(
    sub(graph, GRAPH.initializer).map((f) => text(sub(parseMessage(f.value as Uint8Array), TENSOR.name)[0])),
  );
  graph = graph
    // Intermediate shape hints still say batch 1; onnxruntime infers them again.
    .filter((f) => f.num !== GRAPH.valueInfo)
    .map((f) => {
      if (f.num !== GRAPH.input && f.num !== GRAPH.output) return f;
      const info = parseMessage(f.value as Uint8Array);
      if (f.num === GRAPH.input && initializers.has(text(sub(info, 1)[0]))) return f; // a weight listed as input
      return { ...f, value: writeMessage(symbolicBatch(info)) };
    });
  const out = modelFields.map((f) => (f === graphField ? { ...f, value: writeMessage(graph) } : f));
  return { model: writeMessage(out), reshapes };
}

/**
 * Runs both models on onnxruntime: the rewritten one must give the original's output at batch 1, and a batch of
 * 2 must give that output twice. A Reshape whose leading 1 was not the batch (say [C] → [1, C, 1, 1]) fails here.
 */
export async function verifyBatchDynamic(original: Uint8Array, rewritten: Uint8Array): Promise<void> {
  const ort = (await import("onnxruntime-node")).default;
  const [a, b] = await Promise.all([original, rewritten].map((m) => ort.InferenceSession.create(m)));
  if (!a || !b) throw new Error("could not load the models");
  const meta = (a as unknown as { inputMetadata: { name: string; shape: (number | string)[] }[] }).inputMetadata;
  const feeds = (batch: number) =>
    Object.fromEntries(
      meta.map(({ name, shape }) => {
        const dims = shape.map((d, i) => (i === 0 ? batch : typeof d === "number" && d > 0 ? d : 1));
        const per = dims.slice(1).reduce((x, y) => x * y, 1);
        // The same pseudo-random frame for each batch item.
        const data = Float32Array.from({ length: batch * per }, (_, i) => (((i % per) * 7919) % 255) / 255);
        return [name, new ort.Tensor("float32", data, dims)];
      }),
    );
  const want = await a.run(feeds(1));
  const one = await b.run(feeds(1));
  const two = await b.run(feeds(2));
  for (const name of a.outputNames) {
    const w = want[name]?.data as Float32Array;
    const o = one[name]?.data as Float32Array;
    const t = two[name]?.data as Float32Array;
    if (o.length !== w.length || t.length !== 2 * w.length)
      throw new Error(`output ${name}: ${o.length} and ${t.length} values for batches of 1 and 2; want ${w.length}`);
    let diff = 0;
    for (let i = 0; i < w.length; i++)
      diff = Math.max(
        diff,
        Math.abs((o[i] as number) - (w[i] as number)),
        Math.abs((t[w.length + i] as number) - (w[i] as number)),
      );
    if (diff > 1e-3) throw new Error(`output ${name} differs from the original's by up to ${diff}`);
  }
  await Promise.all([a.release(), b.release()]);
}

if (import.meta.main) {
  const [input, output] = process.argv.slice(2);
  if (!input || !output) {
    console.error("usage: node hack/onnx/dynamic-batch.ts <model.onnx> <out.onnx>");
    process.exit(2);
  }
  const original = readFileSync(input);
  const { model, reshapes } = makeBatchDynamic(original);
  if (reshapes === 0) console.error(`${input}: no Reshape pinned the batch (already dynamic, or none to rewrite)`);
  try {
    await verifyBatchDynamic(original, model);
  } catch (err) {
    console.error(`${input}: the rewritten model does not batch correctly, nothing written: ${(err as Error).message}`);
    process.exit(1);
  }
  writeFileSync(output, model);
  console.error(`${output}: dynamic batch (${reshapes} Reshape shape(s) rewritten; checked at batches 1 and 2)`);
}
