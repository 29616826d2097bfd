#!/usr/bin/env bash
# Make (or refresh) the project's virtual environment in .venv and print its python.
#   usage: scripts/venv.sh [extra]     e.g. scripts/venv.sh test
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
fi
extra=${1:+[$1]}
"$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$root$extra" >&2
echo "$venv/bin/python"
