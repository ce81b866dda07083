// Preprocessing inside the model, as DeepStream and TensorRT do it on the device: a YOLO model that takes float
// CHW input [N, 3, S, S] (pixels / 255) is given a uint8 HWC input [N, S, S, 3] instead, with
// Transpose(NHWC → NCHW) → Cast(float) → Div(255) prepended to its graph. ffmpeg's rgb24 bytes then go into the
// model as they are: a quarter of the bytes per frame slot, and no per-pixel loop on the worker's main thread.
// The worker does this at load, in memory (session.ts); hack/onnx/uint8-input.ts writes the rewritten file.
import { hwcToChw } from "./chw.ts";
import { bytesField, type Field, intField, parseMessage, text, writeMessage } from "./onnx-wire.ts";

// Field numbers from onnx.proto.
const MODEL_GRAPH = 7;
const GRAPH = { node: 1, initializer: 5, input: 11, output: 12, valueInfo: 13 };
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5 };
const ATTR = { name: 1, i: 3, ints: 8, type: 20 };
const ATTR_INT = 2;
const ATTR_INTS = 7;
const TENSOR = { dataType: 2, name: 8, rawData: 9 };
const ELEM = { float: 1n, uint8: 2n } as const;
const ELEM_NAMES: Record<string, string> = { 1: "float", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 10: "float16" };

/** A dimension as the model states it: a size, a symbolic name (dynamic), or unknown. */
export type Dim = number | string | undefined;
export type InputForm = "float-nchw" | "uint8-nhwc";
export type ModelInput = { name: string; elemType: number; dims: Dim[]; form: InputForm | undefined };

const sub = (fields: Field[], num: number) => fields.filter((f) => f.num === num);
const parse = (f: Field | undefined) => parseMessage((f?.value ?? new Uint8Array()) as Uint8Array);
const message = (num: number, fields: Field[]) => bytesField(num, writeMessage(fields));

function graphOf(model: Uint8Array): { modelFields: Field[]; graphField: Field; graph: Field[] } {
  let modelFields: Field[];
  try {
    modelFields = parseMessage(model);
  } catch (err) {
    throw new Error(`not an ONNX model: ${(err as Error).message}`);
  }
  const graphField = sub(modelFields, MODEL_GRAPH)[0];
  if (graphField?.wire !== 2) throw new Error("not an ONNX model: no graph");
  return { modelFields, graphField, graph: parseMessage(graphField.value as Uint8Array) };
}

/** ValueInfoProto → TypeProto.tensor_type's fields: elem_type (1) and shape (2). */
const tensorTypeOf = (info: Field[]) => parse(sub(parse(sub(info, 2)[0]), 1)[0]);
const dimFields = (tensorType: Field[]) => sub(parse(sub(tensorType, 2)[0]), 1);
function dimOf(dim: Field): Dim {
  const d = parseMessage(dim.value as Uint8Array);
  const value = sub(d, 1)[0];
  if (value) return Number(value.value as bigint);
  const param = sub(d, 2)[0];
  return param ? text(param) : undefined;
}
const isBatch = (d: Dim) => typeof d === "string" || d === undefined || (typeof d === "number" && d !== 0);

/** The model's image input (its first graph input that is not a weight), and which of the two forms it has. */
export function modelInput(model: Uint8Array): ModelInput {
  const { graph } = graphOf(model);
  const weights = new Set(sub(graph, GRAPH.initializer).map((f) => text(sub(parse(f), TENSOR.name)[0])));
  const input = sub(graph, GRAPH.input)
    .map(parse)
    .find((info) => !weights.has(text(sub(info, 1)[0])));
  if (!input) throw new Error("the model has no input");
  const tensorType = tensorTypeOf(input);
  const elemType = Number((sub(tensorType, 1)[0]?.value as bigint | undefined) ?? 0n);
  const dims = dimFields(tensorType).map(dimOf);
  const [n, a, b, c] = dims;
  let form: InputForm | undefined;
  if (dims.length === 4 && isBatch(n)) {
    if (BigInt(elemType) === ELEM.float && a === 3 && typeof b === "number" && b > 0 && c === b) form = "float-nchw";
    if (BigInt(elemType) === ELEM.uint8 && typeof a === "number" && a > 0 && b === a && c === 3) form = "uint8-nhwc";
  }
  return { name: text(sub(input, 1)[0]), elemType, dims, form };
}

