#!/bin/sh
# Chromium in a network namespace of its own, for the browser tests. Chromium drops
# every HTTP/2 session and pending connection when an interface address changes on
# the machine (ERR_NETWORK_CHANGED), and a Docker container starting anywhere on the
# host changes one. In its own namespace loopback is the only interface, nothing
# changes, and nothing but the relayed test servers can be reached at all.
# Playwright starts this script as the browser; the environment carries the rest.
set -eu
if [ -z "${ECHO_IN_NETNS:-}" ]; then
  ECHO_IN_NETNS=1
  export ECHO_IN_NETNS
  # shellcheck disable=SC2086 # the flags are words
  exec unshare $ECHO_UNSHARE_FLAGS -- "$0" "$@"
fi
ip link set lo up
# The relay listens on the test servers' ports here and passes each connection to
# the test process through a Unix socket; it exits when Chromium does.
"$ECHO_NODE" "$ECHO_RELAY" &
i=0
while [ ! -e "$ECHO_RELAY_DIR/ready" ]; do
  i=$((i + 1))
  if [ "$i" -gt 400 ] || ! kill -0 $! 2>/dev/null; then echo "netns relay did not start" >&2; exit 1; fi
  sleep 0.05
done
exec "$ECHO_CHROMIUM" "$@"
