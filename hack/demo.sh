#!/usr/bin/env bash
# `npm run demo`: single-host mode, no cluster and no Redis: two cameras playing the fixture video through a local
# YOLOv8n worker, with the dashboard at the printed URL. Honours VIGIL_PORT and VIGIL_API_TOKEN.
# The operator on a local control plane instead: `npm run demo:operator`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/debian.sh
source hack/debian.sh
ensure_debian ffmpeg
bash hack/fixtures.sh
exec node bin/vigil.ts up -f hack/demo/cameras.yaml
