#!/usr/bin/env bash
# The suite's test command: sets up .venv on first use (tools/bootstrap.sh), then runs pytest.
# Extra arguments go to pytest (e.g. ./run_tests.sh -m slow for the full-size CPU tests).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$ROOT/tools/bootstrap.sh"
cd "$ROOT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
exec "$ROOT/.venv/bin/python" -m pytest "$@"
