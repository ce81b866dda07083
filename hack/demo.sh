#!/usr/bin/env bash
# `npm run demo`: single-host mode, no cluster, no Redis, no broker, no database: two cameras playing the fixture
# video through a local YOLOv8n worker, with the dashboard at the printed URL. Their alarms (snapshot, replay clip)
# are kept under .vigil/ (VIGIL_DATA_DIR) and pushed, signed, to the demo's webhook receiver, which prints one line
# per delivery. Honours VIGIL_PORT, VIGIL_API_TOKEN, VIGIL_DATA_DIR, RABBITMQ_URL and MYSQL_URL.
# The operator on a local control plane instead: `npm run demo:operator`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=hack/debian.sh
source hack/debian.sh
ensure_debian ffmpeg
bash hack/fixtures.sh
manifests=hack/demo/cameras.yaml
# The receiver at the url of the manifests' webhook Secret (it starts nothing when that url is not on this host).
node hack/demo/webhook-receiver.ts -f "$manifests" --secret demo-webhook &
receiver=$!
trap 'kill "$receiver" 2>/dev/null || true; wait "$receiver" 2>/dev/null || true' EXIT
# Not exec: the trap stops the receiver once `vigil up` has stopped (Ctrl-C reaches both; a background job of a
# script ignores SIGINT, hence the trap).
node bin/vigil.ts up -f "$manifests"
