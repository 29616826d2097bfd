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
trap 'bash tests/tokens/stop.sh "$tokens"; rm -rf "$tokens"' EXIT
# The machine's own openCryptoki, before anything is provisioned: a test and the end of this script
# check that the run left it exactly so.
"$python" tests/tokens/system_state.py snapshot "$tokens/system-state.json"
# Its stderr names the openCryptoki 3.27 build, "built in N s" or "cached" (pytest's summary repeats it).
bash tests/tokens/provision.sh "$tokens" >/dev/null

export CSSADMIN_TEST_TOKENS="$tokens/tokens.json"
export CSSADMIN_SYSTEM_STATE="$tokens/system-state.json"
export CSSADMIN_REQUIRE_TOKENS=1
status=0
"$python" -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "tests/run.sh: pytest collected no tests; that is a failure here" >&2
    exit 1
fi
bash tests/tokens/stop.sh "$tokens"
if ! "$python" tests/tokens/system_state.py compare "$tokens/system-state.json"; then
    echo "tests/run.sh: the run changed the machine's own openCryptoki" >&2
    exit 1
fi
exit "$status"
