#!/usr/bin/env bash
# Trains on N ranks (one node, or several with a hostfile).
# Usage: launch/train.sh -n N [--hostfile FILE] CONFIG [abn train options, e.g. --run-dir runs/x --resume]
source "$(dirname "$0")/common.sh"
parse_ranks "$@"
ensure_binary
run_mpi "$RANKS" "$HOSTFILE" train --config "${REST[0]}" "${REST[@]:1}"
