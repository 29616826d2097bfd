#!/usr/bin/env bash
# Build openCryptoki's soft token from the vendored source into an isolated prefix, once per tarball.
#
#   usage: tests/tokens/build-opencryptoki.sh        prints the prefix on stdout
#
# The prefix is /var/cache/cssadmin-tests/opencryptoki-<first 16 hex of the tarball's sha256>
# (CSSADMIN_OCK_CACHE overrides the parent). A finished build is marked by <prefix>/.built and reused;
# one line on stderr says which ("built in N s" or "cached"). Nothing outside the prefix is written
# except the build's Debian packages and the pkcsslotd system user (see tests/tokens/FACTS.md):
# `make install` goes to a DESTDIR staging tree, so /etc/ld.so.conf.d is not touched.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
TARBALL="$here/opencryptoki-3.27.0.tar.gz"
SHA256=a5248cf1b084289e7ea32df47381c85c7ac04f7fa032b663a5b2cf5307f14444
VERSION=3.27.0
SLOTD_USER=pkcsslotd
GROUP=pkcs11
BUILD_DEPS=(autoconf automake libtool bison flex build-essential pkg-config libssl-dev libcap-dev
            libldap2-dev)

actual=$(sha256sum "$TARBALL" | cut -d' ' -f1)
if [ "$actual" != "$SHA256" ]; then
    echo "build-opencryptoki: $TARBALL has sha256 $actual, expected $SHA256" >&2
    exit 1
fi

cache=${CSSADMIN_OCK_CACHE:-/var/cache/cssadmin-tests}
PREFIX="$cache/opencryptoki-${SHA256:0:16}"
if [ -f "$PREFIX/.built" ]; then
    echo "opencryptoki $VERSION: cached build in $PREFIX" >&2
    echo "$PREFIX"
    exit 0
fi

SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)

missing=()
for p in "${BUILD_DEPS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "build-opencryptoki: installing ${missing[*]}" >&2
    if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    fi
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# pkcsslotd refuses root and re-execs itself as this user, which needs the pkcs11 group.
getent group "$GROUP" >/dev/null || "${SUDO[@]}" groupadd --system "$GROUP"
getent passwd "$SLOTD_USER" >/dev/null ||
    "${SUDO[@]}" useradd --system --gid "$GROUP" --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin "$SLOTD_USER"

# The daemon user must be able to traverse every parent of the prefix.
"${SUDO[@]}" mkdir -p "$cache"
"${SUDO[@]}" chmod 755 "$cache"
d=$cache
while [ "$d" != / ]; do
    if [ "$(( $(stat -c '%a' "$d" | sed 's/^/0/') & 1 ))" -eq 0 ]; then
        echo "build-opencryptoki: $d is not traversable by others; pkcsslotd could not reach $PREFIX" >&2
        exit 1
    fi
    d=$(dirname "$d")
done

start=$(date +%s)
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
tar -xzf "$TARBALL" -C "$work"
src="$work/opencryptoki-$VERSION"
log="$work/build.log"
(
    cd "$src"
    ./bootstrap.sh
    ./configure --prefix="$PREFIX" --enable-swtok \
        --disable-icatok --disable-ccatok --disable-ep11tok --disable-tpmtok --disable-icsftok \
        --disable-p11kmip --disable-pkcsep11_migrate --disable-pkcsep11_session --disable-pkcscca \
        --disable-pkcshsm_mk_change --disable-pkcstok_migrate --without-systemd --without-libudev \
        --with-pkcsslotd-user="$SLOTD_USER" --with-pkcs-group="$GROUP"
    make -j"$(nproc)" RUN_PATH="$PREFIX/run"
    make install DESTDIR="$work/stage" RUN_PATH="$PREFIX/run"
) >"$log" 2>&1 || {
    echo "build-opencryptoki: build failed; last lines of the log:" >&2
    tail -n 40 "$log" >&2
    exit 1
}
rm -rf "$PREFIX"
cp -a "$work/stage$PREFIX" "$PREFIX"
chmod 755 "$PREFIX"
touch "$PREFIX/.built"
echo "opencryptoki $VERSION: built in $(( $(date +%s) - start )) s into $PREFIX" >&2
echo "$PREFIX"
