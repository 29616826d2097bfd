#!/usr/bin/env bash
# Make the Linux release archive from the binary that build/freeze.sh built.
#
#   usage: packaging/make-release.sh
#
# Needs dist/cssadmin and what build/freeze.sh left in build/work for it (bundle-contents.json,
# build-facts.json, the venv and wheels), README.md and SECURITY.md in the repository root.
# Makes dist/release/cssadmin-<version>-linux-x86_64.tar.gz holding one folder:
#   cssadmin          the binary
#   README.md, SECURITY.md
#   sbom.cdx.json     CycloneDX 1.5 SBOM (packaging/sbom.py)
#   SHA256SUMS        sha256 of every other file in the folder (`sha256sum -c SHA256SUMS`)
# and next to it <archive>.sha256, the value to publish (see packaging/VERIFY.md).
# The archive is reproducible: sorted names, owner 0, mtimes from the build date, gzip -n.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { echo "make-release.sh: $*" >&2; }
fail() { say "$*"; exit 1; }
# shellcheck source=../build/common.sh
. build/common.sh

binary=dist/cssadmin
work=build/work
[ -x "$binary" ] || fail "$binary is missing: run build/freeze.sh first"
for file in "$work/bundle-contents.json" "$work/build-facts.json"; do
    [ -f "$file" ] || fail "$file is missing: run build/freeze.sh first"
done
for doc in README.md SECURITY.md; do
    [ -f "$doc" ] || fail "$doc is missing from the repository root; the release must carry it"
done

version=$("$binary" --version | sed -n '1s/^cssadmin //p')
[ -n "$version" ] || fail "cannot read the version from $binary --version"
build_date=$(sed -n 's/.*"build_date": "\(.*\)".*/\1/p' "$work/build-facts.json")
epoch=$(date -u -d "$build_date" +%s)

name="cssadmin-$version-linux-x86_64"
release=dist/release
folder="$release/$name"
rm -rf "$folder" "$release/$name.tar.gz" "$release/$name.tar.gz.sha256"
mkdir -p "$folder"

install -m 0755 "$binary" "$folder/cssadmin"
install -m 0644 README.md SECURITY.md "$folder/"
python=$(command -v python3.11 || command -v python3)
"$python" packaging/sbom.py --binary "$folder/cssadmin" --work "$work" --lock requirements/build.lock \
    --version "$version" --platform linux-x86_64 --out "$folder/sbom.cdx.json" \
    --python-libdir "$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')"
chmod 0644 "$folder/sbom.cdx.json"

write_sha256sums "$folder"

tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner --format=gnu \
    -C "$release" -cf - "$name" | gzip -9 -n > "$release/$name.tar.gz"
(cd "$release" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")

echo "make-release.sh: $release/$name.tar.gz"
cat "$folder/SHA256SUMS"
echo "archive: $(cat "$release/$name.tar.gz.sha256")"
