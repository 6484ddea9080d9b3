#!/usr/bin/env bash
# The test command: set-up (idempotent), release build, every test, and a summary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
export NODEVICE_SELECT=1 # silences Mesa's harmless XDG_RUNTIME_DIR warning

cargo build --release --locked
bash tools/pyenv.sh >/dev/null # pycocotools + py-motmetrics for the accuracy and tracking tests
skips=target/tmp/skipped.log
rm -f "$skips"
log=$(mktemp)
set +e
cargo test --release --locked --all-targets 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
[ -f "$skips" ] && { echo; cat "$skips"; }
awk -v s="$( [ -f "$skips" ] && wc -l <"$skips" || echo 0)" '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "\nSUMMARY: %d passed, %d failed, %d ignored, %d skipped (reasons above)\n", p, f, i, s }' "$log"
rm -f "$log"
exit "$status"
