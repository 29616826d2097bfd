#!/usr/bin/env bash
# Run the benchmark in one command: bench/run.sh [-n N] [--write] [other bench/bench.py options]
# Uses the project's .venv (made by scripts/venv.sh) for the source install, the frozen binary in
# dist/ if build/freeze.sh made one, and a throwaway SoftHSM2 token (tests/tokens/install-deps.sh
# installs SoftHSM2 when it is missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash tests/tokens/install-deps.sh
python=$(bash scripts/venv.sh)
exec "$python" bench/bench.py --python "$python" "$@"
