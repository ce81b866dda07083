// A tiny, valid ONNX model written by hand (protobuf wire format): Identity over a float tensor of a chosen
// shape. onnxruntime loads it for real, so the worker's model checks meet a genuine wrong-shaped model.
import { bytesField, type Field, intField, writeMessage } from "../../hack/onnx/wire.ts";

const message = (num: number, fields: Field[]) => bytesField(num, writeMessage(fields));

function valueInfo(name: string, shape: number[]): Field[] {
  const dims = shape.map((d) => message(1, [intField(1, d)])); // TensorShapeProto.dim { dim_value }
  const tensorType = [intField(1, 1 /* FLOAT */), message(2, dims)]; // TypeProto.Tensor
  return [bytesField(1, name), message(2, [message(1, tensorType)])]; // ValueInfoProto { name, type { tensor_type } }
}

export function identityModel(shape: number[]): Buffer {
  const node = [bytesField(1, "x"), bytesField(2, "y"), bytesField(4, "Identity")];
  const graph = [
    message(1, node),
    bytesField(2, "g"),
    message(11, valueInfo("x", shape)),
    message(12, valueInfo("y", shape)),
  ];
  const model = [intField(1, 7 /* ir_version */), message(7, graph), message(8, [intField(2, 13)]) /* opset 13 */];
  return Buffer.from(writeMessage(model));
}
