#!/usr/bin/env bash
# Install what the deployment checks need, from Debian's archive and PyPI only; safe to re-run.
#
# Usage: tests/deploy/install-deps.sh
#   Debian (bookworm): prometheus (promtool, prometheus), systemd (systemd-analyze), curl,
#                      musl-tools (for the image's static binary) and the shell linter
#   PyPI, into <repo>/.state/venv: jsonschema, kubernetes-validate, PyYAML
#   Debian (trixie):   docker-compose v2, downloaded and unpacked under
#                      <repo>/.state/deploy/compose (bookworm only has the old Python one);
#                      the system's apt sources, lists and caches are left alone
# Environment: DIE_STATE_DIR (state root, default <repo>/.state).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${DIE_STATE_DIR:-$REPO/.state}
VENV=$STATE/venv
COMPOSE=$STATE/deploy/compose

# The engines' helpers: note, die and the trixie download.
# shellcheck source=../engines/lib.sh
source "$REPO/tests/engines/lib.sh"

# Package, and a file it installs that tells whether it is there.
PACKAGES=(
    "prometheus /usr/bin/promtool"
    "systemd /usr/bin/systemd-analyze"
    "shellcheck /usr/bin/shellcheck"
    "curl /usr/bin/curl"
    "musl-tools /usr/bin/musl-gcc"
    "debian-archive-keyring /usr/share/keyrings/debian-archive-keyring.gpg"
)
missing=()
for entry in "${PACKAGES[@]}"; do
    read -r pkg path <<<"$entry"
    [[ -e $path ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
    note "apt-get install ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# The Python tools live in the project's own venv, never in the system's site-packages.
if ! "$VENV/bin/python" -c 'import jsonschema, yaml, kubernetes_validate' 2>/dev/null; then
    note "creating $VENV with jsonschema, kubernetes-validate and PyYAML"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        jsonschema kubernetes-validate PyYAML
fi

# Compose v2 is one static Go binary in trixie's docker-compose package; it validates
# compose.yml (group_add, security_opt, ...) where `docker stack config` refuses them.
if [[ ! -x $COMPOSE/root/usr/libexec/docker/cli-plugins/docker-compose ]]; then
    note "downloading trixie's docker-compose into $COMPOSE"
    trixie_download "$COMPOSE/debs" docker-compose/trixie
    rm -rf "$COMPOSE/root"
    dpkg -x "$COMPOSE"/debs/docker-compose_*.deb "$COMPOSE/root"
fi
echo "deploy check tools ready: promtool, systemd-analyze, shellcheck, $VENV," \
    "$COMPOSE/root/usr/libexec/docker/cli-plugins/docker-compose"
