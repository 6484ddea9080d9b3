#!/usr/bin/env bash
# The main job: a real street clip through the whole swarm, written as an annotated MP4.
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
for element in swarmdetect swarmconsensus swarmtrack swarmoverlay; do
  gst-inspect-1.0 "$element" >/dev/null 2>&1 || {
    echo "demo: element $element is not in this build yet (see the status table in README.md)" >&2
    exit 1
  }
done
mkdir -p "$out"
gst-launch-1.0 -e filesrc location="$input" ! decodebin ! videoconvert \
  ! swarmdetect ! swarmconsensus ! swarmtrack ! swarmoverlay \
  ! videoconvert ! x264enc tune=zerolatency ! mp4mux ! filesink location="$out/demo.mp4"
echo "demo: wrote $out/demo.mp4"
