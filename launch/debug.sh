#!/usr/bin/env bash
# Trains in one process with no MPI launcher (for debugging; same results as N ranks).
# Usage: launch/debug.sh CONFIG [abn train options]
source "$(dirname "$0")/common.sh"
if [ $# -eq 0 ]; then echo "launch: give a config file, e.g. configs/tiny.yaml." >&2; exit 2; fi
ensure_binary
config="$1"; shift
exec "$ABN" train --config "$config" "$@"
