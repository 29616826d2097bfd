#!/usr/bin/env bash
# Install the Debian packages that the tests and the demo need (tokens, openssl, venv).
# Fast no-op when everything is installed; runs `apt-get update` only when
# something is missing. Needs root (or sudo) when it has to install.
set -euo pipefail

# openCryptoki is built from tests/tokens/ (build-opencryptoki.sh); Debian's 3.8.1 is not used.
PKGS=(softhsm2 opensc libnss3 libnss3-tools p11-kit p11-kit-modules openssl)
# A fresh Debian/Ubuntu python3 has no venv/ensurepip until python3-venv is installed.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    PKGS+=(python3-venv)
fi

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    SUDO=(sudo)
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
