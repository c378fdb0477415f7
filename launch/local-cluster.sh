#!/usr/bin/env bash
# A cluster of N hosts on this machine, made of network namespaces, for trying multi-node runs.
#
# Usage: launch/local-cluster.sh up N            make hosts h1..hN (root; N from 1 to 200)
#        launch/local-cluster.sh down            remove exactly what 'up' made
#        launch/local-cluster.sh exec HOST CMD   run CMD on HOST (h1, h2, ... or its address)
#        launch/local-cluster.sh mpirun ARGS     mpirun ARGS on h1, the head node
#        launch/local-cluster.sh hostfile        print the path of a hostfile listing every host
#        launch/local-cluster.sh bytes           bytes received and sent by each host's interface
#        launch/local-cluster.sh status          the hosts and their addresses, if up
#
# Each host is a network namespace (NAME-h1, ...) with one interface, eth0, a veth pair to a
# bridge that lives in a namespace of its own (NAME-switch): the hosts' subnet (default
# 10.231.7.0/24, ABN_CLUSTER_SUBNET=A.B.C for another) exists only inside these namespaces and
# nothing is routed to or from it. NAME is ABN_CLUSTER_NAME (default abn; its state is kept in
# /run/NAME-local-cluster), so that two clusters can be up at once. Commands
# run on a host in a private UTS namespace with its own hostname (Open MPI names shared-memory
# files after the hostname, and /dev/shm is shared by all) and with its own /etc/hosts (bind
# mounted by 'ip netns exec' from /etc/netns/NAMESPACE/hosts). Open MPI started on a host
# reaches the others through launch/local-cluster-rsh.sh instead of ssh
# (OMPI_MCA_plm_rsh_agent); its out-of-band channel is kept to the subnet. Example:
#   launch/local-cluster.sh up 3
#   launch/local-cluster.sh exec h1 launch/train.sh -n 3 --hostfile "$(launch/local-cluster.sh hostfile)" \
#       --mca btl_tcp_if_include 10.231.7.0/24 -- configs/tiny.yaml --max-steps 12
#   launch/local-cluster.sh down
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAME="${ABN_CLUSTER_NAME:-abn}"
SUBNET="${ABN_CLUSTER_SUBNET:-10.231.7}"
STATE="/run/$NAME-local-cluster"
SWITCH="$NAME-switch"
PREFIX="$NAME-"

fail() { echo "local-cluster: $*" >&2; exit 2; }

require_root() {
    [ "$(id -u)" -eq 0 ] || fail "making network namespaces needs root; run it as root (or with sudo)."
    command -v ip >/dev/null || fail "the 'ip' command is missing; install iproute2."
    command -v unshare >/dev/null || fail "the 'unshare' command is missing; install util-linux."
}

# hosts: the hosts of the cluster that is up, one per line (none when it is down).
hosts() { [ -f "$STATE/hosts" ] && cat "$STATE/hosts" || true; }

# namespace_of HOST: the namespace of a host given by name or address.
namespace_of() {
    local host="$1" name address
    while read -r name address; do
        if [ "$host" = "$name" ] || [ "$host" = "$address" ]; then echo "$PREFIX$name"; return 0; fi
    done < <(hosts_with_addresses)
    fail "no host '$host' in the local cluster (hosts: $(hosts | tr '\n' ' ')); is it up?"
}

hosts_with_addresses() { [ -f "$STATE/addresses" ] && cat "$STATE/addresses" || true; }

