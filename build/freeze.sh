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

# --- a fixed environment -------------------------------------------------------------------------
export PYTHONHASHSEED=0
export LC_ALL=C.UTF-8
export TZ=UTC
export PYTHONDONTWRITEBYTECODE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PYINSTALLER_CONFIG_DIR="$work/pyinstaller-config"   # PyInstaller's cache, inside build/work
umask 022
in_git=0
if git rev-parse --is-inside-work-tree > /dev/null 2>&1 \
        && [ "$(git rev-parse --show-toplevel)" = "$root" ]; then
    in_git=1
fi
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
    [ "$in_git" = 1 ] || { say "not a git work tree: set SOURCE_DATE_EPOCH and CSSADMIN_COMMIT"; exit 2; }
    SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)
fi
export SOURCE_DATE_EPOCH

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
# An in-tree build would leave setuptools' build/lib and build/bdist.* inside build/; a snapshot of
# the tracked and new (not ignored) files keeps the tree clean and leaves out stray files.
src="$work/src"
rm -rf "$src"
mkdir -p "$src"
list_sources() {
    if [ "$in_git" = 1 ]; then
        git ls-files -z --cached --others --exclude-standard -- pyproject.toml README.md 'cssadmin/*'
    else
        find pyproject.toml README.md cssadmin -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 2>/dev/null
    fi
}
list_sources | LC_ALL=C sort -z \
    | while IFS= read -r -d '' file; do [ -e "$file" ] && printf '%s\0' "$file"; done \
    | tar --null -T - -cf - | tar -xf - -C "$src"
if [ ! -f "$src/README.md" ]; then
    # pyproject.toml names README.md as the long description; it is not part of the binary.
    say "warning: README.md is missing; building with an empty one"
    : > "$src/README.md"
fi
"$vpy" -m pip install --quiet --no-deps --no-build-isolation --no-index --force-reinstall "$src"

# --- build facts for --version (build/work/build-facts.json, build/work/rthook_build_info.py) ---
commit=${CSSADMIN_COMMIT:-}
if [ -z "$commit" ]; then
    [ "$in_git" = 1 ] || { say "not a git work tree: set CSSADMIN_COMMIT"; exit 2; }
    commit=$(git rev-parse HEAD)
    if [ -n "$(git status --porcelain -- pyproject.toml cssadmin build/cssadmin.spec build/entry.py requirements/build.lock)" ]; then
        commit="$commit-dirty"
    fi
fi
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
