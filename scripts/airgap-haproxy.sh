#!/usr/bin/env bash
# The HAProxy image of the Swarm topology (deploy/swarm), built without any container
# registry, the same way as the stand-in bases (scripts/airgap-bases.sh): Debian's
# haproxy package installed into a minbase rootfs by mmdebstrap from the mirrors in
# this machine's own apt configuration, imported, then deploy/swarm/haproxy/Dockerfile
# adds the configuration on top.
#
#   bash scripts/airgap-haproxy.sh [TAG]      default TAG: echo-server-haproxy:local
#
# The rootfs image is reused when present (--force rebuilds it); the small final
# build always runs, so configuration edits are picked up. Prints HAPROXY_IMAGE=TAG.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER=${DOCKER:-docker}
PREFIX=${AIRGAP_PREFIX:-echo-server-airgap}
SUITE=${DEBIAN_SUITE:-trixie}
ROOTFS_IMAGE="$PREFIX/haproxy-rootfs:$SUITE"
FORCE=0
if [ "${1:-}" = "--force" ]; then FORCE=1; shift; fi
TAG=${1:-echo-server-haproxy:local}
CACHE=.cache/haproxy

log() { echo "airgap-haproxy: $*" >&2; }

# Debian mirror URIs from the apt sources of this machine (deb822 or one-line style).
apt_uris() {
  { grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | sed 's/^URIs:[[:space:]]*//' | tr ' ' '\n'
    grep -h '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | sed 's/\[[^]]*\]//' | awk '{print $2}'
  } | grep -E '^(https?|file)://' || true
}

if [ "$FORCE" = 1 ] || ! "$DOCKER" image inspect "$ROOTFS_IMAGE" >/dev/null 2>&1; then
  if ! command -v mmdebstrap >/dev/null; then
    log "installing mmdebstrap"
    apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq mmdebstrap >&2
  fi
  uris=$(apt_uris)
  main=$(echo "$uris" | grep -v security | head -n1)
  security=$(echo "$uris" | grep security | head -n1 || true)
  [ -n "$main" ] || { log "no Debian mirror found in /etc/apt sources"; exit 1; }
  sources=("deb $main $SUITE main" "deb $main $SUITE-updates main")
  [ -n "$security" ] && sources+=("deb $security $SUITE-security main")
  mkdir -p "$CACHE"
  log "mmdebstrap $SUITE minbase with haproxy (mirrors from the apt configuration)"
  # No documentation, and no apt lists or mirror names left in the image.
  mmdebstrap --quiet --variant=minbase --include=haproxy \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/etc/apt/sources.list "$1"/etc/apt/sources.list.d/*' \
    "$SUITE" "$CACHE/rootfs.tar" "${sources[@]}" >&2
  "$DOCKER" import "$CACHE/rootfs.tar" "$ROOTFS_IMAGE" >/dev/null
  rm -f "$CACHE/rootfs.tar"
fi

log "building $TAG"
DOCKER_BUILDKIT=1 "$DOCKER" build --quiet -t "$TAG" --build-arg "BASE=$ROOTFS_IMAGE" deploy/swarm/haproxy >/dev/null
echo "HAPROXY_IMAGE=$TAG"
