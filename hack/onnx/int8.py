# Static INT8 quantization of a float YOLO ONNX model with onnxruntime's own tool (QDQ format, per-channel int8
# weights, uint8 activations calibrated by min/max on real frames): what DeepStream and TensorRT call INT8
# calibration. Only the convolutions are quantized; SiLU, the head's reshapes and the box decoding stay float, so
# onnxruntime fuses each DequantizeLinear → Conv → QuantizeLinear into one int8 convolution (VNNI where the CPU
# has it). Run by hack/onnx/int8.sh, which makes the calibration frames the way the worker letterboxes them.
#   python int8.py model.onnx frames.rgb SIZE out.onnx
import sys
import tempfile

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

src, frames, size, dst = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
raw = np.fromfile(frames, dtype=np.uint8).reshape(-1, size, size, 3)
if raw.shape[0] < 8:
    sys.exit(f"{frames}: {raw.shape[0]} calibration frames, at least 8 wanted")


class Frames(CalibrationDataReader):
    def __init__(self, name):
        self.name, self.i = name, 0

    def get_next(self):
        if self.i >= raw.shape[0]:
            return None
        x = raw[self.i].transpose(2, 0, 1)[None].astype(np.float32) / 255.0
        self.i += 1
        return {self.name: x}


import onnx  # noqa: E402

name = onnx.load(src).graph.input[0].name
with tempfile.TemporaryDirectory() as tmp:
    pre = f"{tmp}/pre.onnx"
    quant_pre_process(src, pre, skip_symbolic_shape=True)
    quantize_static(
        pre,
        dst,
        Frames(name),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["Conv"],
        calibrate_method=CalibrationMethod.MinMax,
    )
print(f"{dst}: int8 convolutions, calibrated on {raw.shape[0]} frames", file=sys.stderr)
