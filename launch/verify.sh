#!/usr/bin/env bash
# Checks synchronized InPlace-ABN on N ranks against one process on the same global batches.
# Usage: launch/verify.sh -n N [--hostfile FILE] CONFIG [abn verify options, e.g. --steps 5 --slices 2,3,4]
source "$(dirname "$0")/common.sh"
parse_ranks "$@"
ensure_binary
run_mpi "$RANKS" "$HOSTFILE" verify --config "${REST[0]}" "${REST[@]:1}"
