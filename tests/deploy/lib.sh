# shellcheck shell=bash
# Helpers shared by the end-to-end scripts beside this file; sourced, not run.
#
# Callers set REPO and STATE first. ensure_engine starts a private docker20 engine from
# tests/engines/ (state under $STATE/deploy) unless DOCKER_HOST names one already, and
# stop_engine stops it again only if ensure_engine started it.

STARTED_ENGINE=""

note() {
    echo "==> $*" >&2
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

ensure_engine() {
    if [[ -n ${DOCKER_HOST:-} ]]; then
        return 0
    fi
    "$REPO/tests/engines/install-deps.sh" --no-trixie >&2
    if ! DIE_STATE_DIR=$STATE/deploy "$REPO/tests/engines/engine.sh" docker20 status \
        >/dev/null 2>&1; then
        STARTED_ENGINE=docker20
    fi
    DIE_STATE_DIR=$STATE/deploy "$REPO/tests/engines/engine.sh" docker20 start >&2
    export "$(DIE_STATE_DIR=$STATE/deploy "$REPO/tests/engines/engine.sh" docker20 env)"
}

stop_engine() {
    if [[ -n $STARTED_ENGINE ]]; then
        DIE_STATE_DIR=$STATE/deploy "$REPO/tests/engines/engine.sh" "$STARTED_ENGINE" stop >&2
    fi
}

# Runs one assertion: the command after NAME must succeed. Prints "ok" or "FAIL" with NAME and
# counts it in PASSED or FAILED, which the caller sets to 0 and reports at the end.
expect() {
    local name=$1
    shift
    if "$@"; then
        echo "ok   $name"
        PASSED=$((PASSED + 1))
    else
        echo "FAIL $name"
        FAILED=$((FAILED + 1))
    fi
}
