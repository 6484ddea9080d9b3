#!/usr/bin/env bash
# Keypoint AP (pycocotools, coco_mini, GT boxes) with 0, 10, 20, 33, 50 % of the keypoint agents
# faulty, for each fault kind, as a Markdown table (one per spread). The images run as ONE
# sequence through one pipeline, so reputations build up across them.
#
#   bash tools/fault_curve.sh                       # spreads: random and balanced, 1 pass
#   SPREADS=random PASSES=2 bash tools/fault_curve.sh
#   KINDS=panic bash tools/fault_curve.sh           # one fault kind
#
# Needs: a release build (cargo build --release), ../shared/data/coco_mini (or $SWARMPOSE_DATA),
# a Python with pycocotools ($PYTHON, default /work/cache/train/venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${SWARMPOSE_DATA:-../shared/data}
PYTHON=${PYTHON:-/work/cache/train/venv/bin/python}
A=$DATA/coco_mini/annotations/person_keypoints_train2017.json
I=$DATA/coco_mini/train2017
SPREADS=${SPREADS:-random balanced}
KINDS=${KINDS:-crash silent noise collude panic}
PASSES=${PASSES:-1}
SEED=${SEED:-1}
FRACTIONS="0.10 0.20 0.33 0.50"
[ -x target/release/swarmpose ] || cargo build --release
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
ap() {
    ./target/release/swarmpose eval-coco --annotations "$A" --images "$I" --output "$OUT/r.json" \
        --gt-boxes --passes "$PASSES" --detect backend=cpu --detect fault-seed="$SEED" "$@" 2>/dev/null
    "$PYTHON" tools/coco_kp_ap.py "$A" "$OUT/r.json"
}
clean=$(ap)
echo "clean AP (no faults): $clean   (passes=$PASSES, seed=$SEED)"
for spread in $SPREADS; do
    echo
    echo "spread=$spread"
    echo
    echo "| fault kind | 0 % | 10 % | 20 % | 33 % | 50 % |"
    echo "|---|---|---|---|---|---|"
    for kind in $KINDS; do
        row="| $kind | $clean"
        for f in $FRACTIONS; do
            v=$(ap --detect fault-kind=$kind --detect fault-fraction="$f" --detect fault-spread="$spread")
            row="$row | $v ($(awk -v a="$v" -v c="$clean" 'BEGIN{printf "%.0f %%", 100*a/c}'))"
        done
        echo "$row |"
    done
done
