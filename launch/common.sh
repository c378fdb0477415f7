# Shared by the launch scripts: find (or build) the release binary, read the launch options and
# run abn under mpirun on one node or on the hosts of a hostfile.
# shellcheck shell=bash
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ABN="${ABN_BINARY:-$ROOT/.build/release/abn}"
source "$ROOT/launch/stopping.sh"

ensure_binary() {
    if [ ! -x "$ABN" ]; then
        echo "launch: building $ABN (swift build -c release)" >&2
        (cd "$ROOT" && swift build -c release --product abn >&2)
    fi
}

# usage SCRIPT: prints the comment block at the top of SCRIPT (its usage), without the '# '.
usage() {
    sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$1"
}

# mpirun options that parse_launch recognizes without a '--', with the number of values each
# takes (others must come before a '--').
mpirun_option_values() {
    case "$1" in
        --mca|-mca|--gmca|-gmca) echo 2 ;;
        -x|--prefix|--map-by|-map-by|--bind-to|-bind-to|--rank-by|-rank-by|-H|--host|-host|--wdir|-wdir|--npernode|-npernode|--npersocket|--output-filename|--timeout|--tune|--am|--default-hostfile) echo 1 ;;
        --oversubscribe|-oversubscribe|--report-bindings|-report-bindings|--tag-output|-tag-output|--timestamp-output|--display-map|-display-map|--display-allocation|--use-hwthread-cpus|--nooversubscribe|-q|--quiet|-v|--verbose|--mca-debug) echo 0 ;;
        *) echo -1 ;;
    esac
}

# parse_launch SCRIPT "$@": the launch options and mpirun options, then the config and abn's
# options. mpirun options either come before a '--' (any option), or, without '--', are the
# common ones mpirun_option_values knows, placed before CONFIG. Sets RANKS, HOSTFILE, THREADS
# (empty: choose), MPI_ARGS, ABN_ARGS, and, with STOPPABLE=true, DETACH and DETACH_AT (the
# position of --detach among the arguments).
parse_launch() {
    local script="$1"; shift
    RANKS=""; HOSTFILE=""; THREADS=""; MPI_ARGS=(); ABN_ARGS=(); DETACH=false; DETACH_AT=""
    local has_separator=false arg values total=$#
    for arg in "$@"; do [ "$arg" = "--" ] && has_separator=true; done
    while [ $# -gt 0 ]; do
        case "$1" in
            -h|--help) usage "$script"; exit 0 ;;
            -n|--ranks) RANKS="${2:-}"; shift 2 || shift ;;
            --hostfile) HOSTFILE="${2:-}"; shift 2 || shift ;;
            --threads-per-rank) THREADS="${2:-}"; shift 2 || shift ;;
            --detach)
                if ! ${STOPPABLE:-false}; then echo "launch: --detach is an option of launch/train.sh only." >&2; exit 2; fi
                DETACH=true; DETACH_AT=$(( total - $# )); shift ;;
            --) shift; ABN_ARGS+=("$@"); break ;;
            -*)
                if $has_separator; then MPI_ARGS+=("$1"); shift; continue; fi
                values="$(mpirun_option_values "$1")"
                if [ "$values" -lt 0 ]; then
                    echo "launch: $1 before the config is not a launch option nor a common mpirun option; put mpirun options before a '--' (see $script --help), abn's after the config." >&2
                    exit 2
                fi
                if [ $# -le "$values" ]; then echo "launch: mpirun option $1 needs $values value(s)." >&2; exit 2; fi
                MPI_ARGS+=("${@:1:$((values + 1))}"); shift $((values + 1)) ;;
            *) if $has_separator; then MPI_ARGS+=("$1"); shift; else ABN_ARGS+=("$@"); break; fi ;;
        esac
    done
    if ! [[ "$RANKS" =~ ^[1-9][0-9]*$ ]]; then
        echo "launch: give the number of ranks with -n N (a positive integer); see $script --help." >&2; exit 2
    fi
    if [ -n "$THREADS" ] && ! [[ "$THREADS" =~ ^[1-9][0-9]*$ ]]; then
        echo "launch: --threads-per-rank must be a positive integer, got '$THREADS'." >&2; exit 2
    fi
    if [ -n "$HOSTFILE" ] && [ ! -r "$HOSTFILE" ]; then
        echo "launch: cannot read the hostfile '$HOSTFILE'; give the path of a readable file (lines: HOST slots=N)." >&2; exit 2
    fi
    if [ ${#ABN_ARGS[@]} -eq 0 ]; then echo "launch: give a config file, e.g. configs/tiny.yaml; see $script --help." >&2; exit 2; fi
}

# mpi_has OPTION...: true when the user's mpirun options contain one of OPTION.
mpi_has() {
    local a o
    for a in "${MPI_ARGS[@]+"${MPI_ARGS[@]}"}"; do for o in "$@"; do [ "$a" = "$o" ] && return 0; done; done
    return 1
}

# hostfile_slots FILE: "HOST SLOTS" per host line (comments and blank lines skipped; a host
# without slots= has one slot, as Open MPI counts it).
hostfile_slots() {
    sed -e 's/#.*//' "$1" | awk 'NF {
        slots = 1
        for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) { sub(/^slots=/, "", $i); slots = $i }
        print $1, slots }'
}

