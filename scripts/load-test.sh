#!/usr/bin/env bash
# Load test: many concurrent scrapers for a sustained period against the release binary,
# served from a private Docker 20.10 engine holding a realistic population.
#
# Usage: scripts/load-test.sh
#
# Builds the release binary, starts a private engine with request logging, fills it with
# containers in the `created` state over images made with `docker build`, then runs the
# exporter on 127.0.0.1 and drives it with wrk: plain HTTP below and above the default
# --web.max-connections, then TLS with basic authentication. Each phase records requests/s,
# latency percentiles, errors, whether a fresh scraper still gets in, the exporter's memory
# and CPU, and the engine's list calls against the scans completed. The report goes to stdout
# and replaces the measured part of docs/load-test.md. Everything created is removed at exit.
#
# Environment (defaults in brackets):
#   LOAD_CONTAINERS   containers to create [1000]
#   LOAD_IMAGES       images to build; the last tenth get no container [100]
#   LOAD_DURATION     seconds of load per phase [60]
#   LOAD_CONNECTIONS  wrk connection counts, space-separated [64 256]
#   LOAD_WIDE_BOUND   --web.max-connections for the phases above the default bound [512]
#   LOAD_THREADS      wrk threads [2]
#   LOAD_SCAN_SECONDS --scan.interval, whole seconds [1]
#   LOAD_PARALLEL     concurrent create requests while populating [8]
#   LOAD_STATE_DIR    the engine's state root [/tmp/die-load]
#   LOAD_REPORT       file whose measured part is replaced, or "-" for none [docs/load-test.md]
# Needs root, cargo, curl, openssl and the engine's packages (tests/engines/install-deps.sh);
# installs wrk and apache2-utils (htpasswd) with apt-get when they are missing.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ENGINE_SH=$REPO/tests/engines/engine.sh

LOAD_CONTAINERS=${LOAD_CONTAINERS:-1000}
LOAD_IMAGES=${LOAD_IMAGES:-100}
LOAD_DURATION=${LOAD_DURATION:-60}
LOAD_CONNECTIONS=${LOAD_CONNECTIONS:-64 256}
LOAD_WIDE_BOUND=${LOAD_WIDE_BOUND:-512}
LOAD_THREADS=${LOAD_THREADS:-2}
LOAD_SCAN_SECONDS=${LOAD_SCAN_SECONDS:-1}
LOAD_PARALLEL=${LOAD_PARALLEL:-8}
LOAD_STATE_DIR=${LOAD_STATE_DIR:-/tmp/die-load}
LOAD_REPORT=${LOAD_REPORT:-$REPO/docs/load-test.md}

# The exporter's own default for --web.max-connections.
DEFAULT_BOUND=64
# Seconds between two fresh-connection scrapes during a phase, and the longest any scrape of
# this script may take.
PROBE_EVERY=5
SCRAPE_TIMEOUT=5
# The line of the report file below which this script writes.
MARKER='<!-- Measured figures: everything below this line is rewritten by scripts/load-test.sh. -->'
BASIC_USER=prometheus
BASIC_PASSWORD=load-test-password

note() {
    echo "==> $*" >&2
}

die() {
    echo "error: $*" >&2
    exit 1
}

# Check the sizes before anything starts, so that a typo fails at once.
for value in "$LOAD_CONTAINERS" "$LOAD_IMAGES" "$LOAD_DURATION" "$LOAD_WIDE_BOUND" \
    "$LOAD_THREADS" "$LOAD_SCAN_SECONDS" "$LOAD_PARALLEL" $LOAD_CONNECTIONS; do
    [[ $value =~ ^[1-9][0-9]*$ ]] || die "'$value' is not a positive whole number"
