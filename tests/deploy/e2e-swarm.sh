#!/usr/bin/env bash
# deploy/swarm/stack.yml deployed with `docker stack deploy` on a single-node swarm of a
# private engine, with the image deploy/docker/build-image.sh builds: the service must run
# in global mode with one task, and that task must scan the engine through the read-only
# socket mount with the socket's group as its primary group.
#
# The stack file is used as shipped, plus an override that changes only what this host
# forces: the engines here have no bridge, so the task joins the host's network (where the
# stack's host-mode port is discarded) and listens on a free loopback port; the socket is
# the private engine's, mounted at the path the stack expects. Nothing is pulled: the image
# is named by its ID and the engine is told to prefer local images.
#
# Usage: tests/deploy/e2e-swarm.sh
# Environment:
#   DIE_SWARM_ENGINE  engine from tests/engines/ to start: docker20 (default) or docker26
#   DIE_STATE_DIR     state root (default <repo>/.state); the engine lives under <root>/swarm
#
# Prints one line per assertion and a closing 'N passed, N failed'. On exit, failure
# included, the stack is removed, the node leaves the swarm, and the engine is stopped and
# its state deleted.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/tests/deploy
STATE=${DIE_STATE_DIR:-$REPO/.state}
ENGINE=${DIE_SWARM_ENGINE:-docker20}
ENGINE_STATE=$STATE/swarm
ENGINE_LOG=$ENGINE_STATE/engines/$ENGINE/engine.log
STACK=die-e2e-$$
SERVICE=${STACK}_exporter
IMAGE=die-e2e/docker-image-exporter
BUSYBOX=die-test/busybox:base
WORK=$(mktemp -d)
DOCKER_BIN=$(command -v docker || true)
cd "$REPO"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

# What the cleanup has to undo, set as each step succeeds.
ENGINE_STARTED=0
IN_SWARM=0
DEPLOYED=0
GWBRIDGE_OURS=0
PASSED=0
FAILED=0

# Every engine call is bounded, so that a wedged engine fails the test instead of hanging it.
docker() {
    timeout 60 "$DOCKER_BIN" "$@"
}

engine() {
    DIE_STATE_DIR=$ENGINE_STATE DIE_TRIXIE_DIR=$STATE/trixie \
        "$REPO/tests/engines/engine.sh" "$ENGINE" "$@"
}

# Runs COMMAND... every half second until it succeeds, for at most SECONDS.
wait_for() {
    local seconds=$1 i
    shift
    for ((i = 0; i < seconds * 2; i++)); do
        "$@" && return 0
        sleep 0.5
    done
    return 1
}

task_containers() {
    docker ps -aq --filter "label=com.docker.swarm.service.name=$SERVICE"
}

no_task_containers() {
    [[ -z $(task_containers) ]]
}

ingress_gone() {
    ! docker network inspect ingress >/dev/null 2>&1
}

# Swarm mode makes the engine create docker_gwbridge, a bridge in the host's network
# namespace, for its ingress sandbox; it outlives the swarm and the engine unless removed.
gwbridge_gone() {
    [[ ! -e /sys/class/net/docker_gwbridge ]] \
        || docker network rm docker_gwbridge >/dev/null 2>&1
}

