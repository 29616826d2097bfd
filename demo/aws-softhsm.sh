#!/usr/bin/env bash
# The main job on a throwaway SoftHSM2 token, against a locally generated stand-in for the AWS
# wrapping key, then proof that the wrapped file unwraps to the key the token holds.
#   usage: bash demo/aws-softhsm.sh            (everything lives in a temporary directory)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

if [ -n "${CSSADMIN_DEMO_CSSADMIN:-}" ]; then   # the test suite: its own cssadmin, dependencies present
    cssadmin=$CSSADMIN_DEMO_CSSADMIN python=${CSSADMIN_DEMO_PYTHON:-python3}
else
    bash "$root/tests/tokens/install-deps.sh"
    python=$(bash "$root/scripts/venv.sh")
    cssadmin="$(dirname "$python")/cssadmin"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/cssadmin-demo.XXXXXX")
cd "$work"
echo "== working in $work"

# 1. A throwaway token. The PIN goes in a file only we can read, never on the command line.
mkdir tokens
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' "$work" > softhsm2.conf
export SOFTHSM2_CONF="$work/softhsm2.conf"
softhsm2-util --init-token --free --label demo --pin 1234 --so-pin 5678 >/dev/null
(umask 077 && printf 1234 > pin)
export CSSADMIN_PKCS11_MODULE=/usr/lib/softhsm/libsofthsm2.so

# 2. A stand-in for AWS's WrappingKey_*.bin (RSA_4096, DER SubjectPublicKeyInfo). On the real
#    job this file comes from ImportParameters.zip and the private half stays in AWS.
openssl genrsa -out aws-private.pem 4096 2>/dev/null
openssl rsa -in aws-private.pem -pubout -outform DER -out WrappingKey.bin 2>/dev/null

# 3. The main job. SoftHSM2 2.6.1 has no OAEP with SHA-256, so this demo uses RSAES_OAEP_SHA_1.
mkdir out
#    The audit record goes in the demo's own directory, not in your ~/.local/state.
"$cssadmin" aws demo-key WrappingKey.bin RSAES_OAEP_SHA_1 --token demo --pin-file pin --out-dir out \
    --audit-log "$work/audit.jsonl"
"$cssadmin" verify-audit "$work/audit.jsonl"

# 4. What AWS will do: unwrap with the private half, and compare with the token's own hash of the key.
unwrapped=$(openssl pkeyutl -decrypt -inkey aws-private.pem -in out/demo-key-wrapped \
    -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:sha1 -pkeyopt rsa_mgf1_md:sha1 | sha256sum | cut -d' ' -f1)
in_token=$("$python" "$root/demo/token_digest.py" "$CSSADMIN_PKCS11_MODULE" demo 1234 demo-key)
echo "sha256 of the unwrapped key : $unwrapped"
echo "sha256 in the token (C_DigestKey): $in_token"
if [ "$unwrapped" = "$in_token" ]; then
    echo "OK: out/demo-key-wrapped unwraps to the key held by the token"
else
    echo "MISMATCH" >&2
    exit 1
fi
