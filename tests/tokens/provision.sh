#!/usr/bin/env bash
# Create three fresh PKCS#11 test tokens and describe them in DIR/tokens.json.
#
#   usage: tests/tokens/provision.sh DIR
#
# DIR may be missing, empty or a previous run's directory: every run wipes and
# re-creates the tokens (idempotent). Packages: tests/tokens/install-deps.sh.
#
# DIR/tokens.json is a JSON list, one object per token that really works:
#   {"name": "softhsm2"|"opencryptoki"|"nss", "module": "/abs/lib.so",
#    "token_label": "...", "pin": "1234" ("" = do not call C_Login),
#    "so_pin": "...", "env": {"VAR": "value"}}
# A token that could not be set up is left out, with the reason on stderr.
# Exit status: 0 if at least one token works, 1 if none, 2 on bad usage.
#
# Side effects outside DIR (test machines only):
#  * openCryptoki keeps its software token (slot 3) in /var/lib/opencryptoki/swtok
#    and /dev/shm; this script stops pkcsslotd, wipes that token and restarts
#    pkcsslotd. Needs root (or membership of group pkcs11 and write access).
#  * NSS is reached through the p11-kit proxy, which reads only system config for
#    root: /etc/pkcs11/modules/cssadmin-test-nss.module is (re)written to point at
#    DIR/nss (the last provisioned DIR wins).
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 DIR" >&2
    exit 2
fi

mkdir -p "$1"
DIR=$(cd "$1" && pwd -P)
OUT="$DIR/tokens.json"
FRAG="$DIR/.fragments"
rm -rf "$FRAG"
mkdir -p "$FRAG"

# Shared test PINs.
USER_PIN=1234
SO_PIN=5678

SOFTHSM_MODULE=/usr/lib/softhsm/libsofthsm2.so
SOFTHSM_LABEL=cssadmin-test

OCK_MODULE=/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so
OCK_SLOT=3
OCK_LABEL=cssadmin-ock
OCK_DEFAULT_SO_PIN=87654321
OCK_DATA=/var/lib/opencryptoki/swtok
OCK_SHM=/dev/shm/var.lib.opencryptoki.swtok
OCK_PIDFILE=/run/pkcsslotd.pid
OCK_USER_PIN=$USER_PIN
OCK_SO_PIN=$SO_PIN

NSS_MODULE=/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so
NSS_LABEL="NSS Certificate DB"
NSS_MODFILE=/etc/pkcs11/modules/cssadmin-test-nss.module
# Absolute path: a bare "libsoftokn3.so" is resolved against p11-kit's module
# dir (/usr/lib/x86_64-linux-gnu/pkcs11/) and silently not loaded. No
# "enable-in: p11-kit-proxy" either: with it the proxy does not show the module.
NSS_SOFTOKN=/usr/lib/x86_64-linux-gnu/libsoftokn3.so

# verify MODULE LABEL PIN [VAR=VALUE ...]: the token is visible (and the PIN
# logs in) through the module, as a client will see it.
verify() {
    local module=$1 label=$2 pin=$3
    shift 3
    local login=()
    if [ -n "$pin" ]; then
        login=(--login --pin "$pin")
    fi
    if ! env "$@" pkcs11-tool --module "$module" --token-label "$label" "${login[@]}" \
            --list-objects >/dev/null; then
        echo "token '$label' not usable through $module" >&2
        return 1
    fi
}

# write_fragment NAME MODULE LABEL PIN SO_PIN [VAR=VALUE ...]
write_fragment() {
    local name=$1 module=$2 label=$3 pin=$4 so_pin=$5
    shift 5
    python3 - "$FRAG/$name.json" "$name" "$module" "$label" "$pin" "$so_pin" "$@" <<'EOF'
import json, sys
path, name, module, label, pin, so_pin, *envs = sys.argv[1:]
env = dict(e.split("=", 1) for e in envs)
with open(path, "w") as f:
    json.dump({"name": name, "module": module, "token_label": label,
               "pin": pin, "so_pin": so_pin, "env": env}, f)
EOF
}

need() {
    local f
    for f in "$@"; do
        if [ ! -e "$f" ] && ! command -v "$f" >/dev/null 2>&1; then
            echo "missing $f (run tests/tokens/install-deps.sh)" >&2
            return 1
        fi
    done
}

# --------------------------------------------------------------- SoftHSM2
setup_softhsm2() {
    need softhsm2-util pkcs11-tool "$SOFTHSM_MODULE"
    rm -rf "$DIR/softhsm" "$DIR/softhsm2.conf"
    mkdir -p "$DIR/softhsm"
    cat >"$DIR/softhsm2.conf" <<EOF
directories.tokendir = $DIR/softhsm
objectstore.backend = file
log.level = ERROR
slots.removable = false
slots.mechanisms = ALL
library.reset_on_fork = false
EOF
    SOFTHSM2_CONF="$DIR/softhsm2.conf" softhsm2-util --init-token --free \
        --label "$SOFTHSM_LABEL" --pin "$USER_PIN" --so-pin "$SO_PIN" >/dev/null
    verify "$SOFTHSM_MODULE" "$SOFTHSM_LABEL" "$USER_PIN" "SOFTHSM2_CONF=$DIR/softhsm2.conf"
    write_fragment softhsm2 "$SOFTHSM_MODULE" "$SOFTHSM_LABEL" "$USER_PIN" "$SO_PIN" \
        "SOFTHSM2_CONF=$DIR/softhsm2.conf"
}

