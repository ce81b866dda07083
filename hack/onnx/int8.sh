#!/usr/bin/env bash
# Makes .cache/fixtures/yolov8n-int8.onnx: the fixture model with int8 convolutions (hack/onnx/int8.py), calibrated
# on every 25th frame of vtest.avi letterboxed as the worker does. onnxruntime's quantizer is Python only: it runs in
# a virtualenv of pinned PyPI packages cached in ~/.cache/vigil. hack/fixtures.sh runs it; `npm run bench -- density`
# and test/integration/model-int8.test.ts use what it makes. Users run it on their own model the same way:
#   bash hack/onnx/int8.sh [model.onnx [out.onnx [calibration-video]]]
set -euo pipefail
cd "$(dirname "$0")/../.."
SRC=${1:-.cache/fixtures/yolov8n.onnx}
DST=${2:-.cache/fixtures/yolov8n-int8.onnx}
VIDEO=${3:-.cache/fixtures/vtest.avi}
VENV=${VIGIL_CACHE:-$HOME/.cache/vigil}/onnx-quant
log() { printf '[int8] %s\n' "$*" >&2; }
[[ $DST -nt $SRC && $DST -nt hack/onnx/int8.py && $DST -nt hack/onnx/int8.sh ]] && { log "ready: $DST"; exit 0; }
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import onnxruntime, onnx' 2>/dev/null; then
  log "installing onnxruntime's quantizer into $VENV (PyPI: onnxruntime 1.32.0, onnx 1.23.2)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q onnxruntime==1.32.0 onnx==1.23.2 numpy
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
SIZE=640
ffmpeg -nostdin -v error -i "$VIDEO" -vf "select='not(mod(n\,25))',scale=$SIZE:$SIZE:force_original_aspect_ratio=decrease:flags=bilinear,format=yuv420p,format=rgb24,pad=$SIZE:$SIZE:(ow-iw)/2:(oh-ih)/2:color=0x727272" \
  -fps_mode passthrough -pix_fmt rgb24 -f rawvideo -y "$tmp/frames.rgb"
"$VENV/bin/python" hack/onnx/int8.py "$SRC" "$tmp/frames.rgb" "$SIZE" "$tmp/out.onnx"
mv "$tmp/out.onnx" "$DST"
log "ready: $DST"
