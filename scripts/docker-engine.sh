#!/usr/bin/env bash
# Make sure a Docker engine runs and a BuildKit-capable client is chosen.
# Installs Debian's docker.io when the engine is missing, starts dockerd in the
# background, and prints `DOCKER=<client>` for the caller to export.
set -euo pipefail

log() { echo "docker-engine: $*" >&2; }

# Debian's 20.10 client has BuildKit built in; a newer CLI without the buildx
# plugin cannot build with BuildKit at all.
pick_client() {
  if [ -n "${DOCKER:-}" ]; then echo "$DOCKER"; return; fi
  if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; return; fi
  command -v docker || true
}

if ! command -v dockerd >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then log "no dockerd and not root: cannot install it"; exit 1; fi
  log "installing docker.io from Debian"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq docker.io >&2
fi

client=$(pick_client)
if [ -z "$client" ]; then log "no docker client found"; exit 1; fi

if ! "$client" info >/dev/null 2>&1; then
  log "starting dockerd"
  nohup dockerd >/tmp/dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    "$client" info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! "$client" info >/dev/null 2>&1; then log "dockerd did not come up; see /tmp/dockerd.log"; tail -20 /tmp/dockerd.log >&2; exit 1; fi
fi
log "engine $("$client" version --format '{{.Server.Version}}'), client $client"
echo "DOCKER=$client"
