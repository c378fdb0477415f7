#!/usr/bin/env bash
# Open MPI's remote-shell agent for launch/local-cluster.sh, in place of ssh: Open MPI calls
# it as 'AGENT [ssh options] HOST COMMAND...' to start its daemon on HOST; it runs COMMAND
# with sh inside HOST's namespace (as ssh would run it in a login shell there).
set -euo pipefail
while [ $# -gt 0 ] && [ "${1#-}" != "$1" ]; do shift; done   # ssh options mean nothing here
[ $# -ge 2 ] || { echo "local-cluster-rsh: usage: local-cluster-rsh.sh HOST COMMAND..." >&2; exit 2; }
host="$1"; shift
exec "$(dirname "$0")/local-cluster.sh" exec "$host" sh -c "$*"
