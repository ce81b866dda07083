#!/usr/bin/env bash
# `npm test` (README's test command, run by CI): installs what the tests need, then lint, types and every test.
# Needs: Go (builds kube-apiserver, etcd, kubectl and helm from Go modules, cached in ~/.cache/vigil) and openssl.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v flock >/dev/null || missing+=(util-linux)
if ((${#missing[@]})); then
  echo "[test] installing Debian packages: ${missing[*]}" >&2
  if [[ $(id -u) == 0 ]]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  else sudo apt-get update -qq && sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; fi
fi
command -v go >/dev/null || { echo "[test] Go is required to build the Kubernetes test binaries (https://go.dev/dl)" >&2; exit 1; }

bash hack/cluster.sh build
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
