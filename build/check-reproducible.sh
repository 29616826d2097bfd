#!/usr/bin/env bash
# Build dist/cssadmin twice from the same sources, each time from nothing (build/freeze.sh --clean:
# new venv from the lock, new PyInstaller work directory and cache), and compare the binaries.
#
#   usage: build/check-reproducible.sh
#
# Prints PASS and exits 0 when both builds are byte-identical; otherwise prints FAIL, both
# digests and where the binaries differ (the first differing byte ranges, and which members of
# the PyInstaller archive differ), keeps both copies in build/out/, and exits 1.
# The second build is left in dist/cssadmin.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="$root/build/out/reproducible"
rm -rf "$out"
mkdir -p "$out"

for n in 1 2; do
    echo "check-reproducible: build $n" >&2
    bash build/freeze.sh --clean > "$out/build-$n.log" 2>&1 || { cat "$out/build-$n.log" >&2; exit 2; }
    cp dist/cssadmin "$out/cssadmin.$n"
    # the members of the archive, to name what differs if anything does
    build/work/venv/bin/python - "$out/cssadmin.$n" > "$out/members.$n" <<'PY'
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

a=$(sha256sum "$out/cssadmin.1" | cut -d' ' -f1)
b=$(sha256sum "$out/cssadmin.2" | cut -d' ' -f1)
echo "build 1: $a  ($(stat -c %s "$out/cssadmin.1") bytes)"
echo "build 2: $b  ($(stat -c %s "$out/cssadmin.2") bytes)"
if [ "$a" = "$b" ]; then
    echo "PASS: the two builds are byte-identical (sha256 $a)"
    exit 0
fi
echo "FAIL: the two builds differ"
echo "archive members that differ:"
diff "$out/members.1" "$out/members.2" | sed -n 's/^[<>] /  /p' || true
echo "first differing byte ranges (offset, byte in build 1, byte in build 2):"
cmp -l "$out/cssadmin.1" "$out/cssadmin.2" | head -20 || true
echo "copies kept in $out"
exit 1
