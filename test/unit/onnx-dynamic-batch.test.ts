// The batch rewriter on small hand-made models, run for real on onnxruntime: Reshape shapes stored packed and
// unpacked are both rewritten, and a leading 1 that is not the batch is caught by the check, not shipped.
import ort from "onnxruntime-node";
import { describe, expect, it } from "vitest";
import { makeBatchDynamic, verifyBatchDynamic } from "../../hack/onnx/dynamic-batch.ts";
import { bytesField, type Field, intField, varint, writeMessage } from "../../hack/onnx/wire.ts";

const message = (num: number, fields: Field[]) => bytesField(num, writeMessage(fields));
const valueInfo = (name: string, shape: number[]) => [
  bytesField(1, name),
  message(2, [
    message(1, [
      intField(1, 1),
      message(
        2,
        shape.map((d) => message(1, [intField(1, d)])),
      ),
    ]),
  ]),
];
/** A Constant node producing an int64 tensor, its values packed (proto3's way) or one field each. */
const constant = (out: string, values: number[], packed: boolean) =>
  message(1, [
    bytesField(2, out),
    bytesField(4, "Constant"),
    message(5, [
      bytesField(1, "value"),
      intField(20, 4 /* TENSOR */),
      message(5, [
        intField(1, values.length),
        intField(2, 7 /* INT64 */),
        ...(packed
          ? [bytesField(7, Uint8Array.from(values.flatMap((v) => varint(v))))]
          : values.map((v) => intField(7, v))),
      ]),
    ]),
  ]);
const node = (op: string, inputs: string[], output: string) =>
  message(1, [...inputs.map((i) => bytesField(1, i)), bytesField(2, output), bytesField(4, op)]);

/** x [1, 6] → Reshape [1, 2, 3] → Reshape [1, -1] → y [1, 6]; or, with `bias`, plus a [6] bias reshaped to
 * [1, 6] for broadcasting, whose leading 1 is not the batch: the rewrite is wrong there and the check must say so. */
function model(packed: boolean, bias = false): Uint8Array {
  const floats = new Uint8Array(Float32Array.from([1, 2, 3, 4, 5, 6]).buffer);
  const graph = [
    constant("s1", [1, 2, 3], packed),
    constant("s2", [1, -1], !packed),
    node("Reshape", ["x", "s1"], "a"),
    node("Reshape", ["a", "s2"], bias ? "b" : "y"),
    ...(bias
      ? [
          message(1, [
            bytesField(2, "bias"),
            bytesField(4, "Constant"),
            message(5, [
              bytesField(1, "value"),
              intField(20, 4),
              message(5, [intField(1, 6), intField(2, 1 /* FLOAT */), bytesField(9, floats)]),
            ]),
          ]),
          constant("s3", [1, 6], packed),
          node("Reshape", ["bias", "s3"], "bias2"),
          node("Add", ["b", "bias2"], "y"),
        ]
      : []),
    bytesField(2, "g"),
    message(11, valueInfo("x", [1, 6])),
    message(12, valueInfo("y", [1, 6])),
  ];
  return writeMessage([intField(1, 8), message(7, graph), message(8, [intField(2, 17)])]);
}

describe("dynamic-batch rewriter", () => {
  for (const packed of [true, false])
    it(`makes the batch dynamic with ${packed ? "packed" : "unpacked"} shapes, and onnxruntime runs a batch of 3`, async () => {
      const original = model(packed);
      const { model: rewritten, reshapes } = makeBatchDynamic(original);
      expect(reshapes).toBe(2);
      await verifyBatchDynamic(original, rewritten);
      const s = await ort.InferenceSession.create(rewritten);
      const x = Float32Array.from({ length: 18 }, (_, i) => i);
      const y = (await s.run({ x: new ort.Tensor("float32", x, [3, 6]) })).y;
      expect(y?.dims).toEqual([3, 6]);
      expect(Array.from(y?.data as Float32Array)).toEqual(Array.from(x));
    });

  it("catches a leading 1 that was not the batch: the rewritten model fails the check", async () => {
    const original = model(true, true);
    const { model: rewritten, reshapes } = makeBatchDynamic(original);
    expect(reshapes).toBe(3);
    await expect(verifyBatchDynamic(original, rewritten)).rejects.toThrow();
  });

  it("refuses a shape tensor that is also an ordinary input", () => {
    const bad = writeMessage([
      intField(1, 8),
      message(7, [
        constant("s", [1, 6], true),
        node("Reshape", ["x", "s"], "a"),
        node("Add", ["a", "s"], "y"),
        bytesField(2, "g"),
        message(11, valueInfo("x", [1, 6])),
        message(12, valueInfo("y", [1, 6])),
      ]),
      message(8, [intField(2, 17)]),
    ]);
    expect(() => makeBatchDynamic(bad)).toThrow(/shape tensor s is also used outside Reshape/);
  });
});