# is_this_node HOST: true when HOST names the machine (or namespace host) running this script.
is_this_node() {
    local host="$1" name
    for name in localhost 127.0.0.1 "$(hostname)" "$(hostname -s 2>/dev/null || true)" $(hostname -I 2>/dev/null || true); do
        [ "$host" = "$name" ] && return 0
    done
    return 1
}

# place_ranks: with a hostfile, fills its hosts' slots in order (Open MPI's default mapping),
# refuses more ranks than slots unless --oversubscribe is passed to mpirun, and sets
# LOCAL_RANKS (ranks on this node, or on the busiest node when this one is not listed) and
# PLACEMENT (a description). Without a hostfile every rank runs here.
place_ranks() {
    LOCAL_RANKS="$RANKS"; PLACEMENT="$RANKS rank(s) on this node"
    [ -n "$HOSTFILE" ] || return 0
    local hosts=() slots=() host n total=0
    while read -r host n; do
        if ! [[ "$n" =~ ^[0-9]+$ ]]; then echo "launch: $HOSTFILE: slots=$n for $host is not a count." >&2; exit 2; fi
        hosts+=("$host"); slots+=("$n"); total=$(( total + n ))
    done < <(hostfile_slots "$HOSTFILE")
    if [ ${#hosts[@]} -eq 0 ]; then echo "launch: the hostfile $HOSTFILE lists no host." >&2; exit 2; fi
    local listing="" i
    for i in "${!hosts[@]}"; do listing+="${listing:+, }${hosts[$i]}: ${slots[$i]}"; done
    if [ "$RANKS" -gt "$total" ] && ! mpi_has --oversubscribe; then
        echo "launch: $RANKS ranks asked for, but the hostfile $HOSTFILE offers $total slot(s) ($listing)." >&2
        echo "launch: lower -n, give the hosts more slots (a line 'HOST slots=N'), or pass --oversubscribe to mpirun (before --)." >&2
        exit 2
    fi
    local left="$RANKS" placed=() here="" busiest=0
    for i in "${!hosts[@]}"; do
        n=$(( left < slots[i] ? left : slots[i] )); left=$(( left - n ))
        placed+=("$n")
    done
    # oversubscribed: Open MPI places the rest round-robin; spread them evenly for the estimate
    i=0
    while [ "$left" -gt 0 ]; do placed[i]=$(( placed[i] + 1 )); left=$(( left - 1 )); i=$(( (i + 1) % ${#hosts[@]} )); done
    listing=""
    for i in "${!hosts[@]}"; do
        [ "${placed[$i]}" -gt 0 ] || continue
        listing+="${listing:+, }${hosts[$i]}: ${placed[$i]}"
        [ "${placed[$i]}" -gt "$busiest" ] && busiest="${placed[$i]}"
        is_this_node "${hosts[$i]}" && here="${placed[$i]}"
    done
    LOCAL_RANKS="${here:-$busiest}"
    PLACEMENT="$RANKS rank(s) over the hostfile's hosts ($listing)"
    [ -n "$here" ] || PLACEMENT+="; this node is not listed, so threads follow the busiest node"
}

# run_mpi ABN_ARGUMENTS...: mpirun with the launch options read by parse_launch. Threads per
# rank: --threads-per-rank, else OPENBLAS_NUM_THREADS when set, else this node's cores divided
# by the ranks placed on it; ranks get it as OPENBLAS_NUM_THREADS. Adds root and oversubscribe
# flags when needed, binds each rank to its cores on a single node, exports the OpenBLAS
# settings the environment holds. With STOPPABLE=true, the job can be stopped cleanly (see
# stopping.sh: catch_stop_signals must come first).
run_mpi() {
    command -v mpirun >/dev/null || { echo "launch: mpirun not found; run launch/setup.sh (it installs openmpi-bin)." >&2; exit 1; }
    local cores; cores="$(nproc)"
    place_ranks
    local threads="$THREADS" source="--threads-per-rank"
    if [ -z "$threads" ] && [ -n "${OPENBLAS_NUM_THREADS:-}" ]; then threads="$OPENBLAS_NUM_THREADS"; source="OPENBLAS_NUM_THREADS"; fi
    if [ -z "$threads" ]; then
        threads=$(( cores / LOCAL_RANKS )); [ "$threads" -ge 1 ] || threads=1
        source="$cores core(s) here / $LOCAL_RANKS rank(s) per node"
    fi
    echo "launch: $PLACEMENT; $threads thread(s) per rank ($source)" >&2
    local flags=(-n "$RANKS")
    [ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
    if [ -n "$HOSTFILE" ]; then
        flags+=(--hostfile "$HOSTFILE")
        mpi_has --bind-to --map-by || flags+=(--bind-to none)
    else
        [ "$RANKS" -gt "$cores" ] && ! mpi_has --oversubscribe && flags+=(--oversubscribe)
        if ! mpi_has --bind-to --map-by; then
            if [ $(( RANKS * threads )) -le "$cores" ]; then
                flags+=(--map-by "slot:PE=$threads" --bind-to core)
            else
                flags+=(--bind-to none)
            fi
        fi
    fi
    flags+=(-x "OPENBLAS_NUM_THREADS=$threads")
    # the ranks write through mpirun's relay, not to this terminal: tell rank 0 it is one (its bar)
    if [ -t 1 ]; then flags+=(-x "ABN_PROGRESS=${ABN_PROGRESS:-bar}" -x "COLUMNS=$(tput cols 2>/dev/null || echo 80)"); fi
    local var
    for var in OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; do [ -n "${!var:-}" ] && flags+=(-x "$var"); done
    if ! ${STOPPABLE:-false}; then
        exec mpirun "${flags[@]}" "${MPI_ARGS[@]+"${MPI_ARGS[@]}"}" "$ABN" "$@"
    fi
    if mpi_has --stdin -stdin; then
        echo "launch: remove the mpirun option --stdin: rank 0's standard input carries the stop requests of launch/train.sh." >&2; exit 2
    fi
    # On mpirun's own SIGTERM (a batch system's end of job reaches it too), it passes SIGTERM on
    # to the ranks after this many seconds and sends SIGKILL as many later (Open MPI's default,
    # 1, leaves no time to finish a step and write a checkpoint).
    if [ -z "${OMPI_MCA_odls_base_sigkill_timeout:-}" ] && ! mpi_has odls_base_sigkill_timeout; then
        flags+=(--mca odls_base_sigkill_timeout 10)
    fi
    run_stoppable "${flags[@]}" "${MPI_ARGS[@]+"${MPI_ARGS[@]}"}" "$ABN" "$@"
}
