#!/usr/bin/env bash
# The test command (README and .ci/run): install what the tests need, provision fresh test
# tokens, and run the whole suite with every token-backed test required to run.
#   usage: bash tests/run.sh [pytest arguments]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash tests/tokens/install-deps.sh
python=$(bash scripts/venv.sh test)

tokens=$(mktemp -d "${TMPDIR:-/tmp}/cssadmin-tokens.XXXXXX")
trap 'rm -rf "$tokens"' EXIT
bash tests/tokens/provision.sh "$tokens" >/dev/null

export CSSADMIN_TEST_TOKENS="$tokens/tokens.json"
export CSSADMIN_REQUIRE_TOKENS=1
status=0
"$python" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "tests/run.sh: pytest collected no tests; that is a failure here" >&2
    exit 1
fi
exit "$status"
