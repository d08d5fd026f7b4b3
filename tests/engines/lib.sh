# shellcheck shell=bash
# Functions shared by the private test engine scripts; sourced by the scripts beside it.
#
# Layout, all under one state root (default: <repo>/.state, or $DIE_STATE_DIR):
#   engines/<name>/   one private engine: socket, data and exec roots, pid and log files
#   trixie/           Debian trixie's docker.io and containerd, downloaded and unpacked
# Nothing here reads or writes /var/run/docker.sock or /var/lib/docker.

DIE_ENGINES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIE_REPO=$(cd "$DIE_ENGINES_DIR/../.." && pwd)
DIE_STATE=${DIE_STATE_DIR:-$DIE_REPO/.state}
# Where trixie's packages are unpacked; shared by state roots that name it.
DIE_TRIXIE=${DIE_TRIXIE_DIR:-$DIE_STATE/trixie}
# shellcheck disable=SC2034 # used by the scripts that source this file
DIE_ENGINE_NAMES="docker20 docker26 docker26-containerd podman"

die() {
    echo "error: $*" >&2
    exit 1
}

note() {
    echo "==> $*" >&2
}

# Options that point apt at a trixie-only source list and at lists and caches of
# our own, so that the system's apt state is neither read for sources nor changed.
trixie_apt_opts() {
    local apt=$DIE_TRIXIE/apt
    printf '%s\n' \
        -o "Dir::Etc::sourcelist=$apt/trixie.sources" \
        -o "Dir::Etc::sourceparts=-" \
        -o "Dir::Etc::preferencesparts=$apt/preferences.d" \
        -o "Dir::State::Lists=$apt/lists" \
        -o "Dir::Cache=$apt/cache" \
        -o "APT::Sandbox::User=root"
}

# Downloads trixie's debs of the packages named (PKG/trixie ...) into DIR, through the
# trixie-only source list and lists of $DIE_TRIXIE/apt.
trixie_download() {
    local dir=$1 apt=$DIE_TRIXIE/apt
    shift
    command -v apt-get >/dev/null || die "apt-get not found; cannot fetch from trixie"
    mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/preferences.d" "$dir"
    cat >"$apt/trixie.sources" <<'EOF'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    local -a opts
    mapfile -t opts < <(trixie_apt_opts)
    apt-get "${opts[@]}" -q update >"$apt/update.log" 2>&1 \
        || { tail -n 20 "$apt/update.log" >&2; die "apt-get update for trixie failed"; }
    (cd "$dir" && apt-get "${opts[@]}" -q download "$@") >"$apt/download.log" 2>&1 \
        || { tail -n 20 "$apt/download.log" >&2; die "apt-get download from trixie failed"; }
}

# Download (once) trixie's docker.io and containerd debs and unpack them under
# $DIE_TRIXIE/root. trixie's runc is not fetched: it needs a newer glibc than
# bookworm's, and bookworm's /usr/sbin/runc serves both engines.
fetch_trixie() {
    local debs=$DIE_TRIXIE/debs root=$DIE_TRIXIE/root
    if [[ -x $root/usr/sbin/dockerd && -x $root/usr/bin/containerd ]]; then
        return 0
    fi
    # The debs are cached: only download when one of the two is missing.
    if ! compgen -G "$debs/docker.io_*.deb" >/dev/null \
        || ! compgen -G "$debs/containerd_*.deb" >/dev/null; then
        note "downloading trixie's docker.io and containerd into $debs"
        trixie_download "$debs" docker.io/trixie containerd/trixie
    fi

    # Unpack into a fresh directory, then move it into place in one step.
    note "unpacking trixie's debs into $root"
    rm -rf "$root.tmp"
    mkdir -p "$root.tmp"
    local deb
    for deb in "$debs"/docker.io_*.deb "$debs"/containerd_*.deb; do
        dpkg -x "$deb" "$root.tmp" || die "dpkg -x $deb failed"
    done
    rm -f "$root.tmp/usr/sbin/runc" "$root.tmp/usr/bin/runc"
    rm -rf "$root"
    mv "$root.tmp" "$root"
    [[ -x $root/usr/sbin/dockerd ]] || die "trixie's docker.io has no usr/sbin/dockerd"
    [[ -x $root/usr/bin/containerd ]] || die "trixie's containerd has no usr/bin/containerd"
}
