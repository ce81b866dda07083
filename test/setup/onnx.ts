// A tiny, valid ONNX model written by hand (protobuf wire format): Identity over a float tensor of a chosen
// shape. onnxruntime loads it for real, so the worker's model checks meet a genuine wrong-shaped model.
const varint = (n: number): number[] => {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return out;
};
const field = (num: number, bytes: number[]) => [...varint((num << 3) | 2), ...varint(bytes.length), ...bytes];
const int = (num: number, v: number) => [...varint(num << 3), ...varint(v)];
const str = (num: number, s: string) => field(num, [...Buffer.from(s)]);

function valueInfo(name: string, shape: number[]): number[] {
  const dims = shape.flatMap((d) => field(1, int(1, d))); // TensorShapeProto.dim { dim_value }
  const tensorType = [...int(1, 1 /* FLOAT */), ...field(2, dims)]; // TypeProto.Tensor
  return [...str(1, name), ...field(2, field(1, tensorType))]; // ValueInfoProto { name, type { tensor_type } }
}

export function identityModel(shape: number[]): Buffer {
  const node = [...str(1, "x"), ...str(2, "y"), ...str(4, "Identity")];
  const graph = [
    ...field(1, node),
    ...str(2, "g"),
    ...field(11, valueInfo("x", shape)),
    ...field(12, valueInfo("y", shape)),
  ];
  const model = [...int(1, 7 /* ir_version */), ...field(7, graph), ...field(8, int(2, 13) /* opset 13 */)];
  return Buffer.from(model);
}
