#!/usr/bin/env bash
# One command, end to end, seeded:  bash training/run.sh [--smoke] [--threads N]
#   venv + pinned deps -> teacher labels (cached) -> features -> distillation -> float AP
#   -> fold residuals + export (npz/json) -> int8 simulation AP.  Artefacts: $SWARMPOSE_TRAIN_CACHE (/work/cache/train).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${SWARMPOSE_TRAIN_CACHE:-/work/cache/train}"
SMOKE=""; THREADS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE="--smoke" ;;
    --threads) THREADS="$2"; shift ;;
  esac; shift
done
export OMP_NUM_THREADS="$THREADS"
if [ ! -x "$CACHE/venv/bin/python" ]; then
  python3 -m venv "$CACHE/venv"
  "$CACHE/venv/bin/pip" install -q -r "$HERE/requirements.txt"
fi
PY="$CACHE/venv/bin/python"
RUN="$CACHE/runs/$([ -n "$SMOKE" ] && echo smoke || echo final)"
START=$(date +%s)
if [ -n "$SMOKE" ]; then
  "$PY" "$HERE/train.py" --smoke --threads "$THREADS" --out "$RUN"
  "$PY" "$HERE/export.py" --smoke --run "$RUN" --calib 16
else
  "$PY" "$HERE/label.py"
  "$PY" "$HERE/train.py" --threads "$THREADS" --out "$RUN" --size 128 --max-stride 16 --stem-out 32 \
        --n-aug 4 --epochs 15 --eval-every 3
  "$PY" "$HERE/export.py" --run "$RUN"
fi
echo "[run.sh] total $(( ($(date +%s) - START) / 60 )) min; results: $RUN/results.json, bundle: $RUN/student.{npz,json}"