export const describeInput = (i: ModelInput) =>
  `${ELEM_NAMES[i.elemType] ?? `type ${i.elemType}`} [${i.dims.map((d) => d ?? "?").join(", ")}]`;

const attrInt = (name: string, v: number) =>
  message(NODE.attribute, [bytesField(ATTR.name, name), intField(ATTR.i, v), intField(ATTR.type, ATTR_INT)]);
const attrInts = (name: string, vs: number[]) =>
  message(NODE.attribute, [
    bytesField(ATTR.name, name),
    ...vs.map((v) => intField(ATTR.ints, v)),
    intField(ATTR.type, ATTR_INTS),
  ]);
const node = (op: string, inputs: string[], output: string, attrs: Field[] = []) =>
  message(GRAPH.node, [
    ...inputs.map((i) => bytesField(NODE.input, i)),
    bytesField(NODE.output, output),
    bytesField(NODE.name, output),
    bytesField(NODE.opType, op),
    ...attrs,
  ]);

/**
 * The model with a uint8 [N, S, S, 3] input of the same name in place of its float [N, 3, S, S] one (a symbolic
 * batch stays symbolic). Throws, saying why, for any other input.
 */
export function prependPreprocessing(model: Uint8Array): Uint8Array {
  const input = modelInput(model);
  if (input.form !== "float-nchw")
    throw new Error(
      input.form === "uint8-nhwc"
        ? "the model already takes uint8 [N, S, S, 3]"
        : `the model's input ${input.name} is ${describeInput(input)}; want float [N, 3, S, S]`,
    );
  const { modelFields, graphField, graph } = graphOf(model);
  const { name } = input;
  const prefix = `${name}/vigil_preprocess`;
  const nodes = sub(graph, GRAPH.node).map(parse);
  const names = new Set(nodes.flatMap((n) => [...sub(n, NODE.input), ...sub(n, NODE.output)].map(text)));
  if ([...names].some((n) => n.startsWith(prefix))) throw new Error(`the model already has nodes named ${prefix}…`);
  if (sub(graph, GRAPH.output).some((f) => text(sub(parse(f), 1)[0]) === name))
    throw new Error(`the input ${name} is also an output`);
  const [nchwU8, nchwF, k255, scaled] = ["/nchw_u8", "/nchw_f32", "/255", "/out"].map((s) => prefix + s) as [
    string,
    string,
    string,
    string,
  ];

  // The graph's own nodes read the scaled floats instead of the input.
  const renamed = (n: Field[]) =>
    n.map((f) => (f.num === NODE.input && text(f) === name ? bytesField(NODE.input, scaled) : f));
  // Transpose the bytes before casting: a quarter of the memory traffic of transposing floats.
  const pre = [
    node("Transpose", [name], nchwU8, [attrInts("perm", [0, 3, 1, 2])]),
    node("Cast", [nchwU8], nchwF, [attrInt("to", Number(ELEM.float))]),
    // Div, not Mul by 1/255: the same float32 values as the float path's i / 255 (chw.ts), bit for bit.
    node("Div", [nchwF, k255], scaled),
  ];
  const constant = message(GRAPH.initializer, [
    intField(TENSOR.dataType, Number(ELEM.float)),
    bytesField(TENSOR.name, k255),
    bytesField(TENSOR.rawData, new Uint8Array(Float32Array.of(255).buffer)),
  ]);
  const firstNode = graph.findIndex((f) => f.num === GRAPH.node);
  const out: Field[] = [];
  graph.forEach((f, i) => {
    if (i === firstNode) out.push(...pre);
    if (f.num === GRAPH.node) out.push(message(GRAPH.node, renamed(parseMessage(f.value as Uint8Array))));
    else if (f.num === GRAPH.input && text(sub(parse(f), 1)[0]) === name) out.push(message(GRAPH.input, uint8Info(f)));
    else if (f.num === GRAPH.valueInfo && text(sub(parse(f), 1)[0]) === name)
      return; // it would say float
    else out.push(f);
  });
  if (firstNode < 0) out.push(...pre);
  out.push(constant);
  return writeMessage(modelFields.map((f) => (f === graphField ? message(MODEL_GRAPH, out) : f)));
}

