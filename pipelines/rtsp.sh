#!/usr/bin/env bash
# Poses from an RTSP camera as JSON lines (one per frame; see README "JSON").
#   bash pipelines/rtsp.sh rtsp://[user:password@]camera[:port]/path [out.jsonl|-]
# Environment: WIDTH/HEIGHT (processing size, default 640x480), LATENCY (rtspsrc jitter
# buffer, ms, default 200: 0 gives the lowest delay but stutters on lossy networks),
# PROTOCOLS (rtspsrc protocols, e.g. tcp behind NAT/firewalls; default: rtspsrc's own),
# DETECT (detector element with its properties, default swarmdetect).
set -euo pipefail
. "$(dirname "$0")/common.sh"

url=${1:-}
out=${2:--}
case "$url" in
  rtsp://* | rtsps://* | rtspt://*) ;;
  *) echo "usage: ${0##*/} rtsp://camera/stream [out.jsonl|-]   (got '${url}')" >&2; exit 2 ;;
esac
detect=${DETECT:-swarmdetect}
require_elements rtspsrc decodebin videoconvert videoscale $(chain_elements "$detect") swarmconsensus swarmtrack swarmjson
protocols=()
[ -n "${PROTOCOLS:-}" ] && protocols=(protocols="$PROTOCOLS")

# -e: Ctrl-C sends EOS, so swarmjson flushes every line before exiting.
set -f  # $detect is split into words on purpose, never globbed
exec gst-launch-1.0 -e rtspsrc location="$url" latency="${LATENCY:-200}" "${protocols[@]}" \
  ! decodebin ! videoconvert ! videoscale ! "video/x-raw,width=${WIDTH:-640},height=${HEIGHT:-480}" \
  ! $detect ! swarmconsensus ! swarmtrack ! swarmjson location="$out" ! fakesink sync=false
