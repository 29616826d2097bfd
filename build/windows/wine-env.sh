# Sourced by build/freeze-windows.sh and tests/run-windows.sh: the Windows build and test
# environment under Wine, all of it inside build/work/windows (git-ignored) unless
# CSSADMIN_WINDOWS_WORK says otherwise.
#
#   $winwork         build/work/windows
#   WINEPREFIX       the Wine prefix, with the bcryptprimitives.dll forwarder in system32; NOT in the
#                    source tree: its dosdevices/z: links to /, and tools that walk the tree
#                    following links (setuptools' package finder in `pip install -e .`) would walk
#                    the whole file system. Default /var/cache/cssadmin-windows/prefix-<hash of $winwork>
#                    (one per work directory, so two clones never share a wineserver); CSSADMIN_WINE_PREFIX
#   $winwork/venv    the Windows CPython 3.11.9 (embeddable), its Lib/site-packages = build.lock
#   $winwork/cache   downloads, kept by hash: the interpreter sdist, the Windows wheels
#
# Functions: wine_packages (installs the Debian packages), winpath PATH (Unix -> Windows path),
# winrun PROGRAM ARGS... (a Windows program with its std handles made pipes: Wine kills a console
# program whose std handle is a regular file or /dev/null).
root=${root:?}
winwork=${CSSADMIN_WINDOWS_WORK:-$root/build/work/windows}
export WINEPREFIX=${CSSADMIN_WINE_PREFIX:-/var/cache/cssadmin-windows/prefix-$(printf %s "$winwork" | sha256sum | cut -c1-16)}
export WINEARCH=win64
export WINEDEBUG=${WINEDEBUG:--all}
# No Mono or Gecko installer dialogs when the prefix is made; nothing here needs them.
export WINEDLLOVERRIDES="mscoree,mshtml="
winpy="$winwork/venv/python.exe"

WINE_PACKAGES=(wine wine64 xvfb xauth binutils-mingw-w64-x86-64 osslsigncode unzip zip)

wine_packages() {
    local missing=() package
    for package in "${WINE_PACKAGES[@]}"; do
        dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    echo "wine-env: installing ${missing[*]}" >&2
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# Unix path -> the Windows path Wine shows for it (Z: is the Unix root in every prefix).
winpath() {
    local path
    path=$(realpath -m "$1")
    printf 'Z:%s' "${path//\//\\}"
}

# Run a Windows program with pipes for its standard handles (stdin at end of file); its exit status.
winrun() {
    ( set -o pipefail; : | wine "$@" 2> >(cat >&2) | cat )
}

# One Wine session for a whole build or test run. Wine starts its desktop process (explorer.exe
# /desktop) lazily from the first program that loads user32 (cssadmin.exe's bootloader does),
# and the desktop keeps that program's std handles: when that program's output was captured
# through pipes, the capture never ended. So the desktop is opened first, under Xvfb, by a
# long-lived holder process of our own whose std handles nobody waits for; wine_session_stop
# ends it (and Xvfb, and this prefix's wineserver).
wine_session_start() {
    mkdir -p "$winwork"
    rm -f "$winwork/display" "$winwork/holder.fifo"
    Xvfb -displayfd 9 -nolisten tcp -screen 0 800x600x16 9> "$winwork/display" > "$winwork/xvfb.log" 2>&1 &
    WINE_XVFB_PID=$!
    local tries=0
    until [ -s "$winwork/display" ]; do
        tries=$((tries + 1))
        [ "$tries" -lt 100 ] || { echo "wine-env: Xvfb did not start (see $winwork/xvfb.log)" >&2; return 1; }
        sleep 0.1
    done
    export DISPLAY=":$(head -1 "$winwork/display")"
    mkfifo "$winwork/holder.fifo"
    wine "$winpy" -c "import ctypes, sys; ctypes.windll.user32.GetDesktopWindow(); print('desktop', flush=True); sys.stdin.read()" \
        < "$winwork/holder.fifo" 2>&1 | cat > "$winwork/holder.log" &
    WINE_HOLDER_PID=$!
    exec 9> "$winwork/holder.fifo"
    tries=0
    until grep -q desktop "$winwork/holder.log" 2>/dev/null; do
        tries=$((tries + 1))
        [ "$tries" -lt 600 ] || { echo "wine-env: the Wine desktop did not open (see $winwork/holder.log)" >&2; return 1; }
        sleep 0.1
    done
}

wine_session_stop() {
    if [ -n "${WINE_HOLDER_PID:-}" ]; then
        exec 9>&-
    fi
    wineserver -k 2>/dev/null || true
    if [ -n "${WINE_HOLDER_PID:-}" ]; then
        wait "$WINE_HOLDER_PID" 2>/dev/null || true
        WINE_HOLDER_PID=
    fi
    if [ -n "${WINE_XVFB_PID:-}" ]; then
        kill "$WINE_XVFB_PID" 2>/dev/null || true
        wait "$WINE_XVFB_PID" 2>/dev/null || true
        WINE_XVFB_PID=
    fi
    rm -f "$winwork/holder.fifo"
}

# The host's tools for the Windows build (pip, packaging, setuptools): a venv of its own in
# $winwork/host-venv with exactly requirements/build.lock (Linux wheels); prints its python.
host_python() {
    local venv="$winwork/host-venv" digest
    digest=$(sha256sum < "$root/requirements/build.lock" | cut -d' ' -f1)
    if [ "$(cat "$venv/.cssadmin-build-lock" 2>/dev/null)" != "$digest" ]; then
        rm -rf "$venv"
        "$(command -v python3.11 || command -v python3)" -m venv "$venv" >&2
        "$venv/bin/python" -m pip install --quiet --require-hashes --no-deps -r "$root/requirements/build.lock" \
            2> >(grep -v 'is ignored' >&2) >&2
        echo "$digest" > "$venv/.cssadmin-build-lock"
    fi
    echo "$venv/bin/python"
}
