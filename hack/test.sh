#!/usr/bin/env bash
# `npm test` (README's test command, run by CI): installs what the tests need, then lint, types and every test.
# Needs Go (builds kube-apiserver, etcd, kubectl and helm from Go modules, cached in ~/.cache/vigil); installs
# the Debian packages below when missing and fetches the model and video fixtures (hack/fixtures.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests run for real: ffmpeg, Redis, GStreamer's RTSP server, Chromium for the dashboard,
# RabbitMQ and MariaDB for the alarms, umoci for the image (hack/image.sh), Prometheus (and its promtool) for the
# chart's monitoring.
# shellcheck source=hack/debian.sh
source hack/debian.sh
ensure_debian openssl flock ffmpeg redis rtsp chromium rabbitmq mariadb umoci prometheus
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
