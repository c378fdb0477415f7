# Stopping a job of launch/train.sh cleanly: SIGTERM, SIGINT or SIGHUP to the script, or the
# script's death, stops every rank after its step, with a checkpoint, and the script exits 75.
# Sourced by common.sh; the ranks' side is Sources/ABNTraining/Launcher.swift.
# shellcheck shell=bash

# catch_stop_signals: from here on SIGTERM, SIGINT and SIGHUP ask the job to stop. SIGHUP stays
# ignored when the script started with it ignored (nohup, --detach): the job outlives its terminal.
catch_stop_signals() {
    STOP_SIGNAL=""; STOP_PIPE=""; JOB_PID=""; LAUNCH_DIR=""
    trap 'end_launch $?' EXIT
    local signal
    for signal in TERM INT HUP; do
        if [ "$signal" = HUP ] && [ "$(trap -p HUP)" = "trap -- '' SIGHUP" ]; then
            echo "launch: SIGHUP is ignored (nohup or --detach), so the job outlives its terminal; stop it with kill -TERM $$" >&2
            continue
        fi
        # shellcheck disable=SC2064
        trap "stop_requested $signal" "$signal"
    done
}

# end_launch STATUS: at the script's exit, removes its directory; a detached script logs STATUS.
end_launch() {
    if [ -n "$LAUNCH_DIR" ]; then rm -rf "$LAUNCH_DIR"; fi
    if [ -n "${ABN_DETACHED:-}" ]; then echo "launch: exit code $1" >&2 || true; fi
}

# stop_requested SIGNAL: the first closes the job's input pipe after a line naming SIGNAL (rank
# 0 reads its end and the ranks stop after their step); a second is passed to mpirun as SIGUSR1,
# which ends rank 0 at once, and with it the job. The terminal may be gone: nothing here may fail.
stop_requested() {
    if [ -n "$STOP_SIGNAL" ]; then
        if [ -n "$JOB_PID" ]; then kill -USR1 "$JOB_PID" 2>/dev/null || true; fi
        return 0
    fi
    STOP_SIGNAL="$1"
    echo "launch: SIG$1: the ranks finish their step and write a checkpoint (a second signal ends them at once)" >&2 || true
    if [ -n "$STOP_PIPE" ]; then
        echo "$1" >&"$STOP_PIPE" || true
        exec {STOP_PIPE}>&-
    fi
}

# run_stoppable MPIRUN_ARGUMENTS...: mpirun in a session of its own, so that Ctrl-C reaches only
# this script (mpirun's own reaction to SIGINT is to kill the ranks within seconds). Its standard
# input, which it forwards to rank 0, is a pipe whose only writing end this script holds: closed
# by stop_requested, or by the kernel when the script dies, even by SIGKILL. Exits 75 when the
# ranks confirm the stop (a file in the script's directory, see Launcher.swift), else with
# mpirun's code.
run_stoppable() {
    LAUNCH_DIR="$(mktemp -d "${TMPDIR:-/tmp}/abn-launch.XXXXXX")"
    mkfifo "$LAUNCH_DIR/pipe"
    local writer input
    exec {writer}<>"$LAUNCH_DIR/pipe"  # read-write: opens at once, and writing never raises SIGPIPE
    exec {input}<"$LAUNCH_DIR/pipe"
    rm "$LAUNCH_DIR/pipe"
    STOP_PIPE="$writer"  # from here on a stop signal closes it
    if [ -n "$STOP_SIGNAL" ]; then
        echo "launch: stopped by SIG$STOP_SIGNAL before the job started: nothing was lost and there is nothing to save." >&2
        exit 75
    fi
    setsid mpirun -x "ABN_LAUNCHER_DIR=$LAUNCH_DIR" -x "ABN_LAUNCHER_PID=$$" "$@" <&"$input" {input}<&- {STOP_PIPE}>&- &
    JOB_PID=$!
    exec {input}<&-
    # After its own SIGTERM, mpirun sleeps through its kill sequence (twice the sigkill timeout)
    # even when the ranks are gone, and forwards no output meanwhile: once the ranks confirmed
    # the stop, it gets 3 s to end by itself, then this script ends it and prints rank 0's message.
    local status=0 confirmed=0
    while kill -0 "$JOB_PID" 2>/dev/null; do
        [ -e "$LAUNCH_DIR/stopped" ] && confirmed=$((confirmed + 1))
        if [ "$confirmed" -gt 6 ]; then
            disown "$JOB_PID"
            kill -KILL "$JOB_PID" 2>/dev/null || true
            cat "$LAUNCH_DIR/stopped" || true
            exit 75
        fi
        sleep 0.5 {STOP_PIPE}>&- &
        wait $! || true  # returns at once for a trapped signal
    done
    wait "$JOB_PID" || status=$?
    [ -e "$LAUNCH_DIR/stopped" ] && exit 75
    if [ -n "$STOP_SIGNAL" ]; then
        # no rank on this node to confirm: mpirun's 0 says the ranks stopped as asked
        [ "$status" -eq 0 ] && exit 75
        echo "launch: mpirun ended with code $status before the ranks confirmed a checkpoint; continue from the newest one with --resume." >&2
    fi
    exit "$status"
}

# detach SCRIPT ARGUMENTS...: starts SCRIPT ARGUMENTS (without --detach) again in a session of
# its own with SIGHUP ignored and its output appended to RUN_DIR/train.log (ending with its exit
# code), prints its PID and exits. RUN_DIR is abn's: --run-dir, else runs/<config name>.
detach() {
    local script="$1"; shift
    local dir="" i name
    for i in "${!ABN_ARGS[@]}"; do
        case "${ABN_ARGS[$i]}" in
            --run-dir) dir="${ABN_ARGS[$((i + 1))]:-}" ;;
            --run-dir=*) dir="${ABN_ARGS[$i]#--run-dir=}" ;;
        esac
    done
    if [ -z "$dir" ]; then name="$(basename "${ABN_ARGS[0]}")"; dir="runs/${name%.*}"; fi
    if ! mkdir -p "$dir"; then echo "launch: cannot create the run directory $dir for the log; choose a writable one with --run-dir DIR." >&2; exit 2; fi
    local log="$dir/train.log"
    (trap '' HUP; ABN_DETACHED=1 exec setsid bash "$script" "$@") < /dev/null >> "$log" 2>&1 &
    echo "launch: detached as PID $!, output appended to $log; stop it with kill -TERM $! (a checkpoint, and the line that continues the run, in the log)"
    exit 0
}
