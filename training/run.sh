#!/usr/bin/env bash
# One command, end to end, seeded:  bash training/run.sh [--smoke] [--threads N]
#   venv + pinned deps -> teacher labels (cached) -> keypoint student (stem neck + 51 agents)
#   -> body agents (person boxes) on the same stem -> fold + int8 quantisation to the engine's integer
#   contract -> exact integer simulation (AP) -> models/swarmpose.bundle + tests/data/bundle_golden.json.
# Full run: artefacts in $SWARMPOSE_TRAIN_CACHE/runs/final (default /work/cache/train), bundle in models/.
# --smoke: tiny version for CI (a few minutes); everything, bundle included, goes to runs/smoke.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
CACHE="${SWARMPOSE_TRAIN_CACHE:-/work/cache/train}"
export SWARMPOSE_TRAIN_CACHE="$CACHE"
mkdir -p "$CACHE/labels"
SMOKE=""; THREADS=1; ARGS="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE="--smoke" ;;
    --threads) THREADS="$2"; shift ;;
  esac; shift
done
export OMP_NUM_THREADS="$THREADS"
export SWARMPOSE_COMMAND="bash training/run.sh $ARGS"
if [ ! -x "$CACHE/venv/bin/python" ]; then
  python3 -m venv "$CACHE/venv"
  "$CACHE/venv/bin/pip" install -q -r "$HERE/requirements.txt"
fi
PY="$CACHE/venv/bin/python"
START=$(date +%s)
step() { echo "[run.sh] $(( ($(date +%s) - START) / 60 )) min: $*"; }
if [ -n "$SMOKE" ]; then
  RUN="$CACHE/runs/smoke"
  if [ ! -f "$CACHE/labels/labels_smoke.npz" ]; then
    step "teacher labels (smoke: 60 people)"
    "$PY" "$HERE/label.py" --limit 60 --out "$CACHE/labels/labels_smoke.npz"
  fi
  step "keypoint student (smoke)"
  "$PY" "$HERE/train.py" --smoke --threads "$THREADS" --out "$RUN"
  step "body agents (smoke)"
  "$PY" "$HERE/body.py" --smoke --threads "$THREADS" --run "$RUN"
  step "export + integer simulation (smoke)"
  "$PY" "$HERE/export.py" --smoke --run "$RUN" --calib 16
  BUNDLE="$RUN/swarmpose.bundle"
else
  RUN="$CACHE/runs/final"
  TRAIN_ARGS=(--size 128 --max-stride 16 --stem-out 32 --n-aug 4 --epochs 15 --eval-every 3)
  step "teacher labels"
  "$PY" "$HERE/label.py"
  # The keypoint student takes ~25 min on 1 thread. A finished run with exactly these arguments
  # (e.g. runs/e1, trained by this same command) is reused instead of being trained again.
  if [ ! -f "$RUN/model.pt" ] && [ -f "$CACHE/runs/e1/model.pt" ] && \
     HERE="$HERE" "$PY" "$HERE/train.py" --check-args "$CACHE/runs/e1/model.pt" "${TRAIN_ARGS[@]}"; then
    step "reusing $CACHE/runs/e1/model.pt (same training arguments)"
    mkdir -p "$RUN"; cp -p "$CACHE/runs/e1/model.pt" "$CACHE/runs/e1/results.json" "$RUN/"
  fi
  if [ ! -f "$RUN/model.pt" ]; then
    step "keypoint student"
    "$PY" "$HERE/train.py" --threads "$THREADS" --out "$RUN" "${TRAIN_ARGS[@]}"
  fi
  step "body agents"
  "$PY" "$HERE/body.py" --threads "$THREADS" --run "$RUN"
  step "export + integer simulation"
  BUNDLE="$REPO/models/swarmpose.bundle"
  "$PY" "$HERE/export.py" --run "$RUN" --out "$BUNDLE" --golden "$REPO/tests/data/bundle_golden.json"
fi
step "done. results: $RUN/results.json; bundle: $BUNDLE ($(stat -c %s "$BUNDLE") bytes)"
