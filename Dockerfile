# syntax=docker/dockerfile:1
# Vigil's image, for those with Docker (or any BuildKit):
#
#   docker build -t ghcr.io/vigil-dev/vigil:0.1.0 .
#   docker build --build-arg CUDA=1 -t ghcr.io/vigil-dev/vigil:0.1.0-cuda .
#
# hack/image.sh assembles the same contents without a Docker engine (and the tests run that image); this file has not
# been built where Vigil is developed, which has no Docker. Both: Node 24, production dependencies only, Debian's
# ffmpeg, uid/gid 65532, entrypoint `node /app/dist/vigil.js`.
ARG NODE_IMAGE=node:24-bookworm-slim

# Production node_modules. Install scripts stay off (package.json's allowScripts denies them too): sharp and
# onnxruntime-node ship their Linux binaries inside their packages. With CUDA=1, onnxruntime-node's own install
# script fetches its CUDA and TensorRT execution providers (from NuGet, into bin/napi-v6/linux/x64/); they load only
# where the CUDA runtime, cuBLAS and cuDNN libraries are on LD_LIBRARY_PATH, which this image does not carry.
FROM ${NODE_IMAGE} AS deps
ARG CUDA=0
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# Then the same pruning as hack/image.sh: other platforms' onnxruntime binaries, source maps, type declarations.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && if [ "$CUDA" = 1 ]; then ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install; fi \
 && arch=$(node -p process.arch) \
 && find node_modules/onnxruntime-node/bin/napi-v6 -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} + \
 && find node_modules/onnxruntime-node/bin/napi-v6/linux -mindepth 1 -maxdepth 1 ! -name "$arch" -exec rm -rf {} + \
 && find node_modules \( -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -type f -delete \
 && find node_modules -depth -type d -name coverage -exec rm -rf {} + \
 && rm -f .npmrc package-lock.json

# dist/ (hack/build.ts, with the dev dependencies). `node hack/build.ts`, not `npm run build`: the `node`
# devDependency's binary comes from its install script, which does not run here, and `npm run` puts it first on PATH.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json .npmrc ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN node hack/build.ts

FROM ${NODE_IMAGE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends ffmpeg \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 vigil \
 && useradd --uid 65532 --gid 65532 --home-dir /home/vigil --create-home --shell /usr/sbin/nologin vigil
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules node_modules
COPY package.json ./
# dist/vigil.js imports the other subcommands from their sources at run time (hack/build.ts), and `vigil up` runs
# bin/vigil.ts.
COPY bin bin
COPY operator operator
COPY worker worker
COPY gateway gateway
COPY single single
COPY alarms alarms
COPY --from=build /src/dist dist
USER 65532:65532
ENTRYPOINT ["node", "/app/dist/vigil.js"]
