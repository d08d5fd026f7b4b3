#!/usr/bin/env bash
# A real Prometheus, loaded with the project's rules, scrapes the real exporter watching a
# real engine; the rules, alerts and every dashboard query are checked against what it sees.
#
# Usage: tests/deploy/e2e-prometheus.sh
# Environment:
#   DOCKER_HOST    engine to use; when unset, a private docker20 engine is started from
#                  tests/engines/ (state under <repo>/.state/deploy) and stopped on exit
#   EXPORTER       exporter binary (default: target/release/docker-image-exporter, built
#                  with cargo build --release)
#   DIE_STATE_DIR  state root (default <repo>/.state)
#
# On the engine it creates, all labelled die.e2e=1 and removed on exit whatever happens:
#   in-use        an image with a running container
#   stopped-only  an image whose containers are one exited and one never started
#   unused        an image no container references
# The engine may hold other images; every per-image assertion is limited to these three.
#
# Three targets in job docker-image-exporter: the exporter on that engine, an exporter
# pointed at a socket that does not exist (its scans fail), and a port nothing listens on.
# Prometheus evaluates a copy of the rules whose `for:` durations are 0s, and a threshold
# override of 0 for the first target, so that every alert but DockerImageExporterDataStale
# can fire within seconds; the expressions are the shipped ones.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/tests/deploy
STATE=${DIE_STATE_DIR:-$REPO/.state}
RUN=$$-$RANDOM
WORK=$STATE/deploy/e2e-$RUN
PIDS=()
cd "$REPO"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

# Everything this script started or created goes, in reverse order, even after a failure.
cleanup() {
    local status=$? pid
    set +e
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    if [[ -n ${DOCKER_HOST:-} ]]; then
        local -a ids
        mapfile -t ids < <(docker ps -aq --filter "label=die.e2e.run=$RUN")
        ((${#ids[@]} == 0)) || docker rm -f "${ids[@]}" >/dev/null
        mapfile -t ids < <(docker image ls -q --filter "label=die.e2e.run=$RUN" | sort -u)
        ((${#ids[@]} == 0)) || docker image rm -f "${ids[@]}" >/dev/null
    fi
    stop_engine
    if ((status != 0)) && [[ -d $WORK ]]; then
        echo "--- logs kept in $WORK" >&2
        tail -n 5 "$WORK"/*.log >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$WORK"

# --- tools, binary, engine -----------------------------------------------------------------
"$HERE/install-deps.sh" >&2
PY=$STATE/venv/bin/python
command -v prometheus >/dev/null || { echo "error: prometheus not found" >&2; exit 1; }
if [[ -z ${EXPORTER:-} ]]; then
    note "cargo build --release"
    cargo build --release >&2
    EXPORTER=$REPO/target/release/docker-image-exporter
fi

ensure_engine
note "engine: $DOCKER_HOST"
tests/engines/test-image.sh >&2
BASE=${DIE_TEST_IMAGE:-die-test/busybox:base}

# --- scenario ------------------------------------------------------------------------------
# Each image is a commit of a container of the base image, so each has an ID of its own.
# One LABEL per --change: Podman reads only the first key=value of a LABEL line.
make_image() {
    local role=$1 cid
    cid=$(docker create --pull never --network none --label die.e2e=1 \
        --label "die.e2e.run=$RUN" "$BASE")
    docker commit --change "LABEL die.e2e=1" --change "LABEL die.e2e.run=$RUN" \
        --change "LABEL die.e2e.role=$role" "$cid" "die-e2e/$role:$RUN" >/dev/null
    docker rm "$cid" >/dev/null
    docker image inspect --format '{{.Id}}' "die-e2e/$role:$RUN"
}
# Nothing is ever pulled: every image here is built on the engine itself.
LABELS=(--pull never --network none --label die.e2e=1 --label "die.e2e.run=$RUN")
IN_USE=$(make_image in-use)
STOPPED_ONLY=$(make_image stopped-only)
UNUSED=$(make_image unused)
docker run -d "${LABELS[@]}" "die-e2e/in-use:$RUN" sleep 3600 >/dev/null
docker run "${LABELS[@]}" "die-e2e/stopped-only:$RUN" true
docker create "${LABELS[@]}" "die-e2e/stopped-only:$RUN" true >/dev/null
note "scenario: in-use $IN_USE, stopped-only $STOPPED_ONLY, unused $UNUSED"

# --- exporters -----------------------------------------------------------------------------
OK_PORT=$(free_port)
FAILING_PORT=$(free_port)
DOWN_PORT=$(free_port)
"$EXPORTER" --docker.host="$DOCKER_HOST" --web.listen-address="127.0.0.1:$OK_PORT" \
    --scan.interval=1s >"$WORK/exporter.log" 2>&1 &
PIDS+=($!)
"$EXPORTER" --docker.host="unix://$WORK/no-engine.sock" \
    --web.listen-address="127.0.0.1:$FAILING_PORT" --scan.interval=1s \
    >"$WORK/exporter-failing.log" 2>&1 &
PIDS+=($!)

# --- Prometheus ----------------------------------------------------------------------------
# The rules as shipped but for their hold times, which would make the test wait an hour.
mkdir -p "$WORK/rules"
sed -E 's/^( +for: )[0-9]+[smh]\b.*$/\10s/' \
    deploy/prometheus/rules/docker-image-exporter.rules.yml \
    >"$WORK/rules/docker-image-exporter.rules.yml"
cat >"$WORK/rules/thresholds.yml" <<EOF
groups:
  - name: e2e.thresholds
    rules:
      - record: docker_host:unused_images_threshold_override:count
        expr: vector(0)
        labels: {job: docker-image-exporter, instance: "127.0.0.1:$OK_PORT"}
      - record: docker_host:unused_images_threshold_override:bytes
        expr: vector(0)
        labels: {job: docker-image-exporter, instance: "127.0.0.1:$OK_PORT"}
EOF
cat >"$WORK/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - $WORK/rules/*.yml
scrape_configs:
  - job_name: docker-image-exporter
    static_configs:
      - targets:
          - 127.0.0.1:$OK_PORT
          - 127.0.0.1:$FAILING_PORT
          - 127.0.0.1:$DOWN_PORT
EOF
promtool check config "$WORK/prometheus.yml" >&2

PROM_PORT=$(free_port)
prometheus --config.file="$WORK/prometheus.yml" --storage.tsdb.path="$WORK/data" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$WORK/prometheus.log" 2>&1 &
PIDS+=($!)
note "prometheus on 127.0.0.1:$PROM_PORT, exporters on $OK_PORT (ok), $FAILING_PORT" \
    "(no engine), nothing on $DOWN_PORT"

# --- assertions ----------------------------------------------------------------------------
"$PY" "$HERE/e2e_assert.py" \
    --prometheus "http://127.0.0.1:$PROM_PORT" \
    --ok "127.0.0.1:$OK_PORT" --failing "127.0.0.1:$FAILING_PORT" --down "127.0.0.1:$DOWN_PORT" \
    --in-use "$IN_USE" --stopped-only "$STOPPED_ONLY" --unused "$UNUSED" \
    --dashboard grafana/dashboards/docker-image-exporter.json