# ----------------------------------------------------------- openCryptoki
ock_stop_slotd() {
    local pid="" i
    if [ -f "$OCK_PIDFILE" ]; then
        pid=$(cat "$OCK_PIDFILE" 2>/dev/null || true)
    fi
    if [ -z "$pid" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" != pkcsslotd ]; then
        pid=$(pgrep -x pkcsslotd 2>/dev/null | head -n1 || true)
    fi
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        [ -d "/proc/$pid" ] || return 0
        sleep 0.1
    done
    echo "pkcsslotd (pid $pid) did not stop" >&2
    return 1
}

setup_opencryptoki() {
    need pkcsconf pkcs11-tool /usr/sbin/pkcsslotd "$OCK_MODULE"
    if [ ! -d "$OCK_DATA" ]; then
        echo "no $OCK_DATA (openCryptoki software token not installed?)" >&2
        return 1
    fi
    # Reset the software token: stop the slot daemon, wipe state, restart.
    ock_stop_slotd
    rm -f "$OCK_DATA/NVTOK.DAT" "$OCK_DATA/MK_SO" "$OCK_DATA/MK_USER" "$OCK_DATA"/TOK_OBJ/*
    rm -f "$OCK_SHM"
    # Detach from our stdio, or a caller reading our output via a pipe would
    # wait for the daemon to close it.
    /usr/sbin/pkcsslotd </dev/null >/dev/null 2>&1
    local i
    for i in $(seq 50); do
        [ -S /run/pkcsslotd.socket ] && break
        sleep 0.1
    done
    # Work in DIR so nothing lands in the caller's cwd.
    cd "$DIR"
    # pkcsconf -I reads the label from stdin.
    echo "$OCK_LABEL" | pkcsconf -I -c "$OCK_SLOT" -S "$OCK_DEFAULT_SO_PIN" >/dev/null
    pkcsconf -P -c "$OCK_SLOT" -S "$OCK_DEFAULT_SO_PIN" -n "$OCK_SO_PIN" >/dev/null
    # -u sets the user PIN but leaves USER_PIN_TO_BE_CHANGED; set a temporary
    # PIN and let the user change it to clear the flag.
    pkcsconf -u -c "$OCK_SLOT" -S "$OCK_SO_PIN" -n 99999999 >/dev/null
    pkcsconf -p -c "$OCK_SLOT" -U 99999999 -n "$OCK_USER_PIN" >/dev/null
    local info
    info=$(pkcsconf -t -c "$OCK_SLOT")
    if ! grep -q "Label: $OCK_LABEL" <<<"$info" || ! grep -q USER_PIN_INITIALIZED <<<"$info"; then
        echo "openCryptoki token not initialised as expected:" >&2
        echo "$info" >&2
        return 1
    fi
    verify "$OCK_MODULE" "$OCK_LABEL" "$OCK_USER_PIN"
    write_fragment opencryptoki "$OCK_MODULE" "$OCK_LABEL" "$OCK_USER_PIN" "$OCK_SO_PIN"
}

# ------------------------------------------------------------------- NSS
setup_nss() {
    need certutil pkcs11-tool "$NSS_MODULE" "$NSS_SOFTOKN"
    rm -rf "$DIR/nss"
    mkdir -p "$DIR/nss"
    certutil -N -d "sql:$DIR/nss" --empty-password
    mkdir -p "$(dirname "$NSS_MODFILE")"
    cat >"$NSS_MODFILE.tmp" <<EOF
# Written by cssadmin tests/tokens/provision.sh - NSS softoken test token.
module: $NSS_SOFTOKN
x-init-reserved: configdir='sql:$DIR/nss' certPrefix='' keyPrefix='' secmod='secmod.db' flags=
EOF
    mv -f "$NSS_MODFILE.tmp" "$NSS_MODFILE"
    # Empty password: no C_Login at all (pin ""); the token has no
    # LOGIN_REQUIRED flag, and C_Login with an empty PIN fails.
    verify "$NSS_MODULE" "$NSS_LABEL" ""
    write_fragment nss "$NSS_MODULE" "$NSS_LABEL" "" ""
}

# ---------------------------------------------------------------- driver
# Each setup runs in a subshell with errexit active (not in an `if`, which
# would disable errexit inside it).
for name in softhsm2 opencryptoki nss; do
    set +e
    ( set -e; "setup_$name" )
    rc=$?
    set -e
    if [ $rc -ne 0 ]; then
        rm -f "$FRAG/$name.json"
        echo "provision: $name NOT set up (exit $rc, see messages above)" >&2
    fi
done

status=0
python3 - "$FRAG" "$OUT" <<'EOF' || status=$?
import json, os, sys
frag, out = sys.argv[1:]
tokens = []
for name in ("softhsm2", "opencryptoki", "nss"):
    p = os.path.join(frag, name + ".json")
    if os.path.exists(p):
        with open(p) as f:
            tokens.append(json.load(f))
tmp = out + ".tmp"
with open(tmp, "w") as f:
    json.dump(tokens, f, indent=2)
    f.write("\n")
os.replace(tmp, out)
print("provision: %s: %s" % (out, ", ".join(t["name"] for t in tokens) or "no tokens"),
      file=sys.stderr)
sys.exit(0 if tokens else 1)
EOF
rm -rf "$FRAG"
exit "$status"
