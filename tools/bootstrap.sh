#!/usr/bin/env bash
# Create .venv at the repo root and install the tested stack (docs/design.md §5), idempotently.
#
# mmcv 2.1.0 has no wheel for torch 2.14: it is built once from its sdist with the C++
# standard raised to C++20 (torch 2.14's headers require it) and the built wheel is kept in
# $AEROSEG_WHEEL_CACHE (default ~/.cache/aeroseg-bench/wheels) so later installs take seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AEROSEG_VENV:-$ROOT/.venv}"
CACHE="${AEROSEG_WHEEL_CACHE:-$HOME/.cache/aeroseg-bench/wheels}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1)
MMCV_VERSION=2.1.0
STAMP="$VENV/.aeroseg-stack-v3"  # v2: rasterio, tqdm, matplotlib (python -m aeroseg.infer); v3: mmdet 3.3.0 (SCAN)

say() { printf '[bootstrap] %s\n' "$*"; }

if [ -f "$STAMP" ] && [ "${AEROSEG_FORCE_BOOTSTRAP:-0}" != 1 ]; then
  say "stack already installed in $VENV (delete $STAMP to reinstall)"
  "$VENV/bin/pip" install -q --no-deps --no-build-isolation -e "$ROOT" >/dev/null
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV with $("$PY" --version)"
  "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q --upgrade "pip<26" "setuptools<81" wheel ninja numpy "${TORCH_PINS[@]}"
say "torch: $("$VENV/bin/python" -c 'import torch, torchvision; print(torch.__version__, torchvision.__version__)')"

mkdir -p "$CACHE"
WHEEL="$(ls "$CACHE"/mmcv-${MMCV_VERSION}-*.whl 2>/dev/null | head -n1 || true)"
if [ -z "$WHEEL" ]; then
  say "building mmcv $MMCV_VERSION with compiled ops (once; ~12 min on 2 cores)"
  BUILD="$(mktemp -d)"
  "${PIP[@]}" download -q --no-deps --no-build-isolation --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD"
  tar -xzf "$BUILD"/mmcv-${MMCV_VERSION}.tar.gz -C "$BUILD"
  SRC="$BUILD/mmcv-$MMCV_VERSION"
  # torch 2.14's headers: '#error C++20 or later compatible compiler is required'
  sed -i -E 's/-std=c\+\+1[47]/-std=c++20/g' "$SRC/setup.py"
  grep -q 'c++20' "$SRC/setup.py" || { say "could not patch $SRC/setup.py to C++20"; exit 1; }
  (cd "$BUILD" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="${MAX_JOBS:-2}" \
     "${PIP[@]}" wheel -q --no-deps --no-build-isolation "$SRC" -w "$CACHE")
  rm -rf "$BUILD"
  WHEEL="$(ls "$CACHE"/mmcv-${MMCV_VERSION}-*.whl | head -n1)"
  say "cached $WHEEL"
fi
"${PIP[@]}" install -q --no-deps "$WHEEL"
"${PIP[@]}" install -q "${TORCH_PINS[@]}" "mmcv==$MMCV_VERSION" -r "$ROOT/requirements.txt"
SAM2_BUILD_CUDA=0 "${PIP[@]}" install -q --no-build-isolation "${TORCH_PINS[@]}" sam2==1.1.0
"${PIP[@]}" install -q --no-deps --no-build-isolation -e "$ROOT"
"$VENV/bin/python" - <<'PY'
import torch, mmcv, mmengine, mmseg, open_clip, segment_anything, sam2  # noqa: F401
from mmcv.ops import nms  # noqa: F401  (compiled ops present)
import mmseg.models  # noqa: F401
import mmdet.models  # noqa: F401  (SCAN's Mask2Former parts; its deps pycocotools, shapely, ...)
print('[bootstrap] ok: torch', torch.__version__, '| mmcv', mmcv.__version__, '| mmseg', mmseg.__version__,
      '| mmdet', __import__('mmdet').__version__)
PY
touch "$STAMP"