done
((LOAD_DURATION >= 10)) || die "LOAD_DURATION must be at least 10 seconds"
((${#LOAD_STATE_DIR} <= 40)) || die "LOAD_STATE_DIR is too long for the engine's sockets"

# --- tools -------------------------------------------------------------------------

# wrk drives the load and htpasswd makes the bcrypt hash; both come from Debian.
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
if ((${#missing[@]} > 0)); then
    note "installing ${missing[*]}"
    apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; } \
        || die "apt-get install ${missing[*]} failed"
fi
for tool in cargo curl openssl docker python3 wrk htpasswd; do
    command -v "$tool" >/dev/null || die "$tool not found"
done

# --- cleanup -----------------------------------------------------------------------

WORK=$(mktemp -d /tmp/die-load-work.XXXXXX)
LOADAVG_START=$(cut -d' ' -f1-3 /proc/loadavg)
# Processes this script started and must end: the exporter, wrk, the fresh-scrape loop.
EXPORTER_PID=""
WRK_PID=""
PROBE_PID=""
ENGINE_STARTED=0

end_pid() {
    local pid=$1
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    end_pid "$WRK_PID"
    end_pid "$PROBE_PID"
    end_pid "$EXPORTER_PID"
    if ((ENGINE_STARTED)); then
        note "stopping the engine and deleting its state"
        DIE_STATE_DIR=$LOAD_STATE_DIR "$ENGINE_SH" docker20 purge >/dev/null \
            || echo "warning: engine purge failed; see $LOAD_STATE_DIR" >&2
        rmdir "$LOAD_STATE_DIR/engines" "$LOAD_STATE_DIR" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build -------------------------------------------------------------------------

note "building the release binary"
(cd "$REPO" && cargo build --release --quiet) || die "cargo build --release failed"
BIN=${CARGO_TARGET_DIR:-$REPO/target}/release/docker-image-exporter
[[ -x $BIN ]] || die "$BIN not found after the build"
REVISION=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$REPO" status --porcelain --untracked-files=no -- src Cargo.toml \
    Cargo.lock 2>/dev/null) ]]; then
    REVISION="$REVISION with uncommitted changes in src"
fi

# --- engine ------------------------------------------------------------------------

# A fresh private engine whose debug log names every API request it serves: the count of
# list calls is read from there. Leftovers of an interrupted run go first.
export DIE_STATE_DIR=$LOAD_STATE_DIR
"$ENGINE_SH" docker20 purge >/dev/null 2>&1 || true
ENGINE_STARTED=1
note "starting a private Docker 20.10 under $LOAD_STATE_DIR"
DIE_DOCKERD_ARGS="--debug" "$ENGINE_SH" docker20 start >&2
eval "export $("$ENGINE_SH" docker20 env)"
SOCK=${DOCKER_HOST#unix://}
ENGINE_LOG=$LOAD_STATE_DIR/engines/docker20/engine.log
unset DIE_STATE_DIR
"$REPO/tests/engines/test-image.sh" >&2
ENGINE_VERSION=$(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')

# --- population --------------------------------------------------------------------

# Images differ by a label only, one LABEL instruction so that the legacy builder leaves no
# intermediate image, and each build takes well under a second. The last tenth of them stay
# without containers, as unused images do on real hosts.
USED_IMAGES=$((LOAD_IMAGES - LOAD_IMAGES / 10))
note "building $LOAD_IMAGES images"
build_image() {
    printf 'FROM die-test/busybox:base\nLABEL die.load=1 die.load.image=%d\n' "$1" \
        | DOCKER_BUILDKIT=0 docker build -q -t "load/img:$1" - >/dev/null
}
export -f build_image
# shellcheck disable=SC2016 # $1 is for the inner shell
seq 1 "$LOAD_IMAGES" | xargs -P 4 -n 1 bash -c 'build_image "$1"' _ \
    || die "building the images failed"

# Containers are created straight through the API, several at a time, round-robin over the
# used images. Creating never pulls, and none of them has a network.
note "creating $LOAD_CONTAINERS containers"
create_container() {
    local image=$(((($1 - 1) % USED_IMAGES) + 1))
    local body="{\"Image\":\"load/img:$image\",\"Labels\":{\"die.load\":\"1\"},"
    body+='"NetworkDisabled":true,"HostConfig":{"NetworkMode":"none"}}'
    curl -fsS --max-time 120 --unix-socket "$SOCK" -H 'Content-Type: application/json' \
        -d "$body" "http://localhost/v1.41/containers/create?name=load-$1" >/dev/null
}
export -f create_container
export SOCK USED_IMAGES
started=$SECONDS
# shellcheck disable=SC2016 # $1 is for the inner shell
seq 1 "$LOAD_CONTAINERS" | xargs -P "$LOAD_PARALLEL" -n 1 bash -c 'create_container "$1"' _ \
    || die "creating the containers failed"
POPULATE_SECONDS=$((SECONDS - started))
read -r HAVE_CONTAINERS HAVE_IMAGES < <(docker info --format '{{.Containers}} {{.Images}}')
note "engine holds $HAVE_CONTAINERS containers and $HAVE_IMAGES images"

# --- TLS and basic authentication ----------------------------------------------------

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/server.key" -out "$WORK/server.crt" \
    >/dev/null 2>&1 || die "openssl could not make a self-signed certificate"
HASH=$(htpasswd -nbBC 10 "$BASIC_USER" "$BASIC_PASSWORD" | cut -d: -f2-)
cat >"$WORK/web.yml" <<EOF
tls_server_config:
  cert_file: $WORK/server.crt
  key_file: $WORK/server.key
basic_auth_users:
  $BASIC_USER: '$HASH'
EOF
AUTH_HEADER="Authorization: Basic $(printf '%s:%s' "$BASIC_USER" "$BASIC_PASSWORD" | base64)"

# wrk prints its own summary, then this line for the report; latencies in microseconds.
cat >"$WORK/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f bytes=%.0f connect=%d read=%d write=%d status=%d " ..
    "timeout=%d p50=%.0f p90=%.0f p99=%.0f max=%.0f\n",
    summary.requests, summary.duration / 1e6, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
end
EOF

# --- the exporter ------------------------------------------------------------------

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); \
print(s.getsockname()[1])'
}

# Start the exporter with extra flags; MODE is plain or tls. Sets BASE and CURL for scrapes.
start_exporter() {
    local mode=$1 i
    shift
    PORT=$(free_port)
    if [[ $mode == tls ]]; then
        BASE=https://127.0.0.1:$PORT
        CURL=(curl -sS --max-time "$SCRAPE_TIMEOUT" -k -u "$BASIC_USER:$BASIC_PASSWORD")
        set -- "$@" --web.config.file "$WORK/web.yml"
    else
        BASE=http://127.0.0.1:$PORT
        CURL=(curl -sS --max-time "$SCRAPE_TIMEOUT")
    fi
    "$BIN" --docker.host "$DOCKER_HOST" --scan.interval "${LOAD_SCAN_SECONDS}s" \
        --web.listen-address "127.0.0.1:$PORT" "$@" >>"$WORK/exporter.log" 2>&1 &
    EXPORTER_PID=$!
    for ((i = 0; i < 300; i++)); do
        [[ $("${CURL[@]}" -o /dev/null -w '%{http_code}' "$BASE/readyz" 2>/dev/null) == 200 ]] \
            && return 0
        [[ -d /proc/$EXPORTER_PID ]] || break
        sleep 0.2
    done
    tail -n 20 "$WORK/exporter.log" >&2
    die "the exporter did not become ready on $BASE"
}

stop_exporter() {
    end_pid "$EXPORTER_PID"
    EXPORTER_PID=""
}

# Scans completed, successful or not, as the exporter counts them.
scans_total() {
    "${CURL[@]}" "$BASE/metrics" \
        | awk '/^docker_image_exporter_scans_total\{/ { s += $2 } END { print s + 0 }'
}

# Wait for a scan to complete, then note the scan count and the engine log's size. Right
# after a scan the next one is an interval away, so no list call is in flight: two such
# points bound a window in which list calls and scans can be compared exactly.
sync_point() {
    local before now i limit=$(((2 * LOAD_SCAN_SECONDS + 10) * 50))
    before=$(scans_total)
    for ((i = 0; i < limit; i++)); do
        now=$(scans_total)
        if ((now != before)); then
            SYNC_SCANS=$now
            SYNC_LOG=$(stat -c %s "$ENGINE_LOG")
            return 0
        fi
        sleep 0.02
    done
    die "no scan completed within $((limit / 50)) seconds"
}

# The engine's requests between two byte offsets of its log, matching a path pattern.
engine_calls() {
    tail -c +"$(($1 + 1))" "$ENGINE_LOG" | head -c "$(($2 - $1))" \
        | grep -cE "msg=\"Calling [A-Z]+ (/v[0-9.]+)?$3" || true
}

cpu_ticks() {
    sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# Connections to the exporter's port that it has accepted: one still in the kernel's backlog
# has no socket inode yet.
accepted_connections() {
    awk -v port="$(printf '%04X' "$PORT")" \
        '{ split($2, local, ":") } local[2] == port && $4 == "01" && $10 != 0 { n++ }
         END { print n + 0 }' /proc/net/tcp
}

status_kib() {
    awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"
}

mib() {
    awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'
}

ms() {
    awk -v us="$1" 'BEGIN { printf "%.1f", us / 1000 }'
}

# --- phases ------------------------------------------------------------------------

LOAD_ROWS=()
RESOURCE_ROWS=()
CLK_TCK=$(getconf CLK_TCK)

# One phase: wrk with CONNECTIONS for LOAD_DURATION seconds against the running exporter,
# while a fresh connection scrapes every few seconds as a newly started Prometheus would.
run_phase() {
    local label=$1 connections=$2 bound=$3 mode=$4 n
    note "phase: $label, $connections connections, bound $bound, ${LOAD_DURATION}s"

    # Starting point: counts, memory and CPU before the load.
    sync_point
    local scans0=$SYNC_SCANS log0=$SYNC_LOG
    local rss0 cpu0 time0
    rss0=$(status_kib "$EXPORTER_PID" VmRSS)
    cpu0=$(cpu_ticks "$EXPORTER_PID")
    time0=$EPOCHREALTIME
    local started=$SECONDS

    # The load, and beside it a bounded number of fresh-connection scrapes, each after a
    # count of the connections the exporter has accepted: wrk counts no error for one that
    # waits in the backlog without an answer, so this is where queueing shows. Each probe
    # ends before wrk does, and notes how long the last scan took.
    local -a header=()
    [[ $mode == tls ]] && header=(-H "$AUTH_HEADER")
    local probes=$((LOAD_DURATION / PROBE_EVERY - 1))
    : >"$WORK/probes"
    : >"$WORK/accepted"
    : >"$WORK/scan-seconds"
    (
        for ((n = 1; n <= probes; n++)); do
            sleep "$PROBE_EVERY"
            accepted_connections >>"$WORK/accepted"
            "${CURL[@]}" -o "$WORK/probe-body" -w '%{http_code} %{time_total}\n' \
                "$BASE/metrics" >>"$WORK/probes" 2>/dev/null || true
            awk '/^docker_image_exporter_scan_duration_seconds / { print $2 }' \
                "$WORK/probe-body" >>"$WORK/scan-seconds" 2>/dev/null || true
            rm -f "$WORK/probe-body"
            # Sleeps and timeouts add up: go on only if the next probe ends 2 s before wrk.
            ((SECONDS - started + PROBE_EVERY + SCRAPE_TIMEOUT + 2 <= LOAD_DURATION)) || break
        done
    ) &
    PROBE_PID=$!
    wrk -t "$LOAD_THREADS" -c "$connections" -d "${LOAD_DURATION}s" --timeout 5s --latency \
        -s "$WORK/report.lua" "${header[@]}" "$BASE/metrics" >"$WORK/wrk.txt" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || { cat "$WORK/wrk.txt" >&2; die "wrk failed"; }
    WRK_PID=""
    wait "$PROBE_PID" || true
    PROBE_PID=""
    sed '/^RESULT /d' "$WORK/wrk.txt" >&2

    # End point: the same readings after the load.
    local rss1 hwm1 cpu1
    cpu1=$(cpu_ticks "$EXPORTER_PID")
    rss1=$(status_kib "$EXPORTER_PID" VmRSS)
    hwm1=$(status_kib "$EXPORTER_PID" VmHWM)
    sync_point
    local scans=$((SYNC_SCANS - scans0)) window
    window=$(awk -v a="$time0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
    local containers images all
    containers=$(engine_calls "$log0" "$SYNC_LOG" '/containers/json')
    images=$(engine_calls "$log0" "$SYNC_LOG" '/images/json')
    all=$(engine_calls "$log0" "$SYNC_LOG" '/')

    # wrk's figures, from the line the Lua script printed.
    local -A r=()
    local kv
    local -a kvs=()
    read -r -a kvs < <(grep '^RESULT ' "$WORK/wrk.txt" | cut -d' ' -f2-) || true
    for kv in "${kvs[@]}"; do
        r[${kv%%=*}]=${kv#*=}
    done
    [[ -n ${r[requests]:-} ]] || die "wrk printed no result line"
    local rps cpu_us cpu_pct probe_ok probe_worst accepted probe_count scan_worst
    rps=$(awk -v n="${r[requests]}" -v s="${r[seconds]}" 'BEGIN { printf "%.0f", n / s }')
    cpu_us=$(awk -v t=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v n="${r[requests]}" \
        'BEGIN { printf "%.0f", n ? t / hz / n * 1e6 : 0 }')
    cpu_pct=$(awk -v t=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v s="${r[seconds]}" \
        'BEGIN { printf "%.0f", t / hz / s * 100 }')
    accepted=$(awk '$1 > m { m = $1 } END { print m + 0 }' "$WORK/accepted")
    probe_count=$(wc -l <"$WORK/probes")
    probe_ok=$(awk '$1 == 200' "$WORK/probes" | wc -l)
    scan_worst=$(awk '$1 > m { m = $1 } END { if (NR) printf "%.2f", m; else print "n/a" }' \
        "$WORK/scan-seconds")
    probe_worst=$(awk '{ if ($2 > w) w = $2 } END { printf "%.2f", w }' "$WORK/probes")

    LOAD_ROWS+=("| $label | $connections | $bound | $rps | $(ms "${r[p50]}") \
| $(ms "${r[p90]}") | $(ms "${r[p99]}") | $(ms "${r[max]}") | ${r[status]} \
| ${r[connect]}/${r[read]}/${r[write]}/${r[timeout]} | $accepted | $probe_ok of $probe_count, \
worst ${probe_worst} s |")
    RESOURCE_ROWS+=("| $label | $connections | ${r[requests]} | $(mib "$rss0") → $(mib "$rss1") \
| $(mib "$hwm1") | $cpu_us | $cpu_pct | $scans in $window s | $scan_worst \
| $containers | $images \
| $((all - containers - images)) |")
}

# Facts about the exposition, from an exporter at rest.
start_exporter plain
sync_point
METRICS_BYTES=$("${CURL[@]}" "$BASE/metrics" | wc -c)
METRICS_SERIES=$("${CURL[@]}" "$BASE/metrics" | grep -vc '^#')
SCAN_SECONDS=$("${CURL[@]}" "$BASE/metrics" \
    | awk '/^docker_image_exporter_scan_duration_seconds / { printf "%.3f", $2 }')
IDLE_RSS=$(status_kib "$EXPORTER_PID" VmRSS)

# Plain HTTP with the default bound, at and above it: above it, connections past the bound
# wait in the kernel's backlog until a served one closes.
for c in $LOAD_CONNECTIONS; do
    run_phase "plain" "$c" "$DEFAULT_BOUND (default)" plain
done
stop_exporter

# Plain HTTP with a bound wide enough for every connection above the default.
wide=""
for c in $LOAD_CONNECTIONS; do
    ((c > DEFAULT_BOUND)) && wide+=" $c"
done
if [[ -n $wide ]]; then
    start_exporter plain --web.max-connections "$LOAD_WIDE_BOUND"
    for c in $wide; do
        run_phase "plain" "$c" "$LOAD_WIDE_BOUND" plain
    done
    stop_exporter
fi

# TLS and basic authentication, with the wide bound so that every connection is served.
start_exporter tls --web.max-connections "$LOAD_WIDE_BOUND"
for c in $LOAD_CONNECTIONS; do
    run_phase "TLS + basic auth" "$c" "$LOAD_WIDE_BOUND" tls
done
stop_exporter

# --- report ------------------------------------------------------------------------

report() {
    local mem_kib
    mem_kib=$(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo)
    cat <<EOF
## Run of $(date -u '+%Y-%m-%d %H:%M UTC')

- Machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs, \
$(awk -v k="$mem_kib" 'BEGIN { printf "%.1f", k / 1048576 }') GiB of memory, \
Linux $(uname -r); load average $LOADAVG_START at the start, \
$(cut -d' ' -f1-3 /proc/loadavg) at the end.
- wrk, the exporter and the engine share these CPUs: wrk (${LOAD_THREADS} threads) takes \
a large part of them, so the rates are a floor, not the exporter's ceiling.
- Exporter: revision $REVISION, \`--scan.interval ${LOAD_SCAN_SECONDS}s\`.
- Engine: Docker $ENGINE_VERSION, $HAVE_CONTAINERS containers in the \`created\` state over \
$HAVE_IMAGES images ($USED_IMAGES of the $LOAD_IMAGES built ones hold containers); creating \
the containers took ${POPULATE_SECONDS} s.
- Exposition: $METRICS_BYTES bytes, $METRICS_SERIES samples; a scan took ${SCAN_SECONDS} s; \
resident memory at rest $(mib "$IDLE_RSS") MiB.
- Each phase: ${LOAD_DURATION} s of wrk on keep-alive connections to \`/metrics\`, and a \
fresh connection scraping every ${PROBE_EVERY} s (${SCRAPE_TIMEOUT} s timeout).

| scheme | connections | --web.max-connections | requests/s | p50 ms | p90 ms | p99 ms \
| max ms | non-2xx | socket errors connect/read/write/timeout | connections accepted \
| fresh scrapes answered |
|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---|
EOF
    printf '%s\n' "${LOAD_ROWS[@]}"
    cat <<EOF

| scheme | connections | requests | RSS before → after MiB | peak RSS MiB | exporter CPU µs \
per request | exporter CPU % | scans | longest scan seen s | GET /containers/json \
| GET /images/json | other engine requests |
|---|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|
EOF
    printf '%s\n' "${RESOURCE_ROWS[@]}"
}

report >"$WORK/report.md"
cat "$WORK/report.md"
if [[ $LOAD_REPORT != - ]]; then
    # Keep what stands above the marker, and replace what follows it.
    mkdir -p "$(dirname "$LOAD_REPORT")"
    {
        if [[ -f $LOAD_REPORT ]] && grep -qxF "$MARKER" "$LOAD_REPORT"; then
            sed "/^$(printf '%s' "$MARKER" | sed 's/[][\/.*^$]/\\&/g')\$/q" "$LOAD_REPORT"
        else
            printf '# Load test\n\n%s\n' "$MARKER"
        fi
        echo
        cat "$WORK/report.md"
    } >"$WORK/doc.md"
    mv "$WORK/doc.md" "$LOAD_REPORT"
    note "report written to $LOAD_REPORT"
fi
