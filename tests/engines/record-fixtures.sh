#!/usr/bin/env bash
# Record real engine payloads for the unit tests, from a small scenario on one private
# engine, into tests/fixtures/ENGINE/{images,containers}.json (API v1.41).
#
# Usage: record-fixtures.sh ENGINE
# The scenario, every object labelled die.test=1 and removed afterwards:
#   die-test/fixture:app built twice: the first image loses its tag to the second but
#     is still used by the running container die-fx-running
#   die-test/fixture:app and die-test/fixture:other name the same (second) image
#   die-fx-running (first image), die-fx-exited (exit 2, second image),
#   die-fx-created (die-test/busybox:base)
# Docker 26 engines also get images.v1.45.json and containers.v1.45.json, their own
# API version, where some fields differ.
set -euo pipefail

# shellcheck source=tests/engines/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 1 ]] || die "usage: record-fixtures.sh ENGINE"
ENGINE=$1
OUT=$DIE_REPO/tests/fixtures/$ENGINE
eval "export $("$DIE_ENGINES_DIR/engine.sh" "$ENGINE" env)"
SOCK=${DOCKER_HOST#unix://}
"$DIE_ENGINES_DIR/engine.sh" "$ENGINE" status >/dev/null \
    || die "$ENGINE is not running (tests/engines/engine.sh $ENGINE start)"

# Start from an engine holding nothing of ours but the base image.
"$DIE_ENGINES_DIR/states.sh" "$ENGINE" down >/dev/null
"$DIE_ENGINES_DIR/test-image.sh" >/dev/null

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"; "$DIE_ENGINES_DIR/states.sh" "$ENGINE" down >/dev/null' EXIT

# Build FROM the base image with the classic builder: it works on every engine here,
# Podman included, without any network.
build() {
    local version=$1
    shift
    printf 'FROM die-test/busybox:base\nLABEL die.test.version=%s\n' "$version" \
        >"$WORK/Dockerfile"
    DOCKER_BUILDKIT=0 docker build -q --network none "$@" "$WORK" >/dev/null 2>"$WORK/err" \
        || { cat "$WORK/err" >&2; die "docker build of version $version failed"; }
}

build 1 -t die-test/fixture:app
docker run -d --label die.test=1 --network none --name die-fx-running \
    die-test/fixture:app >/dev/null
build 2 -t die-test/fixture:app -t die-test/fixture:other
docker run --label die.test=1 --network none --name die-fx-exited \
    die-test/fixture:app sh -c 'exit 2' || true
docker create --label die.test=1 --network none --name die-fx-created \
    die-test/busybox:base >/dev/null

# Save one response, pretty-printed, failing on any HTTP error.
save() {
    local path=$1 file=$2
    curl -fsS --unix-socket "$SOCK" "http://localhost$path" >"$WORK/body" \
        || die "GET $path on $ENGINE failed"
    python3 -m json.tool "$WORK/body" >"$OUT/$file" || die "GET $path returned no JSON"
}

mkdir -p "$OUT"
save '/v1.41/images/json?all=1' images.json
save '/v1.41/containers/json?all=1' containers.json
if [[ $ENGINE == docker26* ]]; then
    save '/v1.45/images/json?all=1' images.v1.45.json
    save '/v1.45/containers/json?all=1' containers.v1.45.json
fi
echo "recorded $(cd "$OUT" && echo *.json) in $OUT"
