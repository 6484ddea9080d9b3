#!/usr/bin/env bash
# Poses from a V4L2 webcam, drawn live (or headless) and written as JSON lines.
#   bash pipelines/webcam.sh [/dev/videoN] [out.jsonl|-]
# Environment: WIDTH/HEIGHT (processing size, default 640x480), HEADLESS=1 (no window;
# automatic without $DISPLAY / $WAYLAND_DISPLAY), DETECT (default swarmdetect).
set -euo pipefail
. "$(dirname "$0")/common.sh"

device=${1:-}
out=${2:-webcam.jsonl}
if [ -z "$device" ]; then
  for d in /dev/video*; do
    [ -c "$d" ] && { device=$d; break; }
  done
fi
if [ -z "$device" ] || [ ! -c "$device" ]; then
  echo "${0##*/}: no camera found (no /dev/video* device${device:+; '$device' is not one}). Plug one in, pass its device, or use pipelines/rtsp.sh for a network camera." >&2
  exit 1
fi
detect=${DETECT:-swarmdetect}
sink="autovideosink"
if [ -n "${HEADLESS:-}" ] || { [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; }; then
  sink="fakesink"
fi
require_elements v4l2src videoconvert videoscale $(chain_elements "$detect") swarmconsensus swarmtrack swarmjson swarmoverlay $sink
echo "${0##*/}: $device -> $out (Ctrl-C to stop)" >&2
set -f
exec gst-launch-1.0 -e v4l2src device="$device" ! videoconvert ! videoscale \
  ! "video/x-raw,width=${WIDTH:-640},height=${HEIGHT:-480}" \
  ! $detect ! swarmconsensus ! swarmtrack ! swarmjson location="$out" \
  ! swarmoverlay ! videoconvert ! $sink sync=false
