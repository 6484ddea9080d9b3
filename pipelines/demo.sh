#!/usr/bin/env bash
# The main job: a real street clip through the whole swarm -> an annotated MP4 + JSON lines
# (one object per frame: persons with track ids, boxes, 17 keypoints).
#   bash pipelines/demo.sh [input-video] [output-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/setup
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
export NODEVICE_SELECT=1
cargo build --release --locked
export GST_PLUGIN_PATH=$PWD/target/release

data=${SWARMPOSE_DATA:-../shared/data}
input=${1:-$data/clips/street_walk_1280x720.avi}
out=${2:-out}
[ -f "$input" ] || { echo "demo: input video not found: $input" >&2; exit 1; }
mkdir -p "$out"
gst-launch-1.0 -e filesrc location="$input" ! decodebin ! videoconvert \
  ! swarmdetect ! swarmconsensus ! swarmtrack ! swarmjson location="$out/demo.jsonl" ! swarmoverlay \
  ! videoconvert ! x264enc tune=zerolatency ! mp4mux ! filesink location="$out/demo.mp4"
# One PNG per second of the annotated video, to look at without a player.
gst-launch-1.0 -q filesrc location="$out/demo.mp4" ! decodebin ! videoconvert ! videorate drop-only=true \
  ! video/x-raw,framerate=1/1 ! pngenc ! multifilesink location="$out/demo_frame_%d.png"
echo "demo: wrote $out/demo.mp4, $out/demo.jsonl ($(wc -l < "$out/demo.jsonl") frames) and $out/demo_frame_*.png"
