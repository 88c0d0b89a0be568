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
"$PY" -m benchmarks.run ${extra[@]+"${extra[@]}"} "$@"

# Figures after the tables (benchmarks/figures.py): per-class IoU bars from runs.csv and the
# Fig. 5 grid from the trained checkpoints, under <results-dir>/<scale>/figures/.
scale=full; fig_args=(); prev=""
[ "${#extra[@]}" -gt 0 ] && scale=mini
for arg in "$@"; do
  case "$prev" in
    --scale) scale="$arg" ;;
    --results-dir) fig_args+=(--results "$arg") ;;
    --work-dir) fig_args+=(--work-dirs "$arg") ;;
    --data-root) fig_args+=(--data-root "$arg") ;;
  esac
  case "$arg" in
    --dry-run|--help|-h) exit 0 ;;
    --scale=*) scale="${arg#--scale=}" ;;
  esac
  prev="$arg"
done
exec "$PY" -m benchmarks.figures --scale "$scale" ${fig_args[@]+"${fig_args[@]}"}
