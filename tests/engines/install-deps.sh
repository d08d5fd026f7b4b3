#!/usr/bin/env bash
# Install what the engine tests need, from Debian's archive only; safe to re-run.
#
# Usage: install-deps.sh [--no-trixie]
#   --no-trixie   skip trixie's docker.io and containerd (needed by docker26 engines)
# Bookworm packages are installed with apt-get when missing (one apt-get update first);
# trixie's debs are downloaded once into the state directory and unpacked there,
# without touching the system's apt sources, lists or caches.
set -euo pipefail

# shellcheck source=tests/engines/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TRIXIE=1
case ${1:-} in
    "") ;;
    --no-trixie) TRIXIE=0 ;;
    *) die "unknown argument '$1' (usage: install-deps.sh [--no-trixie])" ;;
esac

# Package, and a file it installs that tells whether it is there.
PACKAGES=(
    "docker.io /usr/sbin/dockerd"
    "containerd /usr/bin/containerd"
    "runc /usr/sbin/runc"
    "busybox-static /bin/busybox"
    "prometheus /usr/bin/promtool"
    "e2fsprogs /usr/bin/chattr"
    "curl /usr/bin/curl"
    "python3 /usr/bin/python3"
    "podman /usr/bin/podman"
    "debian-archive-keyring /usr/share/keyrings/debian-archive-keyring.gpg"
)

((EUID == 0)) || die "run as root: apt-get and the engines need it"

# busybox (dynamic) and busybox-static share /bin/busybox; only the static one will do.
missing=()
for entry in "${PACKAGES[@]}"; do
    read -r pkg path <<<"$entry"
    if ! dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' \
        || [[ ! -e $path ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} > 0)); then
    note "installing: ${missing[*]}"
    apt-get update -q || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" \
        || die "apt-get install ${missing[*]} failed"
else
    note "Debian packages already installed"
fi

for entry in "${PACKAGES[@]}"; do
    read -r pkg path <<<"$entry"
    [[ -e $path ]] || die "$path still missing after installing $pkg"
done
ldd /bin/busybox >/dev/null 2>&1 && die "/bin/busybox is dynamic; install busybox-static"

if ((TRIXIE)); then
    fetch_trixie
    note "trixie's dockerd: $("$DIE_TRIXIE/root/usr/sbin/dockerd" --version)"
    note "trixie's containerd: $("$DIE_TRIXIE/root/usr/bin/containerd" --version)"
fi
echo "dependencies ready"
