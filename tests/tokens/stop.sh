#!/usr/bin/env bash
# Stop the openCryptoki 3.27 daemon that tests/tokens/provision.sh started.
#
#   usage: tests/tokens/stop.sh DIR            the daemon recorded in DIR/opencryptoki327.pid
#          tests/tokens/stop.sh --prefix PREFIX the daemon named by PREFIX's own pidfile
#
# A pid is killed only if /proc/PID/exe is that prefix's sbin/pkcsslotd: a stale pidfile may name
# another process, the system pkcsslotd for one. Exit 0 when no such daemon runs (any more).
set -euo pipefail

if [ "${1:-}" = --prefix ] && [ $# -eq 2 ]; then
    slotd="$2/sbin/pkcsslotd"
    pidfile="$2/run/opencryptoki/pkcsslotd.pid"
    pid=$(cat "$pidfile" 2>/dev/null || true)
elif [ $# -eq 1 ]; then
    record="$1/opencryptoki327.pid"
    [ -f "$record" ] || exit 0
    { read -r pid; read -r slotd; } <"$record"
else
    echo "usage: $0 DIR | --prefix PREFIX" >&2
    exit 2
fi

case "$pid" in '' | *[!0-9]*) exit 0 ;; esac
[ "$(readlink "/proc/$pid/exe" 2>/dev/null || true)" = "$slotd" ] || exit 0
kill "$pid" 2>/dev/null || true
for _ in $(seq 100); do
    [ -d "/proc/$pid" ] || { rm -f "${record:-}"; exit 0; }
    sleep 0.1
done
echo "stop.sh: $slotd (pid $pid) did not stop" >&2
exit 1
