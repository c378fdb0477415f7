#!/usr/bin/env bash
# Trains on N MPI ranks: on this node, or on the hosts of a hostfile.
#
# Usage: launch/train.sh -n N [--hostfile FILE] [--threads-per-rank T] [--detach] CONFIG [abn train options]
#        launch/train.sh -n N [--hostfile FILE] [--threads-per-rank T] [--detach] [mpirun options] -- CONFIG [abn train options]
#
#   -n N                  number of ranks
#   --hostfile FILE       hosts and their slots (lines 'HOST slots=K'); ranks fill the slots in
#                         order; more ranks than slots is refused unless --oversubscribe is
#                         among the mpirun options
#   --threads-per-rank T  threads of each rank (OPENBLAS_NUM_THREADS); default: this node's cores
#                         divided by the ranks placed on it (OPENBLAS_NUM_THREADS, when set, is
#                         taken instead); the choice is printed
#   --detach              run in the background, in a session of its own, immune to the
#                         terminal's closing: prints the PID and appends the output to
#                         RUN_DIR/train.log (RUN_DIR: --run-dir, else runs/<config name>)
#   mpirun options        anything before '--' that is not one of the above goes to mpirun, e.g.
#                         --mca btl_tcp_if_include eth1 -x MY_VAR --prefix /opt/openmpi; without
#                         '--', the common ones (--mca, -x, --prefix, --map-by, --bind-to, --host,
#                         --oversubscribe, ...) are recognized before CONFIG
#
# SIGTERM, Ctrl-C or a closed terminal (SIGHUP) to this script, its death, SIGUSR1 or SIGTERM to
# mpirun, or a stop signal to the ranks stops the run after the current step with a checkpoint
# (before the first step: nothing to save); the script then exits with code 75 (continue with
# --resume). Under nohup (or with --detach) SIGHUP is ignored and the job outlives the terminal.
# A second signal to this script ends the job at once. A rank that waits longer than
# train.collective_timeout_s for the others ends the job with code 124.
#
# Only rank 0 reads CONFIG and writes the run directory; every node needs the binary (same
# path) and the data set (same path). Examples:
#   launch/train.sh -n 2 configs/fmnist-resnet.yaml
#   launch/train.sh -n 8 --hostfile hosts --mca btl_tcp_if_include 10.0.0.0/24 -- configs/fmnist-resnet.yaml --resume
#   launch/train.sh -n 8 --hostfile hosts --mca btl_tcp_if_include eth1 -x LD_LIBRARY_PATH configs/fmnist-resnet.yaml
source "$(dirname "$0")/common.sh"
STOPPABLE=true
parse_launch "$0" "$@"
if $DETACH; then detach "$0" "${@:1:DETACH_AT}" "${@:DETACH_AT+2}"; fi
catch_stop_signals
ensure_binary
run_mpi train --config "${ABN_ARGS[0]}" "${ABN_ARGS[@]:1}"
