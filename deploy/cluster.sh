#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, for development and the `cluster` tests.
#   deploy/cluster.sh up       start the nodes that are not running, join them; print AMQP_URL
#   deploy/cluster.sh status   which nodes run, and the cluster as node 1 sees it
#   deploy/cluster.sh down     stop the nodes and delete everything this script made
# Each node has its own name (bazaar1..3@localhost), AMQP port (5681..5683), distribution port
# (25681..25683), config, cookie and data under $BAZAAR_CLUSTER_DIR (default /tmp/bazaar-cluster);
# BAZAAR_CLUSTER_NAME and BAZAAR_CLUSTER_PORT change the names and ports, for a second cluster.
# The default node (rabbit@localhost on 5672) and /etc/rabbitmq are never read or touched.
# `up` is idempotent: after a node was killed, it starts just that node, which rejoins.
set -euo pipefail

DIR="${BAZAAR_CLUSTER_DIR:-/tmp/bazaar-cluster}"
NAME="${BAZAAR_CLUSTER_NAME:-bazaar}"
BASE_PORT="${BAZAAR_CLUSTER_PORT:-5681}"
NODES=(1 2 3)
BIN=/usr/lib/rabbitmq/bin     # the real scripts; /usr/sbin's wrappers switch to the rabbitmq user

node() { echo "$NAME$1@localhost"; }
port() { echo $((BASE_PORT + $1 - 1)); }

# Every node and CLI call runs in this environment, so nothing falls back to the default node's files.
node_env() {
    local n=$1
    export HOME="$DIR" \
        RABBITMQ_NODENAME="$(node "$n")" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$(port "$n")" \
        RABBITMQ_DIST_PORT=$((20000 + $(port "$n"))) \
        RABBITMQ_CONF_ENV_FILE="$DIR/rabbitmq-env.conf" \
        RABBITMQ_CONFIG_FILE="$DIR/rabbitmq.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$DIR/enabled_plugins" \
        RABBITMQ_MNESIA_BASE="$DIR/node$n/mnesia" \
        RABBITMQ_LOG_BASE="$DIR/node$n/log" \
        RABBITMQ_PID_FILE="$DIR/node$n/pid" \
        ERL_EPMD_ADDRESS=127.0.0.1
}

ctl() { (node_env "$1" && shift && timeout 60 "$BIN/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" "$@"); }
running() { ctl "$1" status >/dev/null 2>&1; }

write_config() {
    mkdir -p "$DIR"
    [[ -f "$DIR/.erlang.cookie" ]] || { head -c 32 /dev/urandom | base64 | tr -dc A-Za-z0-9 >"$DIR/.erlang.cookie"; }
    chmod 400 "$DIR/.erlang.cookie"
    : >"$DIR/rabbitmq-env.conf"
    echo "[]." >"$DIR/enabled_plugins"
    # Nodes started after node 1 find it through this list and join it (classic peer discovery).
    {
        echo "cluster_formation.peer_discovery_backend = classic_config"
        for n in "${NODES[@]}"; do echo "cluster_formation.classic_config.nodes.$n = $(node "$n")"; done
        echo "loopback_users = none"
        echo "cluster_partition_handling = pause_minority"
    } >"$DIR/rabbitmq.conf"
}

start() {
    local n=$1
    mkdir -p "$DIR/node$n/log"
    (node_env "$n" && "$BIN/rabbitmq-server" -detached </dev/null >"$DIR/node$n/log/startup.log" 2>&1)
}

await() {
    local n=$1
    (node_env "$n" && timeout 60 "$BIN/rabbitmqctl" -q -n "$RABBITMQ_NODENAME" wait --timeout 60 "$DIR/node$n/pid") \
        || { echo "error: $(node "$n") did not start; see $DIR/node$n/log" >&2; exit 1; }
    ctl "$n" await_startup
}

amqp_url() {
    local urls=()
    for n in "${NODES[@]}"; do urls+=("amqp://guest:guest@127.0.0.1:$(port "$n")/%2F"); done
    (IFS=,; echo "${urls[*]}")
}

up() {
    command -v "$BIN/rabbitmq-server" >/dev/null || { echo "error: rabbitmq-server is not installed" >&2; exit 1; }
    write_config
    local started=()
    # Node 1 first: the others join whichever listed node is up when they boot.
    for n in "${NODES[@]}"; do
        if ! running "$n"; then
            start "$n"
            started+=("$n")
            if [[ $n == 1 ]]; then await 1; fi
        fi
    done
    for n in "${started[@]}"; do await "$n"; done
    # A fresh node enables every feature flag, quorum_queue and stream_queue included; make sure.
    ctl 1 enable_feature_flag all
    local members
    members=$(ctl 1 eval 'length(rabbit_nodes:all_running()).')
    [[ $members == "${#NODES[@]}" ]] || { echo "error: only $members of ${#NODES[@]} nodes joined" >&2; exit 1; }
    echo "AMQP_URL=$(amqp_url)"
}

status() {
    for n in "${NODES[@]}"; do
        if running "$n"; then echo "$(node "$n") running on port $(port "$n"), pid $(cat "$DIR/node$n/pid")"
        else echo "$(node "$n") not running"; fi
    done
    running 1 && ctl 1 cluster_status
    echo "AMQP_URL=$(amqp_url)"
}

down() {
    for n in "${NODES[@]}"; do
        if running "$n"; then ctl "$n" stop "$DIR/node$n/pid" || true; fi
        # A node that does not answer (e.g. stopped with SIGSTOP) still goes.
        local pid
        pid=$(cat "$DIR/node$n/pid" 2>/dev/null) || continue
        if [[ $(ps -o comm= -p "$pid") == beam* ]]; then kill -9 "$pid"; fi
    done
    # Only a directory this script made (it holds the cluster's config) is deleted.
    if [[ -f "$DIR/rabbitmq.conf" ]]; then rm -rf "$DIR"; fi
}

case "${1:-}" in
    up) up ;;
    status) status ;;
    down) down ;;
    *) echo "usage: $0 up|status|down" >&2; exit 2 ;;
esac
