#!/usr/bin/env bash
# The test command: set-up (idempotent), build (profile `ci`, Cargo.toml), every test, and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
export NODEVICE_SELECT=1 # silences Mesa's harmless XDG_RUNTIME_DIR warning

# Profile `ci` (Cargo.toml): release code without LTO, so ~30 test binaries build in minutes.
cargo build --profile ci --locked --bins --lib --examples # the embedding test runs the built example
bash tools/pyenv.sh >/dev/null # pycocotools + py-motmetrics for the accuracy and tracking tests

# The training pipeline must not rot: its smoke version (tiny subset, minutes; torch CPU use)
# trains, exports a bundle, and the plugin must load and run that bundle.
if [ -d "${SWARMPOSE_DATA:-../shared/data}" ]; then
  SWARMPOSE_TRAIN_CACHE=${SWARMPOSE_TRAIN_CACHE:-$PWD/target/train-cache} bash training/run.sh --smoke >target/training-smoke.log 2>&1 \
    || { tail -30 target/training-smoke.log; echo "training smoke FAILED (log: target/training-smoke.log)"; exit 1; }
  smoke_bundle=${SWARMPOSE_TRAIN_CACHE:-$PWD/target/train-cache}/runs/smoke/swarmpose.bundle
  GST_PLUGIN_PATH=$PWD/target/ci gst-launch-1.0 -q videotestsrc num-buffers=3 ! video/x-raw,width=320,height=240 \
    ! videoconvert ! swarmdetect backend=cpu weights="$smoke_bundle" ! swarmconsensus ! fakesink
  echo "training smoke: ok ($(tail -1 target/training-smoke.log))"
else
  echo "training smoke: SKIPPED (no ../shared/data)"
fi
skips=target/tmp/skipped.log
rm -f "$skips"
log=$(mktemp)
set +e
cargo test --profile ci --locked --all-targets --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
[ -f "$skips" ] && { echo; cat "$skips"; }
awk -v s="$( [ -f "$skips" ] && wc -l <"$skips" || echo 0)" '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "\nSUMMARY: %d passed, %d failed, %d ignored, %d skipped (reasons above)\n", p, f, i, s }' "$log"
rm -f "$log"
exit "$status"
