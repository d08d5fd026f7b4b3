#!/usr/bin/env bash
# Put containers of the test image in every state on one private engine, list them,
# or remove every object the tests labelled die.test=1.
#
# Usage: states.sh ENGINE up|list|down
#   up     create <prefix>created, running, paused, restarting, exited and dead
#   list   print name, state and status of the containers labelled die.test=1
#   down   remove all containers labelled die.test=1 and all images labelled
#          die.test=1 except die-test/busybox:base (images built FROM it inherit the label)
# Environment: DIE_STATES_PREFIX (container name prefix, default die-st-).
#
# "dead" is made by pinning a file with `chattr +i` in the container's writable layer
# (overlay2) or else in its directory under the engine's data root, so that
# `docker rm -f` fails half-way; `down` unpins it.
# Podman has neither a dead nor a restarting state: both are skipped there.
set -euo pipefail

# shellcheck source=tests/engines/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $# -eq 2 ]] || die "usage: states.sh ENGINE up|list|down"
ENGINE=$1
ACTION=$2
PREFIX=${DIE_STATES_PREFIX:-die-st-}
IMAGE=die-test/busybox:base
PIN=die-pin

# Only our own engines: the pinning writes into the engine's data root on this host.
eval "export $("$DIE_ENGINES_DIR/engine.sh" "$ENGINE" env)"
"$DIE_ENGINES_DIR/engine.sh" "$ENGINE" status >/dev/null \
    || die "$ENGINE is not running (tests/engines/engine.sh $ENGINE start)"

is_podman() {
    docker version --format '{{range .Server.Components}}{{.Name}} {{end}}' 2>/dev/null \
        | grep -q Podman
}

# The engine's view of its data root; only Docker has one we pin in.
data_root() {
    docker info --format '{{.DockerRootDir}}'
}

# Where to pin a file for container ID: the writable layer of a graph driver
# (overlay2), else the container's own directory under the data root (containerd's
# snapshotter deletes snapshots in the background and ignores failures).
pin_dirs() {
    local id=$1 root=$2
    local py='import json, sys; print((json.load(sys.stdin) or {}).get("UpperDir", ""))'
    docker inspect --format '{{json .GraphDriver.Data}}' "$id" 2>/dev/null \
        | python3 -c "$py" | grep -v '^$' || true
    echo "$root/containers/$id"
}

run() {
    docker run -d --label die.test=1 --network none "$@" >/dev/null
}

# Refresh the listing: after a failed removal Docker lists the container as
# "removing" until its state is saved again, which a rename does.
refresh_listing() {
    local name=$1
    docker rename "$name" "$name-tmp" && docker rename "$name-tmp" "$name"
}

make_dead() {
    local name=$1 id root dir
    local -a dirs
    id=$(docker create --label die.test=1 --network none --name "$name" "$IMAGE")
    root=$(data_root)
    mapfile -t dirs < <(pin_dirs "$id" "$root")
    dir=${dirs[0]}
    [[ -d $dir ]] || die "no directory $dir to pin a file in"
    touch "$dir/$PIN"
    chattr +i "$dir/$PIN" || die "chattr +i failed in $dir"
    if docker rm -f "$name" >/dev/null 2>&1; then
        die "docker rm -f $name succeeded although $dir/$PIN is immutable"
    fi
    refresh_listing "$name"
}

# Wait up to 10 s until container NAME is listed in STATE.
wait_state() {
    local name=$1 state=$2 i
    for ((i = 0; i < 50; i++)); do
        [[ $(docker ps -a --filter "name=^$name\$" --format '{{.State}}') == "$state" ]] \
            && return 0
        sleep 0.2
    done
    die "$name did not reach state $state within 10 s"
}

do_up() {
    "$DIE_ENGINES_DIR/test-image.sh" >/dev/null
    docker create --label die.test=1 --network none --name "${PREFIX}created" "$IMAGE" \
        >/dev/null
    run --name "${PREFIX}running" "$IMAGE"
    run --name "${PREFIX}paused" "$IMAGE"
    docker pause "${PREFIX}paused" >/dev/null
    docker run --label die.test=1 --network none --name "${PREFIX}exited" "$IMAGE" \
        sh -c 'exit 3' || true
    if is_podman; then
        note "podman: no restarting state (it restarts at once, in a loop) and no dead state"
        note "podman: (it forgets a container whose storage cannot be deleted); both skipped"
    else
        # Exits at once; Docker's growing back-off keeps it listed as "restarting".
        run --name "${PREFIX}restarting" --restart always "$IMAGE" sh -c 'exit 1'
        wait_state "${PREFIX}restarting" restarting
        make_dead "${PREFIX}dead"
    fi
    do_list
}

do_list() {
    docker ps -a --filter label=die.test=1 --format '{{.Names}}\t{{.State}}\t{{.Status}}'
}

unpin() {
    local file=$1
    [[ -e $file ]] || return 0
    chattr -i "$file" || die "chattr -i $file failed"
    rm -f "$file"
}

do_down() {
    local id root="" base i dir
    local -a ids images
    is_podman || root=$(data_root)
    mapfile -t ids < <(docker ps -aq --no-trunc --filter label=die.test=1)
    if [[ -n $root ]]; then
        for id in "${ids[@]}"; do
            while read -r dir; do
                unpin "$dir/$PIN"
            done < <(pin_dirs "$id" "$root")
        done
        # A dead container whose layer was already released is forgotten by a
        # restarted engine; its directory and pinned file stay behind.
        for dir in "$root"/containers/*/; do
            unpin "$dir$PIN"
        done
    fi
    if ((${#ids[@]} > 0)); then
        docker rm -f "${ids[@]}" >/dev/null || die "could not remove containers: ${ids[*]}"
    fi
    # Images: children before parents, so retry a few rounds.
    base=$(docker image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
    for ((i = 0; i < 5; i++)); do
        mapfile -t images < <(docker images -aq --no-trunc --filter label=die.test=1 \
            | grep -vxF "${base:-none}" | sort -u)
        ((${#images[@]} > 0)) || break
        docker rmi -f "${images[@]}" >/dev/null 2>&1 || true
    done
    ((${#images[@]} == 0)) || die "images left after removal: ${images[*]}"
    echo "$ENGINE: removed ${#ids[@]} containers and the test images but $IMAGE"
}

case $ACTION in
    up) do_up ;;
    list) do_list ;;
    down) do_down ;;
    *) die "unknown action '$ACTION' (usage: states.sh ENGINE up|list|down)" ;;
esac
