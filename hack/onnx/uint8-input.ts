// Writes a float [N, 3, S, S] YOLO model as one that takes ffmpeg's uint8 [N, S, S, 3] frames, the scaling inside
// the model (worker/infer/uint8-input.ts; the worker does the same at load, in memory, so this is only needed to
// ship or inspect the rewritten file). Checked on onnxruntime before anything is written:
//   node hack/onnx/uint8-input.ts model.onnx model-uint8.onnx
import { readFileSync, writeFileSync } from "node:fs";
import { describeInput, modelInput, prependPreprocessing, verifyUint8Input } from "../../worker/infer/uint8-input.ts";

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error("usage: node hack/onnx/uint8-input.ts <model.onnx> <out.onnx>");
  process.exit(2);
}
const original = readFileSync(input);
let model: Uint8Array;
try {
  model = prependPreprocessing(original);
  const { maxDiff } = await verifyUint8Input(original, model);
  console.error(`${input}: checked, outputs within ${maxDiff} of the float model's`);
} catch (err) {
  console.error(`${input}: not rewritten, nothing written: ${(err as Error).message}`);
  process.exit(1);
}
writeFileSync(output, model);
console.error(`${output}: input ${describeInput(modelInput(model))}`);