/** ValueInfoProto of the float NCHW input → the same, uint8 and NHWC (its dimension fields reordered as they are). */
function uint8Info(f: Field): Field[] {
  const info = parse(f);
  return info.map((i) => {
    if (i.num !== 2) return i;
    const type = parse(i);
    return message(
      2,
      type.map((t) => {
        if (t.num !== 1) return t;
        const tensor = parse(t);
        return message(
          1,
          tensor.map((x) => {
            if (x.num === 1) return intField(1, ELEM.uint8);
            if (x.num !== 2) return x;
            const shape = parse(x);
            const dims = sub(shape, 1);
            const [n, c, h, w] = dims as [Field, Field, Field, Field];
            return message(2, [...shape.filter((s) => s.num !== 1), n, h, w, c]);
          }),
        );
      }),
    );
  });
}

/** A deterministic stand-in for a letterboxed frame: gradients and a checkerboard, every byte value present. */
export function testFrame(size: number): Uint8Array {
  const rgb = new Uint8Array(size * size * 3);
  for (let y = 0; y < size; y++)
    for (let x = 0; x < size; x++) {
      const p = (y * size + x) * 3;
      rgb[p] = (x * 255) / Math.max(1, size - 1);
      rgb[p + 1] = (y * 255) / Math.max(1, size - 1);
      rgb[p + 2] = ((x >> 4) + (y >> 4)) % 2 ? 230 : (x * 7 + y * 13) & 255;
    }
  return rgb;
}

type Session = import("onnxruntime-node").InferenceSession;

/**
 * Runs both on onnxruntime on the same frame, the float model (on CPU) through chw.ts: the rewritten model's
 * outputs must equal the original's within float tolerance. Throws, with the first value that differs, if they do
 * not. `rewritten` may be a session already made of it (the worker's own, saving a second load).
 */
export async function verifyUint8Input(
  original: Uint8Array,
  rewritten: Uint8Array | Session,
  opts: { frame?: Uint8Array; threads?: number } = {},
): Promise<{ maxDiff: number }> {
  const ort = (await import("onnxruntime-node")).default;
  const size = modelInput(original).dims[2] as number;
  const frame = opts.frame ?? testFrame(size);
  if (frame.length !== 3 * size * size) throw new Error(`the check frame has ${frame.length} bytes, want ${size}²×3`);
  const options = {
    intraOpNumThreads: opts.threads ?? 0,
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  };
  const own = rewritten instanceof Uint8Array;
  const a = await ort.InferenceSession.create(original, options);
  try {
    const b = own ? await ort.InferenceSession.create(rewritten, options) : rewritten;
    try {
      const chw = new Float32Array(3 * size * size);
      hwcToChw(frame, size, chw);
      const want = await a.run({ [a.inputNames[0] as string]: new ort.Tensor("float32", chw, [1, 3, size, size]) });
      const got = await b.run({ [b.inputNames[0] as string]: new ort.Tensor("uint8", frame, [1, size, size, 3]) });
      let maxDiff = 0;
      for (const name of a.outputNames) {
        const w = want[name]?.data as Float32Array;
        const g = got[name]?.data as Float32Array | undefined;
        if (!g || g.length !== w.length)
          throw new Error(`output ${name}: ${g?.length ?? "no"} values, the float model gives ${w.length}`);
        for (let i = 0; i < w.length; i++) {
          const d = Math.abs((g[i] as number) - (w[i] as number));
          // Absolute for scores (0–1), relative for box coordinates (up to S).
          if (!(d <= 1e-3 + 1e-4 * Math.abs(w[i] as number)))
            throw new Error(`output ${name}[${i}] is ${g[i]}, the float model's is ${w[i]}`);
          maxDiff = Math.max(maxDiff, d);
        }
      }
      return { maxDiff };
    } finally {
      if (own) await b.release();
    }
  } finally {
    await a.release();
  }
}
