#!/usr/bin/env bash
# Start, stop and inspect one private container engine for the integration tests.
#
# Usage: engine.sh ENGINE start|stop|status|env|purge
#   ENGINE   docker20 | docker26 | docker26-containerd | podman
#   start    start the engine unless it is running; wait until it answers GET /_ping
#   stop     end the processes this script started, then unmount what is left
#   status   say whether it runs and answers (exit 0), runs but is silent (1), is down (3)
#   env      print DOCKER_HOST=unix:///... for eval or export
#   purge    stop, then delete the engine's state directory (cached debs are kept)
#
# Each engine lives in $DIE_STATE_DIR/engines/ENGINE (default <repo>/.state/engines/ENGINE)
# with its own socket, data root, exec root, containerd, cgroup parent, pid and log files.
# Environment: DIE_STATE_DIR (state root), DIE_ENGINE_TIMEOUT (seconds to wait, default 60),
#   DIE_DOCKERD_ARGS (more dockerd flags, space-separated; Docker engines only).
set -euo pipefail

# shellcheck source=tests/engines/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

[[ $# -eq 2 ]] || usage
ENGINE=$1
ACTION=$2
case $ENGINE in
    docker20 | docker26 | docker26-containerd | podman) ;;
    *) echo "error: unknown engine '$ENGINE' (one of: $DIE_ENGINE_NAMES)" >&2; usage ;;
esac

DIR=$DIE_STATE/engines/$ENGINE
SOCK=$DIR/engine.sock
LOG=$DIR/engine.log
PIDS=$DIR/pids
TIMEOUT=${DIE_ENGINE_TIMEOUT:-60}
# Named after the state directory too, so that two state roots never share it.
CGROUP_PARENT=die-$ENGINE-$(printf '%s' "$DIR" | sha256sum | cut -c1-8)

