#!/usr/bin/env bash
# Make the Windows release archive from the cssadmin.exe that build/freeze-windows.sh built.
#
#   usage: packaging/make-release-windows.sh
#
# Needs dist/cssadmin.exe and what build/freeze-windows.sh left in build/work/windows for it
# (bundle-contents.json, build-facts.json, the interpreter's site-packages and the wheels), README.md
# and SECURITY.md in the repository root. Makes dist/release/cssadmin-<version>-windows-x86_64.zip
# holding one folder:
#   cssadmin.exe      the binary
#   README.md, SECURITY.md
#   sbom.cdx.json     CycloneDX 1.5 SBOM (packaging/sbom.py)
#   SHA256SUMS        sha256 of every other file in the folder (`sha256sum -c SHA256SUMS`; LF line ends)
# and next to it <archive>.sha256, the value to publish (see packaging/VERIFY.md).
# The zip is reproducible: sorted names, every time stamp the build date, fixed permissions.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { echo "make-release-windows.sh: $*" >&2; }
fail() { say "$*"; exit 1; }
# shellcheck source=../build/common.sh
. build/common.sh

# shellcheck source=../build/windows/wine-env.sh
. build/windows/wine-env.sh
binary=dist/cssadmin.exe
[ -f "$binary" ] || fail "$binary is missing: run build/freeze-windows.sh first"
for file in "$winwork/bundle-contents.json" "$winwork/build-facts.json"; do
    [ -f "$file" ] || fail "$file is missing: run build/freeze-windows.sh first"
done
for doc in README.md SECURITY.md; do
    [ -f "$doc" ] || fail "$doc is missing from the repository root; the release must carry it"
done
hostpy=$(host_python)

version=$("$hostpy" -c 'import sys; sys.path.insert(0, "."); import cssadmin; print(cssadmin.__version__)')
build_date=$(sed -n 's/.*"build_date": "\(.*\)".*/\1/p' "$winwork/build-facts.json")
# the binary must be of this version: its --version under Wine (one session, pipes for std handles)
wine_session_start
trap wine_session_stop EXIT
shown=$(winrun "$binary" --version | tr -d '\r' | sed -n '1s/^cssadmin //p')
[ "$shown" = "$version" ] || fail "$binary says version '$shown', the sources say $version: rebuild"

name="cssadmin-$version-windows-x86_64"
release=dist/release
folder="$release/$name"
rm -rf "$folder" "$release/$name.zip" "$release/$name.zip.sha256"
mkdir -p "$folder"

install -m 0755 "$binary" "$folder/cssadmin.exe"
install -m 0644 README.md SECURITY.md "$folder/"
"$hostpy" packaging/sbom.py --binary "$folder/cssadmin.exe" --work "$winwork" --lock requirements/build.lock \
    --version "$version" --platform windows-x86_64 --out "$folder/sbom.cdx.json" \
    --python-libdir "$winwork/venv"
chmod 0644 "$folder/sbom.cdx.json"

write_sha256sums "$folder"

"$hostpy" - "$release" "$name" "$build_date" <<'PY'
import datetime, os, sys, zipfile
release, name, build_date = sys.argv[1:]
when = datetime.datetime.strptime(build_date, "%Y-%m-%dT%H:%M:%SZ").timetuple()[:6]
folder = os.path.join(release, name)
with zipfile.ZipFile(os.path.join(release, name + ".zip"), "w") as archive:
    directory = zipfile.ZipInfo(name + "/", when)
    directory.external_attr = (0o40755 << 16) | 0x10
    archive.writestr(directory, b"")
    for member in sorted(os.listdir(folder)):
        info = zipfile.ZipInfo(f"{name}/{member}", when)
        info.external_attr = (0o100755 if member.endswith(".exe") else 0o100644) << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        info.create_system = 3
        with open(os.path.join(folder, member), "rb") as stream:
            archive.writestr(info, stream.read(), compresslevel=9)
PY
(cd "$release" && sha256sum "$name.zip" > "$name.zip.sha256")

echo "make-release-windows.sh: $release/$name.zip"
cat "$folder/SHA256SUMS"
echo "archive: $(cat "$release/$name.zip.sha256")"
