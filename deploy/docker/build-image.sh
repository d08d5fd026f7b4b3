#!/usr/bin/env bash
# Build a statically linked docker-image-exporter and package it with the Dockerfile beside
# this script.
#
# Usage: deploy/docker/build-image.sh [--binary-only] [IMAGE]
#   IMAGE          repository to tag (default docker-image-exporter); tagged :VERSION and :latest
#   --binary-only  stop after the binary, for a host without a container engine
# Environment:
#   DOCKER         client that builds the image (default docker; podman works too), talking
#                  to the engine at its usual DOCKER_HOST
#   TARGET         Rust target triple (default: x86_64-unknown-linux-musl when rustup has or
#                  can add it and a musl C compiler is installed, else
#                  x86_64-unknown-linux-gnu linked with a static glibc)
# Prints the binary's path and the image's tags.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DOCKER=${DOCKER:-docker}
BINARY_ONLY=0
IMAGE=docker-image-exporter
for arg in "$@"; do
    case $arg in
        --binary-only) BINARY_ONLY=1 ;;
        -*) echo "error: unknown option '$arg'" >&2; exit 2 ;;
        *) IMAGE=$arg ;;
    esac
done
cd "$REPO"

# musl links statically by default, but crates with C code (ring, under rustls) need a musl C
# compiler: Debian's musl-tools has one. A glibc build needs crt-static, and then its name
# lookups cannot load NSS modules: fine for a unix socket or an IP address in --docker.host,
# not for a host name.
MUSL_CC=$(command -v x86_64-linux-musl-gcc || command -v musl-gcc || true)
if [[ -z ${TARGET:-} ]]; then
    TARGET=x86_64-unknown-linux-gnu
    if [[ -z $MUSL_CC ]]; then
        echo "note: no musl C compiler (apt-get install musl-tools); building with a" \
            "static glibc instead" >&2
    elif rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl \
        || rustup target add x86_64-unknown-linux-musl >&2; then
        TARGET=x86_64-unknown-linux-musl
    else
        echo "note: musl target unavailable; building with a static glibc instead" >&2
    fi
fi
if [[ $TARGET == *-musl && -n $MUSL_CC ]]; then
    export CC_x86_64_unknown_linux_musl=${CC_x86_64_unknown_linux_musl:-$MUSL_CC}
fi
if [[ $TARGET == *-gnu ]]; then
    export RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static"
fi

echo "==> cargo build --release --locked --target $TARGET" >&2
cargo build --release --locked --target "$TARGET" >&2
BINARY=$REPO/target/$TARGET/release/docker-image-exporter

# A dynamic loader request (PT_INTERP) would make the binary fail to start in scratch.
if readelf -l "$BINARY" | grep -q 'INTERP'; then
    echo "error: $BINARY is dynamically linked; it cannot run in a scratch image" >&2
    exit 1
fi
echo "binary: $BINARY"
((BINARY_ONLY == 0)) || exit 0

# The build context holds the binary alone, so nothing else of the tree reaches the engine.
CONTEXT=$REPO/target/docker-image-context
rm -rf "$CONTEXT"
mkdir -p "$CONTEXT"
install -m 0555 "$BINARY" "$CONTEXT/docker-image-exporter"

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
REVISION=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)

# The Dockerfile needs nothing of BuildKit; without the buildx plugin, Docker's client
# refuses to build unless told to use the classic builder.
if [[ $(basename "$DOCKER") == docker ]] && ! "$DOCKER" buildx version >/dev/null 2>&1; then
    export DOCKER_BUILDKIT=0
fi
echo "==> $DOCKER build $IMAGE:$VERSION" >&2
"$DOCKER" build \
    --file "$REPO/deploy/docker/Dockerfile" \
    --build-arg "VERSION=$VERSION" \
    --build-arg "REVISION=$REVISION" \
    --tag "$IMAGE:$VERSION" \
    --tag "$IMAGE:latest" \
    "$CONTEXT" >&2
echo "image: $IMAGE:$VERSION $IMAGE:latest"
