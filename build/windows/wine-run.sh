#!/usr/bin/env bash
# Run one Windows program under this build's Wine prefix, in a Wine session of its own (Xvfb and
# the desktop opened first) with pipes for its std handles:  bash build/windows/wine-run.sh PROGRAM ARGS...
# e.g. bash build/windows/wine-run.sh dist/cssadmin.exe --version
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=wine-env.sh
. "$root/build/windows/wine-env.sh"
[ -f "$winpy" ] || { echo "wine-run.sh: no Wine environment yet: run build/freeze-windows.sh" >&2; exit 2; }
wine_session_start
trap wine_session_stop EXIT
winrun "$@" | tr -d '\r'
