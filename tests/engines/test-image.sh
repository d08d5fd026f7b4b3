#!/usr/bin/env bash
# Build the local test image die-test/busybox:base on the engine at $DOCKER_HOST,
# without any registry: a root filesystem with the static /bin/busybox of Debian's
# busybox-static and a symlink per applet, imported with `docker import`.
#
# Usage: DOCKER_HOST=unix:///path/to/sock test-image.sh [--force]
#   --force   rebuild even if the image already exists
# Environment: DIE_TEST_IMAGE (default die-test/busybox:base), DOCKER (client, default docker)
set -euo pipefail

# shellcheck source=tests/engines/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

IMAGE=${DIE_TEST_IMAGE:-die-test/busybox:base}
DOCKER=${DOCKER:-docker}
FORCE=0
case ${1:-} in
    "") ;;
    --force) FORCE=1 ;;
    *) die "unknown argument '$1' (usage: test-image.sh [--force])" ;;
esac

[[ -n ${DOCKER_HOST:-} ]] || die "DOCKER_HOST is not set (eval \"\$(engine.sh ENGINE env)\")"
command -v "$DOCKER" >/dev/null || die "docker client '$DOCKER' not found"
BUSYBOX=/bin/busybox
[[ -x $BUSYBOX ]] || die "$BUSYBOX not found (apt-get install busybox-static)"
# A dynamically linked busybox would not run in a root filesystem without a libc.
if ! "$BUSYBOX" --list >/dev/null 2>&1 || ldd "$BUSYBOX" >/dev/null 2>&1; then
    die "$BUSYBOX is not the static busybox of busybox-static"
fi

# Idempotent: an existing image is kept unless --force is given.
if ((FORCE == 0)) && "$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1; then
    echo "$IMAGE already present on $DOCKER_HOST"
    exit 0
fi

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The root filesystem: busybox, one symlink per applet, and the few directories and
# files that programs and engines expect to find. One LABEL per --change: Podman reads
# only the first key=value of a LABEL line.
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS"/{bin,etc,proc,sys,dev,tmp,root,var/tmp}
chmod 1777 "$ROOTFS/tmp" "$ROOTFS/var/tmp"
cp "$BUSYBOX" "$ROOTFS/bin/busybox"
for applet in $("$BUSYBOX" --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$ROOTFS/bin/$applet"
done
echo 'root:x:0:0:root:/root:/bin/sh' >"$ROOTFS/etc/passwd"
echo 'root:x:0:' >"$ROOTFS/etc/group"

# Fixed owners, order and times keep the layer's digest the same from run to run.
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
    -C "$ROOTFS" -cf "$WORK/rootfs.tar" . || die "could not create the root filesystem tar"

# Sleep "for ever", but end at once on SIGTERM: as PID 1 a bare sleep would ignore it,
# and every `docker stop` would wait for its timeout.
CMD='["/bin/sh", "-c", "trap \"exit 0\" TERM INT; sleep 2147483647 & wait"]'

note "importing $IMAGE into $DOCKER_HOST"
"$DOCKER" import \
    --change "CMD $CMD" \
    --change 'ENV PATH=/bin' \
    --change 'LABEL die.test=1' \
    --change 'LABEL die.test.image=base' \
    --message 'die-test busybox base image' \
    "$WORK/rootfs.tar" "$IMAGE" >/dev/null \
    || die "docker import of $IMAGE into $DOCKER_HOST failed"

"$DOCKER" image inspect "$IMAGE" >/dev/null 2>&1 \
    || die "$IMAGE is missing on $DOCKER_HOST right after the import"
echo "$IMAGE built on $DOCKER_HOST"
