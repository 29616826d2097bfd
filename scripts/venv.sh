#!/usr/bin/env bash
# Make (or refresh) the project's virtual environment in .venv from the hash-pinned locks, install
# the project into it (editable), and print its python.
#   usage: scripts/venv.sh          runtime dependencies (requirements/runtime.lock)
#          scripts/venv.sh test     and the test tools (requirements/build.lock + test.lock)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
case "${1:-}" in
    "") locks=("$root/requirements/runtime.lock") ;;
    test) locks=("$root/requirements/build.lock" "$root/requirements/test.lock") ;;
    *) echo "usage: $0 [test]" >&2; exit 2 ;;
esac
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
fi
stamp="$venv/.locks-sha256"
digest=$(cat "${locks[@]}" "$root/pyproject.toml" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$digest" ]; then
    if "$venv/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        args=()
        for lock in "${locks[@]}"; do args+=(-r "$lock"); done
        "$venv/bin/python" -m pip install -q --require-hashes --no-deps "${args[@]}" >&2
        "$venv/bin/python" -m pip install -q --no-deps -e "$root" >&2
    else
        # The locks hold the wheels of CPython 3.11 (what the binary is built with); other
        # versions (3.12 on Ubuntu 24.04, say) get the newest releases the project allows.
        echo "venv.sh: $("$venv/bin/python" -V) is not 3.11: installing without the locks" >&2
        "$venv/bin/python" -m pip install -q -e "$root${1:+[$1]}" >&2
    fi
    echo "$digest" > "$stamp"
fi
echo "$venv/bin/python"
