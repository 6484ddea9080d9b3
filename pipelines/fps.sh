#!/usr/bin/env bash
# Throughput of an element chain on a real clip at 640x480, frames decoded and scaled first.
#   bash pipelines/fps.sh 'swarmdetect ! swarmconsensus' [clip]
# Prints the chain's fps next to a baseline with `identity` in its place (the decode and
# scale ceiling): frames counted at the sink over the time gst-launch reports from PLAYING
# to EOS ("Execution ended after"), so start-up is not counted; sync=false, as fast as the
# chain goes. fpsdisplaysink's own running average is shown beside it. WIDTH/HEIGHT change
# the size.
set -euo pipefail
. "$(dirname "$0")/common.sh"

chain=${1:-}
clip=${2:-$data/clips/pedestrians_768x576.avi}
[ -n "$chain" ] || { echo "usage: ${0##*/} 'element ! element ...' [clip]" >&2; exit 2; }
[ -f "$clip" ] || { echo "${0##*/}: clip not found: $clip (set SWARMPOSE_DATA or pass one)" >&2; exit 1; }
require_elements filesrc decodebin videoconvert videoscale fpsdisplaysink $(chain_elements "$chain")

# run CHAIN: prints "fps frames seconds fpsdisplaysink-average" for one pass over the clip.
run() {
  local log
  log=$(mktemp)
  set -f
  # shellcheck disable=SC2086  # the chain is split into gst-launch words on purpose
  if ! gst-launch-1.0 -v filesrc location="$clip" ! decodebin ! videoconvert ! videoscale \
      ! "video/x-raw,width=${WIDTH:-640},height=${HEIGHT:-480}" ! $1 \
      ! fpsdisplaysink video-sink="fakesink silent=false" text-overlay=false sync=false \
      >"$log" 2>&1; then
    set +f
    echo "${0##*/}: the pipeline '$1' failed:" >&2
    grep -E "ERROR|error" "$log" | head -5 >&2
    rm -f "$log"
    exit 1
  fi
  set +f
  local frames elapsed average
  # With -v the inner fakesink notifies its last-message once per buffer.
  frames=$(grep -c "last-message = chain" "$log" || true)
  elapsed=$(grep -o 'Execution ended after [0-9:.]*' "$log" | awk '{ print $4 }')
  average=$(grep -o 'average: [0-9.]*' "$log" | tail -1 | awk '{ print $2 }')
  rm -f "$log"
  [ -n "$elapsed" ] && [ "$frames" -gt 0 ] || { echo "${0##*/}: no frames measured for '$1'" >&2; exit 1; }
  awk -v n="$frames" -v t="$elapsed" -v a="${average:-nan}" 'BEGIN {
    split(t, p, ":"); s = p[1] * 3600 + p[2] * 60 + p[3]
    printf "%.1f %d %.3f %s\n", (s > 0 ? n / s : 0), n, s, a }'
}

base=$(run identity)
this=$(run "$chain")
printf '%-44s %8s %7s %8s %14s\n' "chain (${WIDTH:-640}x${HEIGHT:-480}, ${clip##*/})" fps frames seconds "fpsdisplaysink"
for row in "identity (decode + scale only)|$base" "$chain|$this"; do
  IFS='|' read -r name numbers <<<"$row"
  read -r fps frames secs average <<<"$numbers"
  printf '%-44s %8s %7s %8s %14s\n' "$name" "$fps" "$frames" "$secs" "$average"
done