up() {
    local n="${1:-}"
    [[ "$n" =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 200 ] || fail "give the number of hosts, 1 to 200: up N."
    require_root
    [ -z "$(hosts)" ] || fail "a local cluster is already up ($(hosts | tr '\n' ' ')); run 'down' first."
    ip netns list | grep -q "^$SWITCH\b" && fail "a namespace $SWITCH exists but no cluster state in $STATE; remove it with: ip netns del $SWITCH"
    mkdir -p "$STATE"
    : > "$STATE/made"
    # from here on, whatever fails, 'down' can remove what was made
    trap 'echo "local-cluster: up failed; removing what it made." >&2; down' ERR
    [ -d /etc/netns ] || { mkdir /etc/netns; echo "emptydir /etc/netns" >> "$STATE/made"; }
    ip netns add "$SWITCH"; echo "netns $SWITCH" >> "$STATE/made"
    ip -n "$SWITCH" link add br0 type bridge
    ip -n "$SWITCH" link set br0 up
    local i name ns hosts_file="$STATE/etc-hosts"
    printf '127.0.0.1 localhost\n' > "$hosts_file"
    for i in $(seq 1 "$n"); do printf '%s.%d h%d\n' "$SUBNET" "$i" "$i" >> "$hosts_file"; done
    for i in $(seq 1 "$n"); do
        name="h$i"; ns="$PREFIX$name"
        ip netns add "$ns"; echo "netns $ns" >> "$STATE/made"
        mkdir -p "/etc/netns/$ns"; echo "dir /etc/netns/$ns" >> "$STATE/made"
        cp "$hosts_file" "/etc/netns/$ns/hosts"
        ip -n "$SWITCH" link add "$name" type veth peer name eth0 netns "$ns"
        ip -n "$SWITCH" link set "$name" master br0 up
        ip -n "$ns" addr add "$SUBNET.$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" link set lo up
        echo "$name" >> "$STATE/hosts"
        echo "$name $SUBNET.$i" >> "$STATE/addresses"
    done
    for i in $(seq 1 "$n"); do echo "h$i slots=1"; done > "$STATE/hostfile"
    trap - ERR
    echo "local-cluster: up: $n host(s) h1..h$n on $SUBNET.0/24; hostfile $STATE/hostfile"
}

down() {
    [ -f "$STATE/made" ] || { echo "local-cluster: nothing to remove (no cluster is up)."; return 0; }
    require_root
    local kind what
    # processes left on a host would keep its namespace alive: end them first
    while read -r kind what; do
        [ "$kind" = netns ] || continue
        ip netns pids "$what" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    done < "$STATE/made"
    tac "$STATE/made" | while read -r kind what; do
        case "$kind" in
            netns) ip netns del "$what" 2>/dev/null || true ;;
            dir) rm -rf -- "$what" ;;
            emptydir) rmdir -- "$what" 2>/dev/null || true ;;
        esac
    done
    rm -rf -- "$STATE"
    echo "local-cluster: down: removed the hosts, the switch and their files."
}

# on HOST CMD...: CMD inside HOST's network namespace, with its hostname and /etc/hosts.
on() {
    local host="$1"; shift
    [ $# -gt 0 ] || fail "give a command to run on $host."
    require_root
    local ns name
    ns="$(namespace_of "$host")"; name="${ns#"$PREFIX"}"
    export OMPI_MCA_plm_rsh_agent="$ROOT/launch/local-cluster-rsh.sh"
    export OMPI_MCA_plm_rsh_no_tree_spawn=1
    export OMPI_MCA_oob_tcp_if_include="$SUBNET.0/24"
    export ABN_CLUSTER_NAME="$NAME" ABN_CLUSTER_SUBNET="$SUBNET"
    exec ip netns exec "$ns" unshare --uts -- sh -c 'hostname "$0" && exec "$@"' "$name" "$@"
}

bytes() {
    local host
    printf '%-6s %14s %14s\n' host rx_bytes tx_bytes
    for host in $(hosts); do
        printf '%-6s %14s %14s\n' "$host" \
            "$(ip netns exec "$PREFIX$host" cat /sys/class/net/eth0/statistics/rx_bytes)" \
            "$(ip netns exec "$PREFIX$host" cat /sys/class/net/eth0/statistics/tx_bytes)"
    done
}

command="${1:-}"; [ $# -gt 0 ] && shift
case "$command" in
    up) up "$@" ;;
    down) down ;;
    exec) [ $# -ge 1 ] || fail "usage: exec HOST CMD..."; on "$@" ;;
    mpirun)
        [ -n "$(hosts)" ] || fail "no local cluster is up; run: launch/local-cluster.sh up N"
        root_flag=(); [ "$(id -u)" -eq 0 ] && root_flag=(--allow-run-as-root)
        on h1 mpirun "${root_flag[@]}" --hostfile "$STATE/hostfile" --mca btl_tcp_if_include "$SUBNET.0/24" "$@" ;;
    hostfile) [ -f "$STATE/hostfile" ] || fail "no local cluster is up; run: launch/local-cluster.sh up N"; echo "$STATE/hostfile" ;;
    bytes) [ -n "$(hosts)" ] || fail "no local cluster is up."; bytes ;;
    status) if [ -n "$(hosts)" ]; then hosts_with_addresses; else echo "local-cluster: down"; fi ;;
    -h|--help|help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0" ;;
    *) fail "unknown command '$command'; one of up N, down, exec HOST CMD, mpirun ARGS, hostfile, bytes, status (see --help)." ;;
esac
