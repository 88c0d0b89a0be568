#!/usr/bin/env bash
# Regenerate the paper's tables (benchmarks/tables.py) with one command, resumably.
#
#   ./run_all.sh [runner flags]      e.g. ./run_all.sh --dry-run
#                                         ./run_all.sh --data-root /data/aeroseg --gpus 4
#                                         ./run_all.sh --tables 2 --methods AerOSeg --datasets isaid
#
# Every flag goes to `python -m benchmarks.run` (see --help). Uses .venv/bin/python, running
# tools/bootstrap.sh first when .venv is missing. With no data root configured (no --data-root,
# no $AEROSEG_DATA) and no --scale given, it runs the CPU-sized mini benchmark (--scale mini).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"
PY="$ROOT/.venv/bin/python"
if [ ! -x "$PY" ]; then
  echo "[run_all] .venv missing: running tools/bootstrap.sh first" >&2
  bash "$ROOT/tools/bootstrap.sh"
fi

has_root=0; has_scale=0
[ -n "${AEROSEG_DATA:-}" ] && has_root=1
for arg in "$@"; do
  case "$arg" in
    --data-root|--data-root=*) has_root=1 ;;
    --scale|--scale=*) has_scale=1 ;;
  esac
done
extra=()
if [ "$has_root" = 0 ] && [ "$has_scale" = 0 ]; then
  echo "[run_all] no data root configured (--data-root or \$AEROSEG_DATA): running --scale mini" >&2
  extra=(--scale mini)
fi
exec "$PY" -m benchmarks.run ${extra[@]+"${extra[@]}"} "$@"
