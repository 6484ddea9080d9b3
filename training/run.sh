#!/usr/bin/env bash
# One command, end to end, seeded:  bash training/run.sh [--smoke] [--threads N]
#   venv + pinned deps -> teacher labels (cached) -> keypoint student (stem neck + 3 agents per keypoint)
#   -> 3 more agents per keypoint on the frozen stem (6 per keypoint: a third can fail or lie and 4 honest
#   ones are left) -> body agents (person boxes) on the same stem -> fold + int8 quantisation to the engine's integer
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
# glibc hands every large free back to the kernel, so each torch tensor of a batch faults its pages in
# again; on a VM where a page fault is slow that made the frozen stem's features 3x slower (24 s against
# 8 s for 400 crops, README "One command"). Kept memory changes no number (features, heatmaps, model equal).
export MALLOC_MMAP_THRESHOLD_=34359738368 MALLOC_TRIM_THRESHOLD_=34359738368
export SWARMPOSE_COMMAND="bash training/run.sh $ARGS"
if [ ! -x "$CACHE/venv/bin/python" ]; then
  python3 -m venv "$CACHE/venv"
  "$CACHE/venv/bin/pip" install -q -r "$HERE/requirements.txt"
fi
PY="$CACHE/venv/bin/python"
START=$(date +%s)
step() { echo "[run.sh] $(( ($(date +%s) - START) / 60 )) min: $*"; }
# The stem's fresh neck: 1x1 to 448, depthwise 3x3, 1x1 to 48 channels (a keypoint agent reading 48
# has 499 parameters), with batch norm while training (folded into the convs before saving); the
# smoke run trains the same shape. README "Neck with batch norm" has the pilots behind it.
ARCH_ARGS=(--stem-out 448,dw,48 --neck-bn)
# The keypoint student's heatmap target: Thunder's own heatmap of each augmented crop near the label
# (README "Soft heatmaps from Thunder"), not a Gaussian around it. --soft-from plain (Thunder once per person)
# saved under 3 min and lowered the plugin's coco_mini AP (README "One command", sixteenth session): not used.
LOSS_ARGS=(--soft 1.0)
# The second set of keypoint agents: trained alone on the finished stem (training/subcell.py).
EXTRA_ARGS=(--kp-ch 3 --apk 3 --sigma 0.8 --epochs 15 --eval-every 5 --seed 0)
if [ -n "$SMOKE" ]; then
  RUN="$CACHE/runs/smoke"
  if [ ! -f "$CACHE/labels/labels_smoke.npz" ]; then
    step "teacher labels (smoke: 60 people)"
    "$PY" "$HERE/label.py" --limit 60 --out "$CACHE/labels/labels_smoke.npz"
  fi
  step "keypoint student (smoke)"
  "$PY" "$HERE/train.py" --smoke --threads "$THREADS" --out "$RUN" "${ARCH_ARGS[@]}" "${LOSS_ARGS[@]}"
  step "3 more agents per keypoint on the frozen stem (smoke)"
  "$PY" "$HERE/subcell_feats.py" "$RUN"
  "$PY" "$HERE/subcell.py" --smoke --base "$RUN" --out "$RUN/extra" --threads "$THREADS" "${EXTRA_ARGS[@]}"
  step "body agents (smoke)"
  "$PY" "$HERE/body.py" --smoke --threads "$THREADS" --run "$RUN"
  step "export + integer simulation (smoke)"
  "$PY" "$HERE/export.py" --smoke --run "$RUN" --extra-agents "$RUN/extra" --calib 16
  BUNDLE="$RUN/swarmpose.bundle"
else
  RUN="$CACHE/runs/final"
  # 24 crops (not 4) per person of a COCO photo: coco128_person's 188 people are the only training people
  # from photos like the held-out ones (README "COCO people oversampled").
  TRAIN_ARGS=(--size 192 --max-stride 16 "${ARCH_ARGS[@]}" --n-aug 4 --coco-aug 24 --epochs 15 --eval-every 3 "${LOSS_ARGS[@]}")
  # A finished run trained with other arguments is not this command's output: train it again.
  if [ -f "$RUN/model.pt" ] && ! HERE="$HERE" "$PY" "$HERE/train.py" --check-args "$RUN/model.pt" "${TRAIN_ARGS[@]}"; then
    step "$RUN was trained with other arguments: training again"
    rm -rf "$RUN/model.pt" "$RUN/results.json" "$RUN/body.pt" "$RUN/extra"
  fi
  # The two teachers' labellers are single-threaded (deterministic): MultiPose labels the body tier's
  # frames beside label.py, on the other core (the body stage waits for it).
  step "teacher labels (keypoints; body frames beside them)"
  "$PY" "$HERE/body.py" --labels-only >"$CACHE/body_labels.log" 2>&1 &
  BODY_LABELS=$!
  # Worker processes with single-threaded teachers: the labels do not depend on their number.
  "$PY" "$HERE/label.py" --workers "$THREADS"
  # Keypoint student: ~18 min on 2 idle threads (a finished run with these arguments is kept).
  if [ ! -f "$RUN/model.pt" ]; then
    step "keypoint student"
    "$PY" "$HERE/train.py" --threads "$THREADS" --out "$RUN" "${TRAIN_ARGS[@]}"
  fi
  # 3 more agents per keypoint on the finished stem, and the body agents: both read the finished stem and
  # nothing of each other, so they run side by side (each keeps its thread count, so its results do not
  # change; passive OpenMP waits, so four threads share two cores without spinning against each other).
  if [ -f "$RUN/extra/model.pt" ] && ! "$PY" "$HERE/subcell.py" --check-args "$RUN/extra/model.pt" "${EXTRA_ARGS[@]}"; then
    step "$RUN/extra was trained with other arguments: training again"
    rm -rf "$RUN/extra"
  fi
  export OMP_WAIT_POLICY=PASSIVE
  EXTRA=""
  if [ ! -f "$RUN/extra/model.pt" ]; then
    step "3 more agents per keypoint on the frozen stem (log: $CACHE/extra.log), beside the body agents"
    { "$PY" "$HERE/subcell_feats.py" "$RUN" &&
      "$PY" "$HERE/subcell.py" --base "$RUN" --out "$RUN/extra" --threads "$THREADS" "${EXTRA_ARGS[@]}"; } \
      >"$CACHE/extra.log" 2>&1 &
    EXTRA=$!
  fi
  wait "$BODY_LABELS" || { cat "$CACHE/body_labels.log"; exit 1; }
  step "body agents"
  "$PY" "$HERE/body.py" --threads "$THREADS" --run "$RUN"
  if [ -n "$EXTRA" ]; then
    wait "$EXTRA" || { cat "$CACHE/extra.log"; exit 1; }
    step "3 more agents per keypoint: $(grep -E '^\[eval\] coco_mini fuse=weighted' "$CACHE/extra.log")"
  fi
  unset OMP_WAIT_POLICY
  step "export + integer simulation"
  BUNDLE="$REPO/models/swarmpose.bundle"
  "$PY" "$HERE/export.py" --run "$RUN" --extra-agents "$RUN/extra" --out "$BUNDLE" \
    --golden "$REPO/tests/data/bundle_golden.json"
fi
step "done. results: $RUN/results.json; bundle: $BUNDLE ($(stat -c %s "$BUNDLE") bytes)"
