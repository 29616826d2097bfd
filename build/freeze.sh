#!/usr/bin/env bash
# Freeze cssadmin into one executable, dist/cssadmin, from hash-pinned inputs.
#
#   usage: build/freeze.sh [--clean] [--onedir]
#     --clean   start from nothing: remove build/work (venv, PyInstaller work files) and dist/cssadmin
#     --onedir  build the same bundle as a folder, dist/cssadmin-onedir/cssadmin, instead of the
#               one-file dist/cssadmin (for start-up comparisons in bench/run.sh; not released)
#
# Environment:
#   PYTHON            interpreter to build with (default: python3.11, else python3); must be 3.11
#   SOURCE_DATE_EPOCH build date (default: committer time of HEAD, `git log -1 --format=%ct`)
#   CSSADMIN_COMMIT   commit shown by --version (default: `git rev-parse HEAD`, "-dirty" if the
#                     sources differ from it); outside a git work tree both must be set
#
# Steps: a venv in build/work/venv gets exactly requirements/build.lock (pip --require-hashes
# --no-deps), then the project from a snapshot of its sources (no build isolation, no index);
# build facts go to build/work/rthook_build_info.py, a PyInstaller runtime hook that fills
# cssadmin._build_info.BUILD; PyInstaller builds build/cssadmin.spec with PYTHONHASHSEED=0.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
work="$root/build/work"
venv="$work/venv"

clean=0
layout=onefile
for arg in "$@"; do
    case "$arg" in
        --clean) clean=1 ;;
        --onedir) layout=onedir ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "freeze.sh: unknown argument $arg" >&2; exit 2 ;;
    esac
done

say() { echo "freeze.sh: $*" >&2; }

# shellcheck source=common.sh
. build/common.sh
build_environment
export PYINSTALLER_CONFIG_DIR="$work/pyinstaller-config"   # PyInstaller's cache, inside build/work

if [ "$clean" = 1 ]; then
    say "clean: removing build/work, dist/cssadmin and dist/cssadmin-onedir"
    rm -rf "$work" dist/cssadmin dist/cssadmin-onedir
fi
mkdir -p "$work" dist

python=${PYTHON:-}
if [ -z "$python" ]; then
    python=$(command -v python3.11 || command -v python3)
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    say "$python is $("$python" -V 2>&1); the locks are for CPython 3.11 (set PYTHON=...)"
    exit 2
fi

# --- the build venv, exactly the lock ------------------------------------------------------------
lock_digest=$(cat requirements/build.lock | sha256sum | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$venv/.build-lock-sha256" 2>/dev/null)" != "$lock_digest" ]; then
    say "creating $venv from requirements/build.lock"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    # The wheels are kept in build/work/wheels: packaging/sbom.py hashes exactly these files.
    rm -rf "$work/wheels"
    "$venv/bin/python" -m pip download --quiet --require-hashes --no-deps --only-binary=:all: \
        -r requirements/build.lock -d "$work/wheels"
    "$venv/bin/python" -m pip install --quiet --no-index --find-links "$work/wheels" \
        --require-hashes --no-deps -r requirements/build.lock
    echo "$lock_digest" > "$venv/.build-lock-sha256"
fi
vpy="$venv/bin/python"

# --- the project, from a snapshot of its sources ------------------------------------------------
src="$work/src"
snapshot_sources "$src"
"$vpy" -m pip install --quiet --no-deps --no-build-isolation --no-index --force-reinstall "$src"

# --- build facts for --version (build/work/build-facts.json, build/work/rthook_build_info.py) ---
commit=$(build_commit pyproject.toml cssadmin build/cssadmin.spec build/entry.py requirements/build.lock build/common.sh)
CSSADMIN_COMMIT="$commit" "$vpy" build/build_facts.py "$work"
say "build facts: $(tail -1 "$work/rthook_build_info.py")"

# --- freeze -------------------------------------------------------------------------------------
if [ "$layout" = onedir ]; then
    # a work directory of its own, so that the one-file build's cache stays as it was
    rm -rf dist/cssadmin-onedir
    CSSADMIN_LAYOUT=onedir "$vpy" -m PyInstaller --noconfirm --clean --log-level WARN \
        --distpath "$root/dist" --workpath "$work/pyinstaller-onedir" build/cssadmin.spec
    dist/cssadmin-onedir/cssadmin --version
    dist/cssadmin-onedir/cssadmin --help > /dev/null
    say "built dist/cssadmin-onedir/ ($(du -sb dist/cssadmin-onedir | cut -f1) bytes in $(find dist/cssadmin-onedir -type f | wc -l) files)"
    exit 0
fi
rm -f dist/cssadmin
CSSADMIN_LAYOUT=onefile "$vpy" -m PyInstaller --noconfirm --clean --log-level WARN \
    --distpath "$root/dist" --workpath "$work/pyinstaller" build/cssadmin.spec

# --- what went into the binary (for packaging/sbom.py) -----------------------------------------
"$vpy" build/bundle_manifest.py dist/cssadmin > "$work/bundle-contents.json"

# --- smoke test ---------------------------------------------------------------------------------
dist/cssadmin --version
dist/cssadmin --help > /dev/null
say "built dist/cssadmin ($(stat -c %s dist/cssadmin) bytes, sha256 $(sha256sum dist/cssadmin | cut -d' ' -f1))"
