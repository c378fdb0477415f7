#!/usr/bin/env bash
# Trains on N MPI ranks: on this node, or on the hosts of a hostfile.
#
# Usage: launch/train.sh -n N [--hostfile FILE] [--threads-per-rank T] CONFIG [abn train options]
#        launch/train.sh -n N [--hostfile FILE] [--threads-per-rank T] [mpirun options] -- CONFIG [abn train options]
#
#   -n N                  number of ranks
#   --hostfile FILE       hosts and their slots (lines 'HOST slots=K'); ranks fill the slots in
#                         order; more ranks than slots is refused unless --oversubscribe is
#                         among the mpirun options
#   --threads-per-rank T  threads of each rank (OPENBLAS_NUM_THREADS); default: this node's cores
#                         divided by the ranks placed on it (OPENBLAS_NUM_THREADS, when set, is
#                         taken instead); the choice is printed
#   mpirun options        anything before '--' that is not one of the above goes to mpirun, e.g.
#                         --mca btl_tcp_if_include eth1 -x MY_VAR --prefix /opt/openmpi; without
#                         '--', the common ones (--mca, -x, --prefix, --map-by, --bind-to, --host,
#                         --oversubscribe, ...) are recognized before CONFIG
#
# SIGTERM or Ctrl-C to this script (or SIGUSR1 to mpirun, or SIGTERM to the ranks) stops the run
# after the current step with a checkpoint; the script then exits with code 75 (continue with
# --resume). SIGTERM to mpirun itself is Open MPI's kill: the ranks get about a second. A rank
# that waits longer than train.collective_timeout_s for the others ends the job with code 124.
#
# Only rank 0 reads CONFIG and writes the run directory; every node needs the binary (same
# path) and the data set (same path). Examples:
#   launch/train.sh -n 2 configs/fmnist-resnet.yaml
#   launch/train.sh -n 8 --hostfile hosts --mca btl_tcp_if_include 10.0.0.0/24 -- configs/fmnist-resnet.yaml --resume
#   launch/train.sh -n 8 --hostfile hosts --mca btl_tcp_if_include eth1 -x LD_LIBRARY_PATH configs/fmnist-resnet.yaml
source "$(dirname "$0")/common.sh"
parse_launch "$0" "$@"
ensure_binary
STOPPABLE=true
run_mpi train --config "${ABN_ARGS[0]}" "${ABN_ARGS[@]:1}"
