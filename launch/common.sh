# Shared by the launch scripts: find (or build) the release binary and run it under mpirun.
# shellcheck shell=bash
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ABN="${ABN_BINARY:-$ROOT/.build/release/abn}"

ensure_binary() {
    if [ ! -x "$ABN" ]; then
        echo "launch: building $ABN (swift build -c release)" >&2
        (cd "$ROOT" && swift build -c release --product abn >&2)
    fi
}

# run_mpi RANKS HOSTFILE ARGS...: mpirun with root flags when needed, --oversubscribe when the
# ranks exceed the cores of this machine, OPENBLAS_NUM_THREADS so that ranks x threads = cores
# (unless already set), and each rank bound to its own cores when they suffice.
run_mpi() {
    local ranks="$1" hostfile="$2"; shift 2
    command -v mpirun >/dev/null || { echo "launch: mpirun not found; run launch/setup.sh (it installs openmpi-bin)." >&2; exit 1; }
    local cores; cores="$(nproc)"
    local flags=(-n "$ranks")
    [ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
    local threads="${OPENBLAS_NUM_THREADS:-}"
    if [ -n "$hostfile" ]; then
        flags+=(--hostfile "$hostfile")
        threads="${threads:-1}"   # ranks per node are the hostfile's slots; set OPENBLAS_NUM_THREADS to match
        flags+=(--bind-to none)
    else
        [ "$ranks" -gt "$cores" ] && flags+=(--oversubscribe)
        if [ -z "$threads" ]; then threads=$(( cores / ranks )); [ "$threads" -ge 1 ] || threads=1; fi
        if [ $(( ranks * threads )) -le "$cores" ]; then
            flags+=(--map-by "slot:PE=$threads" --bind-to core)
        else
            flags+=(--bind-to none)
        fi
    fi
    flags+=(-x "OPENBLAS_NUM_THREADS=$threads")
    exec mpirun "${flags[@]}" "$ABN" "$@"
}

# parse_ranks "$@": reads -n N and --hostfile FILE from the front; sets RANKS, HOSTFILE, REST.
parse_ranks() {
    RANKS=""; HOSTFILE=""; REST=()
    while [ $# -gt 0 ]; do
        case "$1" in
            -n|--ranks) RANKS="$2"; shift 2 ;;
            --hostfile) HOSTFILE="$2"; shift 2 ;;
            *) REST+=("$1"); shift ;;
        esac
    done
    if ! [[ "$RANKS" =~ ^[1-9][0-9]*$ ]]; then
        echo "launch: give the number of ranks with -n N (a positive integer)." >&2; exit 2
    fi
    if [ ${#REST[@]} -eq 0 ]; then echo "launch: give a config file, e.g. configs/tiny.yaml." >&2; exit 2; fi
}
