// Preprocessing inside the model, as DeepStream and TensorRT do it on the device: a YOLO model that takes float
// CHW input [N, 3, H, W] (pixels / 255) is given a uint8 HWC input [N, H, W, 3] instead, with
// Transpose(NHWC → NCHW) → Cast(float) → Div(255) prepended to its graph. ffmpeg's rgb24 bytes then go into the
// model as they are: a quarter of the bytes per frame slot, and no per-pixel loop on the worker's main thread.
// The worker does this at load, in memory (session.ts); hack/onnx/uint8-input.ts writes the rewritten file.
import { hwcToChw } from "./chw.ts";
import {
  ATTR,
  ATTR_INT,
  ATTR_INTS,
  describeInput,
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
import { bytesField, type Field, intField, parseMessage, text, writeMessage } from "./onnx-wire.ts";

export { describeInput, type InputForm, type ModelInput, modelInput } from "./onnx-graph.ts";

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
 * The model with a uint8 [N, H, W, 3] input of the same name in place of its float [N, 3, H, W] one (a symbolic
 * batch stays symbolic). Throws, saying why, for any other input.
 */
export function prependPreprocessing(model: Uint8Array): Uint8Array {
  const input = modelInput(model);
  if (input.form !== "float-nchw")
    throw new Error(
      input.form === "uint8-nhwc"
        ? "the model already takes uint8 [N, H, W, 3]"
        : `the model's input ${input.name} is ${describeInput(input)}; want float [N, 3, H, W]`,
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
export function testFrame(width: number, height = width): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const p = (y * width + x) * 3;
      rgb[p] = (x * 255) / Math.max(1, width - 1);
      rgb[p + 1] = (y * 255) / Math.max(1, height - 1);
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
  const { dims } = modelInput(original);
  const [height, width] = [dims[2] as number, dims[3] as number];
  const frame = opts.frame ?? testFrame(width, height);
  if (frame.length !== 3 * width * height)
    throw new Error(`the check frame has ${frame.length} bytes, want ${width}×${height}×3`);
  const options = {
    intraOpNumThreads: opts.threads ?? 0,
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  };
  const own = rewritten instanceof Uint8Array;
  const a = await ort.InferenceSession.create(original, options);
  try {
    const b = own ? await ort.InferenceSession.create(rewritten, options) : rewritten;
    try {
      const chw = new Float32Array(3 * width * height);
      hwcToChw(frame, { width, height }, chw);
      const want = await a.run({ [a.inputNames[0] as string]: new ort.Tensor("float32", chw, [1, 3, height, width]) });
      const got = await b.run({ [b.inputNames[0] as string]: new ort.Tensor("uint8", frame, [1, height, width, 3]) });
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
