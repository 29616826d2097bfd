#!/usr/bin/env bash
# The Windows leg of CI, on Debian 12 under Wine: build dist/cssadmin.exe (build/freeze-windows.sh),
# run the unit tests with the Windows interpreter, then every command-line test against cssadmin.exe.
#
#   usage: bash tests/run-windows.sh [pytest arguments, added to both runs]
#
# Token tests are deselected (-m "not token"): there is no Windows PKCS#11 module here; the software
# keystore covers the same export paths. Every other test must run or skip with a reason that names
# Windows (CSSADMIN_WINDOWS_SKIPS_NAMED=1, see tests/conftest.py): any other skip fails the run.
# Under Wine, a console program's std handles must be pipes (a regular file or /dev/null kills it at
# start), so pytest runs with pipes; one Wine session (Xvfb and the Wine desktop, opened first by a
# holder process) serves the whole run (build/windows/wine-env.sh). The tests that call `openssl`
# find tests/windows/openssl_standin.py on the Windows PATH, which forwards to /usr/bin/openssl.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
say() { echo "run-windows.sh: $*" >&2; }
started=$(date +%s)

bash build/freeze-windows.sh
# shellcheck source=../build/windows/wine-env.sh
. build/windows/wine-env.sh
export PIP_CACHE_DIR="$winwork/cache/pip" PIP_DISABLE_PIP_VERSION_CHECK=1
hostpy=$(host_python)
built=$(date +%s)

# --- the test tools (requirements/test.lock, Windows wheels), apart from the build's site-packages ---
testsite="$winwork/test-site"
lock_digest=$(cat requirements/test.lock build/windows/windows_lock.py | sha256sum | cut -d' ' -f1)
if [ "$(cat "$testsite/.cssadmin-test-lock" 2>/dev/null)" != "$lock_digest" ]; then
    say "installing requirements/test.lock (win_amd64 wheels) into $testsite"
    rm -rf "$testsite" "$winwork/test-wheels"
    "$hostpy" build/windows/windows_lock.py requirements/test.lock > "$winwork/test-windows.lock"
    target=(--only-binary=:all: --platform win_amd64 --python-version 3.11 --implementation cp
            --abi cp311 --abi abi3 --abi none)
    "$hostpy" -m pip download --quiet --no-deps --require-hashes "${target[@]}" \
        -r "$winwork/test-windows.lock" -d "$winwork/test-wheels" 2> >(grep -v 'is ignored' >&2)
    "$hostpy" -m pip install --quiet --no-deps --no-index --find-links "$winwork/test-wheels" --require-hashes \
        --no-compile "${target[@]}" --target "$testsite" -r "$winwork/test-windows.lock" 2> >(grep -v 'is ignored' >&2)
    rm -rf "$testsite/bin"
    echo "$lock_digest" > "$testsite/.cssadmin-test-lock"
fi

# --- `openssl` on the Windows PATH: pip's own console-script launcher (distlib t64.exe) running
# tests/windows/openssl_standin.py with the Windows interpreter, and its Unix half beside it ---
bin="$winwork/bin"
rm -rf "$bin"
mkdir -p "$bin"
install -m 0755 tests/windows/unix-openssl.sh "$bin/unix-openssl.exe"
"$hostpy" - "$bin/openssl.exe" "$(winpath "$winpy")" tests/windows/openssl_standin.py <<'PY'
import io, os, sys, zipfile
import pip._vendor.distlib as distlib
out, python, script = sys.argv[1:]
launcher = open(os.path.join(os.path.dirname(distlib.__file__), "t64.exe"), "rb").read()
stream = io.BytesIO()
with zipfile.ZipFile(stream, "w") as archive:
    archive.writestr(zipfile.ZipInfo("__main__.py", (1980, 1, 1, 0, 0, 0)), open(script, "rb").read())
open(out, "wb").write(launcher + b'#!"' + python.encode() + b'"\n' + stream.getvalue())
PY

# --- one Wine session for both runs ---------------------------------------------------------------------
wine_session_start
trap wine_session_stop EXIT
export WINEPATH="$(winpath "$bin")"
export PYTHONPATH="$(winpath "$root");$(winpath "$testsite")"
export CSSADMIN_WINDOWS_SKIPS_NAMED=1
unset CSSADMIN_TEST_TOKENS CSSADMIN_REQUIRE_TOKENS CSSADMIN_BINARY
pytest=("$winpy" -m pytest -p no:cacheprovider -o "addopts=--strict-markers -r s")

status=0
say "unit tests with the Windows interpreter ($(winrun "$winpy" -V | tr -d '\r'))"
winrun "${pytest[@]}" -m "not token and not binary" "$@" | tr -d '\r' || status=$?
unit=$(date +%s)
say "command-line tests against dist/cssadmin.exe"
CSSADMIN_BINARY="$(winpath "$root/dist/cssadmin.exe")" winrun "${pytest[@]}" -m "binary and not token" "$@" \
    | tr -d '\r' || { s=$?; [ "$status" -ne 0 ] || status=$s; }
done_at=$(date +%s)
say "times: build $((built - started)) s, unit tests $((unit - built)) s, binary tests $((done_at - unit)) s, total $((done_at - started)) s"
if [ "$status" -eq 5 ]; then
    say "pytest collected no tests; that is a failure here"
    exit 1
fi
exit "$status"
