// Reading and editing an ONNX graph over onnx-wire.ts: the parts of onnx.proto our load-time rewriters need
// (uint8-input.ts, rect-input.ts), and the model's image input as it states it.
import { bytesField, type Field, parseMessage, text, writeMessage } from "./onnx-wire.ts";

// Field numbers from onnx.proto.
export const MODEL_GRAPH = 7;
export const GRAPH = { node: 1, initializer: 5, input: 11, output: 12, valueInfo: 13 };
export const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5 };
export const ATTR = { name: 1, i: 3, t: 5, ints: 8, type: 20 };
export const ATTR_INT = 2;
export const ATTR_INTS = 7;
export const TENSOR = { dims: 1, dataType: 2, floatData: 4, int64Data: 7, name: 8, rawData: 9 };
export const ELEM = { float: 1n, uint8: 2n, int64: 7n } as const;
const ELEM_NAMES: Record<string, string> = { 1: "float", 2: "uint8", 3: "int8", 6: "int32", 7: "int64", 10: "float16" };

/** A dimension as the model states it: a size, a symbolic name (dynamic), or unknown. */
export type Dim = number | string | undefined;
export type InputForm = "float-nchw" | "uint8-nhwc";
export type ModelInput = { name: string; elemType: number; dims: Dim[]; form: InputForm | undefined };

export const sub = (fields: Field[], num: number) => fields.filter((f) => f.num === num);
export const parse = (f: Field | undefined) => parseMessage((f?.value ?? new Uint8Array()) as Uint8Array);
export const message = (num: number, fields: Field[]) => bytesField(num, writeMessage(fields));

export function graphOf(model: Uint8Array): { modelFields: Field[]; graphField: Field; graph: Field[] } {
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
const isSide = (d: Dim): d is number => typeof d === "number" && d > 0;
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
    if (BigInt(elemType) === ELEM.float && a === 3 && isSide(b) && isSide(c)) form = "float-nchw";
    if (BigInt(elemType) === ELEM.uint8 && isSide(a) && isSide(b) && c === 3) form = "uint8-nhwc";
  }
  return { name: text(sub(input, 1)[0]), elemType, dims, form };
}

export const describeInput = (i: ModelInput) =>
  `${ELEM_NAMES[i.elemType] ?? `type ${i.elemType}`} [${i.dims.map((d) => d ?? "?").join(", ")}]`;