cleanup() {
    local status=$?
    set +e
    if ((DEPLOYED)); then
        if ((status != 0 || FAILED != 0)); then
            docker service logs --tail 5 "$SERVICE" >&2
        fi
        docker stack rm "$STACK" >/dev/null
        wait_for 60 no_task_containers \
            || echo "warning: the stack's containers were still there after 60s" >&2
    fi
    if ((IN_SWARM)); then
        docker swarm leave --force >/dev/null
    fi
    if ((GWBRIDGE_OURS)); then
        wait_for 15 gwbridge_gone || echo "warning: the engine kept docker_gwbridge" >&2
    fi
    if ((ENGINE_STARTED)); then
        engine purge >&2
    fi
    # The engine is gone; a bridge it left would keep its address and route on the host.
    if ((GWBRIDGE_OURS)) && [[ -e /sys/class/net/docker_gwbridge ]]; then
        echo "warning: deleting the docker_gwbridge link the engine left behind" >&2
        ip link delete docker_gwbridge
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


"$HERE/install-deps.sh" >&2
if [[ $ENGINE == docker26 ]]; then
    "$REPO/tests/engines/install-deps.sh" >&2
else
    "$REPO/tests/engines/install-deps.sh" --no-trixie >&2
fi
[[ -n $DOCKER_BIN ]] || { echo "error: no docker client on PATH" >&2; exit 1; }

# The engine must be one this run starts: one left running would lack the environment
# below, and its state is purged on exit.
if engine status >/dev/null 2>&1; then
    echo "error: a $ENGINE engine already runs under $ENGINE_STATE;" \
        "stop it with: DIE_STATE_DIR=$ENGINE_STATE tests/engines/engine.sh $ENGINE stop" >&2
    exit 1
fi
# The bridge is shared by every engine on the host in swarm mode; removing another's
# would break it.
if [[ -e /sys/class/net/docker_gwbridge ]]; then
    echo "error: docker_gwbridge already exists on this host (another engine in swarm" \
        "mode?); this test would share it and then remove it" >&2
    exit 1
fi

# NOTE: a swarm task tries to pull its image before it starts, whatever the client's
# --resolve-image said, unless the image is named by ID or this variable is set.
ENGINE_STARTED=1
DOCKER_SERVICE_PREFER_OFFLINE_IMAGE=1 engine start >&2
export "$(engine env)"
unset DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH
SOCKET=${DOCKER_HOST#unix://}
GID=$(stat -c %g "$SOCKET")
note "engine: $ENGINE on $DOCKER_HOST (socket group $GID)"

# The images: the exporter's, and an unused one whose class the task must report.
deploy/docker/build-image.sh "$IMAGE" >&2
IMAGE_ID=$(docker image inspect --format '{{.Id}}' "$IMAGE:latest")
"$REPO/tests/engines/test-image.sh" >&2
BUSYBOX_ID=$(docker image inspect --format '{{.Id}}' "$BUSYBOX")

# A single-node swarm on loopback. The stack publishes in host mode and needs no routing
# mesh, so the ingress network goes, and with it an overlay sandbox the test has no use for.
LOG_START=$(wc -l <"$ENGINE_LOG")
GWBRIDGE_OURS=1
IN_SWARM=1
docker swarm init --advertise-addr 127.0.0.1 --listen-addr "127.0.0.1:$(free_port)" >/dev/null
echo y | docker network rm ingress >/dev/null
if ! wait_for 30 ingress_gone; then
    echo "error: the ingress network was still there 30s after its removal" >&2
    exit 1
fi
note "swarm initialised on 127.0.0.1"

# The override: only what this host forces, as the header says.
PORT=$(free_port)
cat >"$WORK/override.yml" <<END
version: "3.8"
services:
  exporter:
    image: $IMAGE_ID
    command: ["--web.listen-address=127.0.0.1:$PORT"]
    networks: [hostnet]
    volumes:
      - type: bind
        source: $SOCKET
        target: /var/run/docker.sock
        read_only: true
networks:
  hostnet:
    external: true
    name: host
END
DEPLOYED=1
DOCKER_GID=$GID docker stack deploy --detach=true --resolve-image never \
    -c deploy/swarm/stack.yml -c "$WORK/override.yml" "$STACK" >&2

# Wait for the task, then for its first scan, successful or not.
replicas() {
    docker service ls --filter "name=$SERVICE" --format '{{.Replicas}}'
}
running() {
    [[ $(replicas) == 1/1 ]]
}
scanned() {
    curl -fs "http://127.0.0.1:$PORT/metrics" \
        | grep -q '^docker_image_exporter_scans_total{result="\(success\|failure\)"} [1-9]'
}
wait_for 120 running || note "the service had $(replicas) tasks running after 120s"
wait_for 120 scanned || note "no scan finished on 127.0.0.1:$PORT within 120s"
: >"$WORK/metrics"
curl -s -o "$WORK/metrics" -w '%{http_code}' "http://127.0.0.1:$PORT/metrics" \
    >"$WORK/status" || true
CONTAINER=$(docker ps -q --filter "label=com.docker.swarm.service.name=$SERVICE" | head -n 1)

# The task's container as the engine runs it: user, root filesystem, capabilities, socket.
task_config() {
    [[ -n $CONTAINER ]] || return 0
    docker inspect --format '{{.Config.User}} {{.HostConfig.ReadonlyRootfs}}
        {{- " "}}{{.HostConfig.CapDrop}} {{(index .Mounts 0).RW}}' "$CONTAINER"
}

# The service as swarm runs it.
expect "service $SERVICE is in global mode" \
    test "$(docker service inspect --format \
        '{{if .Spec.Mode.Global}}global{{else}}replicated{{end}}' "$SERVICE")" = global
expect "service $SERVICE has 1/1 tasks running" test "$(replicas)" = 1/1
expect "its one task is in state Running" \
    test "$(docker service ps --filter desired-state=running --format '{{.CurrentState}}' \
        "$SERVICE" | grep -c '^Running')" = 1
expect "the task runs as 65534:$GID, read-only, no capabilities, socket mounted read-only" \
    test "$(task_config)" = "65534:$GID true [ALL] false"

# What the task serves.
expect "/metrics on 127.0.0.1:$PORT answers 200" test "$(cat "$WORK/status")" = 200
expect "docker_image_exporter_scan_success 1" \
    grep -qx 'docker_image_exporter_scan_success 1' "$WORK/metrics"
VERSION=$(docker version --format '{{.Server.Version}}')
expect "docker_engine_info names engine version $VERSION" \
    grep -q "^docker_engine_info{engine=\"docker\",version=\"$VERSION\"" "$WORK/metrics"
expect "the exporter's own image $IMAGE is in_use" \
    grep -Eq "^docker_image_usage\{image_id=\"$IMAGE_ID\",image=\"$IMAGE:[^\"]+\",\
usage=\"in_use\"\} 1$" "$WORK/metrics"
expect "$BUSYBOX is unused" \
    grep -Eq "^docker_image_usage\{image_id=\"$BUSYBOX_ID\",image=\"$BUSYBOX\",\
usage=\"unused\"\} 1$" "$WORK/metrics"
expect "/readyz on 127.0.0.1:$PORT answers 200" \
    curl -fs -o /dev/null "http://127.0.0.1:$PORT/readyz"

# Nothing may have gone to a registry: the engine logs every pull it tries.
expect "the engine tried no pull from a registry" \
    bash -c "! tail -n +$((LOG_START + 1)) '$ENGINE_LOG' | grep -Eiq 'pull|registry'"

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
