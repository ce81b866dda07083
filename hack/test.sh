#!/usr/bin/env bash
# `npm test` (README's test command, run by CI): installs what the tests need, then lint, types and every test.
# Needs Go (builds kube-apiserver, etcd, kubectl and helm from Go modules, cached in ~/.cache/vigil); installs
# the Debian packages below when missing and fetches the model and video fixtures (hack/fixtures.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests run for real: ffmpeg, Redis, GStreamer's RTSP server (with Debian's python3).
missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v flock >/dev/null || missing+=(util-linux)
command -v ffmpeg >/dev/null || missing+=(ffmpeg)
command -v redis-server >/dev/null || missing+=(redis-server)
/usr/bin/python3 -c 'import gi; gi.require_version("GstRtspServer", "1.0")' 2>/dev/null ||
  missing+=(python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-ugly gstreamer1.0-libav)
/usr/bin/python3 -c 'import gi; gi.require_version("Gst", "1.0"); from gi.repository import Gst; Gst.init(None); assert Gst.ElementFactory.find("x264enc")' 2>/dev/null ||
  missing+=(gstreamer1.0-plugins-ugly)
if ((${#missing[@]})); then
  echo "[test] installing Debian packages: ${missing[*]}" >&2
  sudo=(); [[ $(id -u) == 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
command -v go >/dev/null || { echo "[test] Go is required to build the Kubernetes test binaries (https://go.dev/dl)" >&2; exit 1; }

bash hack/cluster.sh build
bash hack/fixtures.sh
if [[ -f hack/helm.sh ]]; then bash hack/helm.sh version >/dev/null; fi

npm run -s lint
mkdir -p .cache
status=0
npx vitest run --reporter=default --reporter=json --outputFile.json=.cache/vitest.json "$@" || status=$?
# One plain closing line, whatever the reporter printed.
node -e '
  const r = JSON.parse(require("fs").readFileSync(".cache/vitest.json", "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed`);
' || true
exit $status
