// The wire format lives with the worker, which rewrites models at load (worker/infer/uint8-input.ts); hack/onnx's
// tools and the tests import it from here too.
export * from "../../worker/infer/onnx-wire.ts";
