#!/usr/bin/env bash
# The container image, built by deploy/docker/build-image.sh and run as its Dockerfile tells
# operators to, on a real engine: it must scan that engine as a non-root user with the
# socket's group added, and must fail its scans (not crash) without that group. Then the
# exporter service of deploy/compose/compose.yml, as written but for its network (the test
# engine has no bridge), must scan the engine too.
#
# Usage: tests/deploy/e2e-image.sh
# Environment:
#   DOCKER_HOST    engine to build and run on; when unset, a private docker20 engine is
#                  started from tests/engines/ (state under <repo>/.state/deploy) and stopped
#                  on exit. Its socket must be a file on this host: it is mounted into the
#                  container.
#   DIE_STATE_DIR  state root (default <repo>/.state)
#
# Prints one line per assertion and a closing 'N passed, N failed'. The test image, its
# containers and the compose project are removed on exit, failure included.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/tests/deploy
STATE=${DIE_STATE_DIR:-$REPO/.state}
RUN=$$-$RANDOM
IMAGE=die-e2e/docker-image-exporter-$RUN
PROJECT=die-e2e-$RUN
WORK=$(mktemp -d)
CONTAINERS=()
COMPOSE=()
cd "$REPO"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

cleanup() {
    local status=$?
    set +e
    if ((${#CONTAINERS[@]})); then
        docker logs "${CONTAINERS[0]}" 2>&1 | tail -n 5 >&2
        docker rm -f "${CONTAINERS[@]}" >/dev/null
    fi
    if ((${#COMPOSE[@]})); then
        "${COMPOSE[@]}" logs exporter 2>&1 | tail -n 5 >&2
        "${COMPOSE[@]}" down --volumes >/dev/null 2>&1
    fi
    rm -rf "$WORK"
    if [[ -n ${DOCKER_HOST:-} ]]; then
        local -a tags
        mapfile -t tags < <(docker image ls --format '{{.Repository}}:{{.Tag}}' "$IMAGE")
        ((${#tags[@]} == 0)) || docker image rm "${tags[@]}" >/dev/null
    fi
    stop_engine
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$HERE/install-deps.sh" >&2
ensure_engine
SOCKET=${DOCKER_HOST#unix://}
[[ -S $SOCKET ]] || { echo "error: $DOCKER_HOST is not a unix socket on this host" >&2; exit 1; }
GID=$(stat -c %g "$SOCKET")
note "engine: $DOCKER_HOST (socket group $GID)"
deploy/docker/build-image.sh "$IMAGE" >&2

PASSED=0
FAILED=0

# Run the image the way the Dockerfile's header shows, plus the hardening operators add.
# The engine has no bridge network, so the container shares the host's loopback instead
# of publishing a port.
run_image() {
    local port=$1
    shift
    docker run -d --pull never --network host --read-only --cap-drop ALL \
        --security-opt no-new-privileges \
        -v "$SOCKET:/var/run/docker.sock:ro" "$@" \
        "$IMAGE:latest" --web.listen-address="127.0.0.1:$port"
}

# Waits until the exporter at PORT has finished a scan, successful or not.
scanned() {
    local port=$1 i
    for ((i = 0; i < 60; i++)); do
        if curl -fs "http://127.0.0.1:$port/metrics" \
            | grep -q '^docker_image_exporter_scans_total{result="\(success\|failure\)"} [1-9]'
        then
            return 0
        fi
        sleep 0.5
    done
    return 1
}

metric() {
    curl -fs "http://127.0.0.1:$1/metrics" | awk -v name="$2" '$1 == name { print $2 }'
}

# With the socket's group: a non-root process that scans successfully.
PORT=$(free_port)
CONTAINERS+=("$(run_image "$PORT" --group-add "$GID")")
expect "image runs as the numeric user 65534:65534" \
    test "$(docker image inspect --format '{{.Config.User}}' "$IMAGE:latest")" = 65534:65534
expect "with --group-add $GID: a scan completes" scanned "$PORT"
PID=$(docker inspect --format '{{.State.Pid}}' "${CONTAINERS[0]}")
expect "the process runs as uid 65534 with group $GID added" \
    bash -c "grep -Eq '^Uid:\s+65534\s' /proc/$PID/status \
        && grep -Eq '^Groups:.*\b$GID\b' /proc/$PID/status"
expect "with --group-add $GID: docker_image_exporter_scan_success 1" \
    test "$(metric "$PORT" docker_image_exporter_scan_success)" = 1
expect "with --group-add $GID: /readyz answers 200" \
    curl -fs -o /dev/null "http://127.0.0.1:$PORT/readyz"
expect "the image lists itself among the engine's images" \
    bash -c "curl -fs http://127.0.0.1:$PORT/metrics \
        | grep -q '^docker_image_info{.*image=\"$IMAGE:'"

# Without it: the socket refuses the process, which reports that and keeps serving.
PORT=$(free_port)
CONTAINERS+=("$(run_image "$PORT")")
expect "without --group-add: a scan completes" scanned "$PORT"
expect "without --group-add: docker_image_exporter_scan_success 0" \
    test "$(metric "$PORT" docker_image_exporter_scan_success)" = 0
expect "without --group-add: /readyz answers 503" \
    test "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" = 503
expect "without --group-add: /healthz answers 200" \
    curl -fs -o /dev/null "http://127.0.0.1:$PORT/healthz"

# The compose service, with only what this engine forces changed: no bridge network, so the
# host's; no published port, so a loopback address of its own; and this run's image.
PORT=$(free_port)
cat >"$WORK/override.yml" <<END
services:
  exporter:
    image: $IMAGE:latest
    network_mode: host
    ports: !reset []
    command: ["--web.listen-address=127.0.0.1:$PORT"]
END
mkdir -p "$WORK/docker/cli-plugins"
ln -s "$STATE/deploy/compose/root/usr/libexec/docker/cli-plugins/docker-compose" \
    "$WORK/docker/cli-plugins/docker-compose"
COMPOSE=(env DOCKER_CONFIG="$WORK/docker" DOCKER_GID="$GID" DOCKER_SOCKET="$SOCKET"
    docker compose --project-name "$PROJECT" -f deploy/compose/compose.yml
    -f "$WORK/override.yml")
"${COMPOSE[@]}" up -d --no-deps --pull never exporter >&2
expect "compose.yml's exporter service: a scan completes" scanned "$PORT"
expect "compose.yml's exporter service: docker_image_exporter_scan_success 1" \
    test "$(metric "$PORT" docker_image_exporter_scan_success)" = 1
expect "compose.yml's exporter service: read-only, no capabilities, socket read-only" \
    test "$(docker inspect --format \
        '{{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}} {{(index .Mounts 0).RW}}' \
        "$PROJECT-exporter-1")" = "true [ALL] false"

echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
