#!/usr/bin/env bash
# Checks synchronized InPlace-ABN on N ranks against one process on the same global batches
# (abn verify), on this node or on the hosts of a hostfile.
#
# Usage: launch/verify.sh -n N [--hostfile FILE] [--threads-per-rank T] CONFIG [abn verify options]
#        launch/verify.sh -n N [--hostfile FILE] [--threads-per-rank T] [mpirun options] -- CONFIG [abn verify options]
#
# The launch options are those of launch/train.sh (see launch/train.sh --help): anything before
# '--' that is not a launch option goes to mpirun (without '--', the common mpirun options are
# recognized before CONFIG). Only rank 0 reads CONFIG. Example:
#   launch/verify.sh -n 3 --hostfile hosts --mca btl_tcp_if_include eth1 -- configs/tiny.yaml --steps 5
source "$(dirname "$0")/common.sh"
parse_launch "$0" "$@"
ensure_binary
run_mpi verify --config "${ABN_ARGS[0]}" "${ABN_ARGS[@]:1}"