# Unix socket paths are limited to 107 bytes; the longest of ours is containerd's ttrpc
# socket, 33 bytes below the engine's directory.
if ((${#DIR} > 74)); then
    die "state directory too long for unix sockets (${#DIR} > 74 bytes): $DIR;" \
        "set DIE_STATE_DIR to a shorter path"
fi

# --- processes ---------------------------------------------------------------------

# Print the pid recorded under NAME if that process is alive and is still ours:
# its command line or its root directory must mention our state directory.
live_pid() {
    local file=$PIDS/$1 pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    is_ours "$pid" || return 1
    echo "$pid"
}

is_ours() {
    local pid=$1 cmd
    [[ $pid =~ ^[0-9]+$ ]] && [[ -d /proc/$pid ]] || return 1
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || true
    [[ $cmd == *"$DIR"* ]] && return 0
    [[ $(readlink "/proc/$pid/root" 2>/dev/null) == "$DIR"/* ]]
}

# Send SIGTERM to PID, wait up to SECONDS for it to exit, then SIGKILL it.
end_pid() {
    local pid=$1 seconds=$2 i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < seconds * 10; i++)); do
        [[ -d /proc/$pid ]] || return 0
        # A zombie child of ours has exited; nothing more to wait for.
        [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] && return 0
        sleep 0.1
    done
    note "pid $pid did not exit after ${seconds}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        [[ -d /proc/$pid ]] || return 0
        sleep 0.1
    done
    echo "warning: pid $pid still present after SIGKILL" >&2
}

# Launch a daemon in its own session, logging to $LOG, and record its pid under NAME.
launch() {
    local name=$1
    shift
    mkdir -p "$PIDS"
    echo "---- $(date -u +%FT%TZ) starting $name: $*" >>"$LOG"
    setsid "$@" >>"$LOG" 2>&1 </dev/null &
    local pid=$! i
    echo "$pid" >"$PIDS/$name"
    # Until the child has exec'd, its command line is this script's.
    for ((i = 0; i < 50; i++)); do
        is_ours "$pid" && return 0
        [[ -d /proc/$pid ]] || return 0
        sleep 0.1
    done
}

ping_engine() {
    [[ -S $SOCK ]] && curl -fsS --max-time 3 --unix-socket "$SOCK" http://localhost/_ping \
        >/dev/null 2>&1
}

fail_start() {
    echo "error: $ENGINE: $*" >&2
    echo "---- last lines of $LOG:" >&2
    tail -n 30 "$LOG" >&2 || true
    # Leave nothing half-started behind (the log stays).
    do_stop quiet
    exit 1
}

# Wait until a unix socket exists and the process recorded under NAME lives.
# Whether the process recorded under NAME still runs (a zombie does not). Unlike live_pid
# it does not read the command line, which can be momentarily empty while the process execs
# and would read as "exited".
still_running() {
    local file=$PIDS/$1 pid state
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

wait_socket() {
    local name=$1 sock=$2 i
    for ((i = 0; i < TIMEOUT * 10; i++)); do
        [[ -S $sock ]] && return 0
        still_running "$name" || fail_start "$name exited before creating $sock"
        sleep 0.1
    done
    fail_start "$name did not create $sock within ${TIMEOUT}s"
}

wait_ping() {
    local main=$1 i
    for ((i = 0; i < TIMEOUT * 5; i++)); do
        ping_engine && return 0
        still_running "$main" || fail_start "$main exited before answering on $SOCK"
        sleep 0.2
    done
    fail_start "no answer to GET /_ping on $SOCK within ${TIMEOUT}s"
}

# --- mounts ------------------------------------------------------------------------

# Unmount everything mounted under our state directory, deepest first.
unmount_all() {
    local mp
    local -a mps
    mapfile -t mps < <(awk '{print $2}' /proc/self/mounts \
        | while read -r m; do printf '%b\n' "$m"; done \
        | grep -F "$DIR/" | awk '{print length, $0}' | sort -rn | cut -d' ' -f2-)
    for mp in "${mps[@]}"; do
        [[ $mp == "$DIR"/* ]] || continue
        umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null \
            || echo "warning: could not unmount $mp" >&2
    done
}

# --- docker engines ----------------------------------------------------------------

containerd_config() {
    local c=$DIR/containerd
    mkdir -p "$c/root" "$c/state" "$c/opt"
    cat >"$c/config.toml" <<EOF
version = 2
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$c/containerd.sock"

[ttrpc]
  address = "$c/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$c/opt"
EOF
}

start_docker() {
    local bin_dir="" dockerd=/usr/sbin/dockerd containerd=/usr/bin/containerd
    local -a extra=()
    case $ENGINE in
        docker20)
            extra=(--storage-driver "${DIE_DOCKER_STORAGE_DRIVER:-overlay2}")
            ;;
        docker26)
            extra=(--storage-driver "${DIE_DOCKER_STORAGE_DRIVER:-overlay2}")
            ;;
        docker26-containerd)
            # The storage driver is containerd's snapshotter (overlayfs by default).
            ;;
    esac
    if [[ $ENGINE == docker26* ]]; then
        fetch_trixie
        bin_dir=$DIE_TRIXIE/root/usr/bin:$DIE_TRIXIE/root/usr/sbin:
        dockerd=$DIE_TRIXIE/root/usr/sbin/dockerd
        containerd=$DIE_TRIXIE/root/usr/bin/containerd
    fi
    # Extra dockerd flags from the caller, e.g. a TLS listener for a test.
    local -a caller_args=()
    read -r -a caller_args <<<"${DIE_DOCKERD_ARGS:-}"
    extra+=("${caller_args[@]}")
    [[ -x $dockerd ]] || die "$dockerd not found (run tests/engines/install-deps.sh)"
    [[ -x $containerd ]] || die "$containerd not found (run tests/engines/install-deps.sh)"
    command -v runc >/dev/null || die "runc not found on PATH (apt-get install runc)"

    # 20.10 would otherwise create its trust key in /etc/docker/key.json.
    case $ENGINE in
        docker20) echo "{\"deprecated-key-path\": \"$DIR/key.json\"}" ;;
        docker26) echo '{}' ;;
        docker26-containerd) echo '{"features": {"containerd-snapshotter": true}}' ;;
    esac >"$DIR/daemon.json"

    # A containerd of our own: a dockerd left to itself would adopt a system
    # containerd listening on /run/containerd/containerd.sock.
    if ! live_pid containerd >/dev/null; then
        containerd_config
        rm -f "$DIR/containerd/containerd.sock" "$DIR/containerd/containerd.sock.ttrpc"
        PATH=$bin_dir$PATH launch containerd "$containerd" --config "$DIR/containerd/config.toml"
    fi
    wait_socket containerd "$DIR/containerd/containerd.sock"

    mkdir -p "$DIR/data" "$DIR/exec"
    rm -f "$SOCK"
    PATH=$bin_dir$PATH launch dockerd "$dockerd" \
        --host "unix://$SOCK" \
        --containerd "$DIR/containerd/containerd.sock" \
        --data-root "$DIR/data" \
        --exec-root "$DIR/exec" \
        --pidfile "$DIR/dockerd.pid" \
        --config-file "$DIR/daemon.json" \
        --cgroup-parent "$CGROUP_PARENT" \
        --exec-opt native.cgroupdriver=cgroupfs \
        --bridge=none --iptables=false --ip6tables=false --ip-forward=false \
        --ip-masq=false --userland-proxy=false \
        "${extra[@]}"
    wait_ping dockerd
}

# --- podman ------------------------------------------------------------------------

podman_flags() {
    printf '%s\n' --root "$DIR/root" --runroot "$DIR/run" --tmpdir "$DIR/tmp" \
        --storage-driver vfs --cgroup-manager cgroupfs --events-backend file \
        --network-config-dir "$DIR/networks" --volumepath "$DIR/volumes" \
        --runtime runc --runtime-flag "root=$DIR/runc"
}

# containers.conf of our own: file locks under our tmpdir instead of the shared
# /dev/shm/libpod_lock, temporary image copies under our state dir instead of
# /var/tmp, and ulimits that containers can start with on this host.
podman_conf() {
    mkdir -p "$DIR/root" "$DIR/run" "$DIR/tmp" "$DIR/networks" "$DIR/volumes" "$DIR/vartmp"
    cat >"$DIR/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
lock_type = "file"
image_copy_tmp_dir = "$DIR/vartmp"
EOF
    cat >"$DIR/storage.conf" <<EOF
[storage]
driver = "vfs"
graphroot = "$DIR/root"
runroot = "$DIR/run"
EOF
}

start_podman() {
    command -v podman >/dev/null || die "podman not found (run tests/engines/install-deps.sh)"
    local -a flags
    mapfile -t flags < <(podman_flags)
    podman_conf
    rm -f "$SOCK"
    # TMPDIR: the compat API spools imported and loaded images there.
    TMPDIR=$DIR/vartmp CONTAINERS_CONF=$DIR/containers.conf \
        CONTAINERS_STORAGE_CONF=$DIR/storage.conf \
        launch podman podman "${flags[@]}" --log-level info \
        system service --time=0 "unix://$SOCK"
    wait_ping podman
}

# The podman CLI on our private store.
podman_cli() {
    local -a flags
    mapfile -t flags < <(podman_flags)
    CONTAINERS_CONF=$DIR/containers.conf CONTAINERS_STORAGE_CONF=$DIR/storage.conf \
        timeout 60 podman "${flags[@]}" "$@"
}

# Stop podman's containers through its own CLI, so that their conmon processes and
# mounts go away too. Paused ones must be resumed first: podman refuses to stop them.
stop_podman_containers() {
    [[ -d $DIR/root/libpod ]] || return 0
    podman_cli unpause --all >/dev/null 2>&1 || true
    podman_cli stop --all --time 2 >/dev/null 2>&1 \
        || echo "warning: podman stop --all failed on $DIR" >&2
}

# --- leftovers ---------------------------------------------------------------------

# Thaw the freezer cgroup of PID (cgroup v1 or v2), so that a paused process can die.
thaw_pid() {
    local pid=$1 path
    path=$(awk -F: '$2 == "freezer" {print $3}' "/proc/$pid/cgroup" 2>/dev/null) || true
    if [[ -n $path && -f /sys/fs/cgroup/freezer$path/freezer.state ]]; then
        echo THAWED >"/sys/fs/cgroup/freezer$path/freezer.state" 2>/dev/null || true
        return 0
    fi
    path=$(awk -F: '$1 == "0" {print $3}' "/proc/$pid/cgroup" 2>/dev/null) || true
    if [[ -n $path && -f /sys/fs/cgroup$path/cgroup.freeze ]]; then
        echo 0 >"/sys/fs/cgroup$path/cgroup.freeze" 2>/dev/null || true
    fi
}

# A container process named in a pid file under our state directory is ours when its
# cgroup carries the container id that the pid file's path carries.
in_container_of() {
    local pid=$1 file=$2 id
    id=$(grep -oE '[0-9a-f]{64}' <<<"$file" | head -n 1) || return 1
    [[ -n $id ]] && grep -qF "$id" "/proc/$pid/cgroup" 2>/dev/null
}

# Processes that outlived their engine: container processes named in pid files under
# our state dir (thawed, then killed), then the shims and conmons that watched them.
kill_leftovers() {
    local f pid cg
    local -a files
    mapfile -d '' -t files < <(find "$DIR" -xdev \( -name '*.pid' -o -name pidfile \) \
        -type f -print0 2>/dev/null)
    for f in "${files[@]}"; do
        pid=$(head -c 20 "$f" 2>/dev/null | tr -dc 0-9) || true
        [[ -n $pid && -d /proc/$pid ]] || continue
        if in_container_of "$pid" "$f"; then
            note "killing leftover container process $pid (from $f)"
            thaw_pid "$pid"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    for f in "${files[@]}"; do
        pid=$(head -c 20 "$f" 2>/dev/null | tr -dc 0-9) || true
        if [[ -n $pid ]] && is_ours "$pid"; then
            note "ending leftover pid $pid (from $f)"
            end_pid "$pid" 5
        fi
    done
    # Empty cgroups of our containers can now go: Docker's under our cgroup parent,
    # Podman's named after the ids of our containers.
    for cg in /sys/fs/cgroup/*/"$CGROUP_PARENT"; do
        [[ -d $cg ]] || continue
        find "$cg" -depth -mindepth 1 -type d -exec rmdir {} \; 2>/dev/null || true
        rmdir "$cg" 2>/dev/null || true
    done
    if [[ $ENGINE == podman && -f $DIR/tmp/events/events.log ]]; then
        # Podman on cgroup v1 leaves the empty cgroups of exited containers; its
        # events log names every container it ever had.
        grep -oE '"ID":"[0-9a-f]{64}","Image"' "$DIR/tmp/events/events.log" \
            | cut -d'"' -f4 | sort -u | while read -r f; do
            rmdir /sys/fs/cgroup/*/libpod_parent/"libpod-$f" 2>/dev/null || true
        done
    fi
}

# --- actions -----------------------------------------------------------------------

main_name() {
    if [[ $ENGINE == podman ]]; then echo podman; else echo dockerd; fi
}

do_start() {
    local main
    main=$(main_name)
    mkdir -p "$DIR"
    if live_pid "$main" >/dev/null; then
        wait_ping "$main"
        echo "$ENGINE already running (pid $(live_pid "$main")) on $SOCK"
        return 0
    fi
    # Anything from an earlier run that died must not be in the way.
    do_stop quiet
    if [[ $ENGINE == podman ]]; then start_podman; else start_docker; fi
    echo "$ENGINE running (pid $(live_pid "$main")) on $SOCK"
}

do_stop() {
    local pid name
    [[ -d $DIR ]] || return 0
    if [[ $ENGINE == podman ]] && pid=$(live_pid podman); then
        stop_podman_containers
    fi
    # dockerd stops its containers on SIGTERM, and may take its 15 s shutdown timeout.
    for name in dockerd podman containerd; do
        if pid=$(live_pid "$name"); then
            [[ ${1:-} == quiet ]] || note "stopping $ENGINE $name (pid $pid)"
            end_pid "$pid" 40
        fi
        rm -f "$PIDS/$name"
    done
    if [[ $ENGINE == podman ]]; then
        stop_podman_containers
        # Podman 4.3 leaves the spooled tar of each import there.
        rm -rf "$DIR/vartmp"
    fi
    kill_leftovers
    unmount_all
    rm -f "$SOCK"
    [[ ${1:-} == quiet ]] || echo "$ENGINE stopped"
}

do_status() {
    local main pid version
    main=$(main_name)
    if ! pid=$(live_pid "$main"); then
        echo "$ENGINE: not running"
        return 3
    fi
    if ! ping_engine; then
        echo "$ENGINE: running (pid $pid) but not answering on $SOCK"
        return 1
    fi
    local py='import json, sys; v = json.load(sys.stdin); print(v["Version"], v["ApiVersion"])'
    version=$(curl -fsS --max-time 3 --unix-socket "$SOCK" http://localhost/version \
        | python3 -c "$py" 2>/dev/null) || version="?"
    echo "$ENGINE: running (pid $pid) on $SOCK, version/API: $version"
}

do_purge() {
    do_stop
    [[ -d $DIR ]] || return 0
    # Files made immutable for the "dead" container state would block rm.
    chattr -R -i "$DIR" 2>/dev/null || true
    rm -rf "$DIR" || die "could not delete $DIR"
    echo "$ENGINE state deleted"
}

case $ACTION in
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
    env) echo "DOCKER_HOST=unix://$SOCK" ;;
    purge) do_purge ;;
    *) echo "error: unknown action '$ACTION'" >&2; usage ;;
esac
