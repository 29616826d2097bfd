#!/usr/bin/env bash
# build/check-reproducible.sh for cssadmin.exe: copy the sources once to
# build/out/reproducible-windows/tree, build there twice, each time from nothing but the download
# cache (build/freeze-windows.sh --clean: new Wine prefix, interpreter unpacked and checked again,
# wheels installed again, new PyInstaller work files), with the commit and SOURCE_DATE_EPOCH of
# HEAD, and compare the two cssadmin.exe.
#
#   usage: build/check-reproducible-windows.sh
#
# Prints PASS and exits 0 when both are byte-identical; otherwise FAIL, both digests and the
# archive members that differ, keeps both in build/out/reproducible-windows/, exits 1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=common.sh
. build/common.sh
out="$root/build/out/reproducible-windows"
rm -rf "$out/tree" "$out"/cssadmin.exe.* "$out"/members.* "$out"/build-*.log
mkdir -p "$out/tree"
copy_work_tree "$out/tree"
# one work directory for both builds (--clean empties it but for the download cache), outside the tree
export CSSADMIN_WINDOWS_WORK="$out/work"
# its Wine prefix (about 700 MB, outside the tree) is made anew by each --clean build: remove it after
# shellcheck source=windows/wine-env.sh
. build/windows/wine-env.sh
trap 'wineserver -k 2>/dev/null || true; rm -rf "$WINEPREFIX"' EXIT

for n in 1 2; do
    echo "check-reproducible-windows: build $n of $CSSADMIN_COMMIT" >&2
    (cd "$out/tree" && bash build/freeze-windows.sh --clean) > "$out/build-$n.log" 2>&1 \
        || { cat "$out/build-$n.log" >&2; exit 2; }
    cp "$out/tree/dist/cssadmin.exe" "$out/cssadmin.exe.$n"
    sed -n 's/.*"name": "\(.*\)",.*/\1/p;s/.*"sha256": "\(.*\)".*/\1/p' "$out/work/bundle-contents.json" \
        | paste - - > "$out/members.$n"
done

compare_builds "Windows builds" "$out/cssadmin.exe.1" "$out/cssadmin.exe.2" "$out/members.1" "$out/members.2" "$out"
