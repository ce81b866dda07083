import { readFileSync } from "node:fs";
import { modelInput, prependPreprocessing, verifyUint8Input, describeInput } from "./worker/infer/uint8-input.ts";
for (const f of ["yolov8n.onnx", "yolov8n-dynamic.onnx"]) {
  const m = readFileSync(".cache/fixtures/" + f);
  console.log(f, describeInput(modelInput(m)));
  let t = performance.now();
  const r = prependPreprocessing(m);
  console.log("rewrite ms", performance.now() - t, describeInput(modelInput(r)));
  t = performance.now();
  console.log(await verifyUint8Input(m, r), "verify ms", performance.now() - t);
}
