#!/usr/bin/env bash
# Create fresh PKCS#11 test tokens and describe them in DIR/tokens.json.
#
#   usage: tests/tokens/provision.sh DIR [NAME...]    NAME: softhsm2 opencryptoki327 nss (default all)
#
# DIR may be missing, empty or a previous run's directory: every run wipes and
# re-creates the tokens (idempotent). Packages: tests/tokens/install-deps.sh.
#
# DIR/tokens.json is a JSON list, one object per token that really works:
#   {"name": "softhsm2"|"opencryptoki327"|"nss", "module": "/abs/lib.so",
#    "token_label": "...", "pin": "1234" ("" = do not call C_Login),
#    "so_pin": "...", "env": {"VAR": "value"}, "build": "..." (opencryptoki327 only)}
# A token that could not be set up is left out, with the reason on stderr.
# Exit status: 0 if at least one token works, 1 if none, 2 on bad usage.
# opencryptoki327 leaves its own pkcsslotd running: stop it with tests/tokens/stop.sh DIR.
#
# Side effects outside DIR (no token or daemon that the machine had before is touched):
#  * openCryptoki 3.27 is built once into /var/cache/cssadmin-tests/opencryptoki-<sha256>/
#    (build-opencryptoki.sh: Debian build packages, a `pkcsslotd` system user); its token
#    directory and config inside that prefix are re-created by every run.
#  * NSS is reached through the p11-kit proxy, which reads only system config for
#    root: /etc/pkcs11/modules/cssadmin-test-nss.module is (re)written to point at
#    DIR/nss (the last provisioned DIR wins).
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 DIR [NAME...]" >&2
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

HERE=$(cd "$(dirname "$0")" && pwd)
OCK_LABEL=cssadmin-ock327
OCK_DEFAULT_SO_PIN=87654321
OCK_GROUP=pkcs11
CSSADMIN_OCK_CACHE=${CSSADMIN_OCK_CACHE:-/var/cache/cssadmin-tests}

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

# ------------------------------------------------ openCryptoki 3.27 (own build)
# The machine's own openCryptoki (Debian's 3.8.1: /etc/opencryptoki, /var/lib/opencryptoki,
# /run/pkcsslotd.*) is never touched. This token lives in the isolated prefix that
# build-opencryptoki.sh made, with its own pkcsslotd, run directory, configuration and token
# directory. One such daemon per machine: callers hold /tmp/cssadmin-suite.lock (README).
# tests/tokens/stop.sh DIR stops it by pid.
setup_opencryptoki327() {
    need pkcs11-tool setsid
    local prefix
    prefix=$(bash "$HERE/build-opencryptoki.sh" 2>"$DIR/opencryptoki327-build.txt") || {
        cat "$DIR/opencryptoki327-build.txt" >&2
        return 1
    }
    cat "$DIR/opencryptoki327-build.txt" >&2
    local slotd="$prefix/sbin/pkcsslotd" conf="$prefix/etc/opencryptoki/opencryptoki.conf"
    local tokdir="$prefix/var/lib/opencryptoki/swtok" pidfile="$prefix/run/opencryptoki/pkcsslotd.pid"
    local module="$prefix/lib/opencryptoki/libopencryptoki.so" pid="" i
    # A daemon of this prefix left by an earlier run: stop it (only if the pid really is ours).
    bash "$HERE/stop.sh" --prefix "$prefix"
    case "$tokdir" in
        /var/cache/*/var/lib/opencryptoki/swtok | "$CSSADMIN_OCK_CACHE"/*/var/lib/opencryptoki/swtok) ;;
        *) echo "refusing to wipe unexpected token directory $tokdir" >&2; return 1 ;;
    esac
    rm -rf "$tokdir"
    mkdir -p "$tokdir/TOK_OBJ"
    chgrp -R "$OCK_GROUP" "$tokdir"
    chmod 770 "$tokdir" "$tokdir/TOK_OBJ"
    rm -f "/dev/shm/$(tr / . <<<"${prefix#/}").var.lib.opencryptoki.swtok"
    {
        echo "version opencryptoki-3.27"
        echo "# Written by cssadmin tests/tokens/provision.sh. The stdll path is absolute, or dlopen"
        echo "# finds Debian's libpkcs11_sw.so through the ld.so cache (and the system token)."
        echo "slot 0 {"
        echo "  stdll = $prefix/lib/opencryptoki/stdll/libpkcs11_sw.so"
        echo "  tokversion = 3.12"
        echo "}"
    } >"$conf.tmp"
    chgrp "$OCK_GROUP" "$conf.tmp"
    chmod 640 "$conf.tmp"
    mv -f "$conf.tmp" "$conf"
    rm -f "$pidfile"
    # It daemonises: start it in its own session with no inherited stdio, so that a caller reading our
    # output does not wait on it, and with no other inherited descriptor either - a daemon started under
    # `flock /tmp/cssadmin-suite.lock` would otherwise hold that lock for as long as it runs.
    python3 -c 'import subprocess, sys; sys.exit(subprocess.call(["setsid", sys.argv[1]], close_fds=True,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))' "$slotd"
    for i in $(seq 100); do
        if [ -s "$pidfile" ]; then
            pid=$(cat "$pidfile")
            [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$slotd" ] && break
        fi
        pid=""
        sleep 0.1
    done
    if [ -z "$pid" ]; then
        echo "pkcsslotd of $prefix did not start" >&2
        return 1
    fi
    printf '%s\n%s\n' "$pid" "$slotd" >"$DIR/opencryptoki327.pid"
    cd "$DIR"
    local ock=(env "LD_LIBRARY_PATH=$prefix/lib/opencryptoki" "$prefix/sbin/pkcsconf")
    printf '%s\n' "$OCK_LABEL" | "${ock[@]}" -I -c 0 -S "$OCK_DEFAULT_SO_PIN" >/dev/null
    "${ock[@]}" -P -c 0 -S "$OCK_DEFAULT_SO_PIN" -n "$SO_PIN" >/dev/null
    "${ock[@]}" -u -c 0 -S "$SO_PIN" -n "$USER_PIN" >/dev/null   # 3.27 clears USER_PIN_TO_BE_CHANGED
    verify "$module" "$OCK_LABEL" "$USER_PIN"
    write_fragment opencryptoki327 "$module" "$OCK_LABEL" "$USER_PIN" "$SO_PIN"
    python3 - "$FRAG/opencryptoki327.json" "$DIR/opencryptoki327-build.txt" <<'EOF'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["build"] = open(sys.argv[2]).read().strip().splitlines()[-1]
json.dump(spec, open(sys.argv[1], "w"))
EOF
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
NAMES=("${@:2}")
[ "${#NAMES[@]}" -gt 0 ] || NAMES=(softhsm2 opencryptoki327 nss)
for name in "${NAMES[@]}"; do
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
for name in ("softhsm2", "opencryptoki327", "nss"):
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
