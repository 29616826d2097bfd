#!/usr/bin/env bash
# Build the binary twice from the same sources, each time from nothing (build/freeze.sh --clean:
# new venv from the lock, new PyInstaller work directory and cache), and compare the two.
#
#   usage: build/check-reproducible.sh
#
# The sources (what `git ls-files` lists plus new, not ignored files: the work tree as it is, which
# on a fresh clone is the commit) are copied once to build/out/reproducible/tree, and both builds
# run there, in the same directory, with the commit and SOURCE_DATE_EPOCH of HEAD; so files
# edited while the check runs do not leak into one build only.
#
# Prints PASS and exits 0 when both builds are byte-identical; otherwise prints FAIL, both
# digests and what differs (the members of the PyInstaller archive and of its PYZ, and the first
# differing bytes), keeps both binaries in build/out/reproducible/, and exits 1. dist/ is untouched.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
# shellcheck source=common.sh
. build/common.sh
out="$root/build/out/reproducible"
rm -rf "$out"
mkdir -p "$out/tree"
copy_work_tree "$out/tree"

for n in 1 2; do
    echo "check-reproducible: build $n of $CSSADMIN_COMMIT" >&2
    (cd "$out/tree" && bash build/freeze.sh --clean) > "$out/build-$n.log" 2>&1 \
        || { cat "$out/build-$n.log" >&2; exit 2; }
    cp "$out/tree/dist/cssadmin" "$out/cssadmin.$n"
    # the members of the archive, to name what differs if anything does
    "$out/tree/build/work/venv/bin/python" - "$out/cssadmin.$n" > "$out/members.$n" <<'PY'
import hashlib, sys, tempfile
from PyInstaller.archive.readers import CArchiveReader, ZlibArchiveReader
archive = CArchiveReader(sys.argv[1])
for name in sorted(archive.toc):
    data = archive.extract(name)
    print(f"{hashlib.sha256(data).hexdigest()}  {name}")
    if name.endswith(".pyz"):
        with tempfile.NamedTemporaryFile(suffix=".pyz") as pyz:
            pyz.write(data)
            pyz.flush()
            modules = ZlibArchiveReader(pyz.name)
            for module in sorted(modules.toc):
                print(f"{hashlib.sha256(modules.extract(module, raw=True)).hexdigest()}  {name}/{module}")
PY
done

compare_builds builds "$out/cssadmin.1" "$out/cssadmin.2" "$out/members.1" "$out/members.2" "$out"
