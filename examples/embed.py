#!/usr/bin/env python3
"""Embedding swarmpose in a Python app: run the swarm on a clip and read the poses from the
standard GstVideoRegionOfInterestMeta (type "person", param structure "pose-17-kp"), plus the
live statistics the elements post on the bus ("swarmpose-stats" element messages).

    GST_PLUGIN_PATH=$PWD/target/release /usr/bin/python3 examples/embed.py [CLIP] \
        [--detect 'swarmdetect'] [--max-frames N] [--stats-interval N]

Needs Debian's python3-gi and gir1.2-gst-plugins-base-1.0 (bash .ci/setup installs them; a
pyenv/venv python without system site-packages will not see `gi`).

Prints one line per frame:
    frame 12 t=1.200 persons=2 | #4 box=100,60,120x300 score=0.91 kp=15/17 nose=160,84 | ...
one line per stats message:
    stats swarmconsensus0 frames=30 fps=24.8 p50=0.04ms p95=0.09ms persons=2 degraded=0
and a last summary line:
    summary frames=N persons=M stats-messages=K
"""

import argparse
import ctypes
import os
import sys
import warnings

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
gi.require_version("GstApp", "1.0")
from gi.repository import GLib, Gst, GstApp, GstVideo  # noqa: E402,F401  (after require_version; GstApp gives appsink its methods)

ROI_TYPE = "person"
ROI_PARAM = "pose-17-kp"
NUM_KEYPOINTS = 17


class _GstMeta(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint), ("info", ctypes.c_void_p)]


class _RoiMeta(ctypes.Structure):
    """The C layout of GstVideoRegionOfInterestMeta (gst/video/gstvideometa.h, stable ABI)."""

    _fields_ = [
        ("meta", _GstMeta),
        ("roi_type", ctypes.c_uint32),
        ("id", ctypes.c_int),
        ("parent_id", ctypes.c_int),
        ("x", ctypes.c_uint),
        ("y", ctypes.c_uint),
        ("w", ctypes.c_uint),
        ("h", ctypes.c_uint),
        ("params", ctypes.c_void_p),
    ]


class RoiReader:
    """Walks a buffer's ROI metas.

    PyGObject on GStreamer 1.22 cannot enumerate a buffer's metas: Gst.Buffer.iterate_meta
    is not introspectable (a gpointer* state), foreach_meta hands the callback None, and
    get_meta returns only the first meta, untyped. Looking ROIs up by id
    (GstVideo.buffer_get_video_region_of_interest_meta_id) misses persons sharing id -1
    (untracked). So the walk goes through the C API with ctypes; hash() of a PyGObject
    buffer is its GstBuffer pointer. The params are handed back as real Gst.Structures.
    """

    def __init__(self):
        gst = ctypes.CDLL("libgstreamer-1.0.so.0")
        video = ctypes.CDLL("libgstvideo-1.0.so.0")
        glib = ctypes.CDLL("libglib-2.0.so.0")
        self._iterate = gst.gst_buffer_iterate_meta_filtered
        self._iterate.restype = ctypes.c_void_p
        self._iterate.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_size_t]
        api_type = video.gst_video_region_of_interest_meta_api_get_type
        api_type.restype = ctypes.c_size_t
        self._api = api_type()
        self._get_param = video.gst_video_region_of_interest_meta_get_param
        self._get_param.restype = ctypes.c_void_p
        self._get_param.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self._to_string = gst.gst_structure_to_string
        self._to_string.restype = ctypes.c_void_p
        self._to_string.argtypes = [ctypes.c_void_p]
        self._quark_to_string = glib.g_quark_to_string
        self._quark_to_string.restype = ctypes.c_char_p
        self._quark_to_string.argtypes = [ctypes.c_uint32]
        self._free = glib.g_free
        self._free.argtypes = [ctypes.c_void_p]

    def rois(self, buffer):
        """Yields (roi_type, id, (x, y, w, h), {param name: Gst.Structure}) per ROI meta."""
        state = ctypes.c_void_p(None)
        while True:
            ptr = self._iterate(hash(buffer), ctypes.byref(state), self._api)
            if not ptr:
                return
            roi = _RoiMeta.from_address(ptr)
            roi_type = (self._quark_to_string(roi.roi_type) or b"").decode()
            params = {}
            param = self._get_param(ptr, ROI_PARAM.encode())
            if param:
                text = self._to_string(param)
                try:
                    parsed = Gst.Structure.from_string(ctypes.string_at(text).decode())
                finally:
                    self._free(text)
                # PyGObject returns (structure, rest) here, older ones the structure only.
                structure = parsed[0] if isinstance(parsed, tuple) else parsed
                if structure is not None:
                    params[ROI_PARAM] = structure
            yield roi_type, roi.id, (roi.x, roi.y, roi.w, roi.h), params


def array(structure, field):
    """A GstValueArray field as a Python list ([] when absent)."""
    ok, values = structure.get_array(field)
    if not ok:
        return []
    with warnings.catch_warnings():
        # GValueArray is deprecated in GLib, but it is what Gst.Structure.get_array gives.
        warnings.simplefilter("ignore", DeprecationWarning)
        return [values.get_nth(i) for i in range(values.n_values)]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    data = os.environ.get("SWARMPOSE_DATA", os.path.join(here, "..", "..", "shared", "data"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", nargs="?", default=os.path.join(data, "clips", "pedestrians_768x576.avi"))
    parser.add_argument("--detect", default="swarmdetect", help="detector element(s), gst-launch syntax")
    parser.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0 = all)")
    parser.add_argument("--stats-interval", type=int, default=10, help="frames between stats messages (0 = off)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args()

    Gst.init(None)
    if not os.path.isfile(args.clip):
        sys.exit(f"embed.py: clip not found: {args.clip}")
    for name in ("swarmconsensus", "swarmtrack"):
        if Gst.ElementFactory.find(name) is None:
            sys.exit(f"embed.py: element {name} not found: build the plugin and set GST_PLUGIN_PATH=target/release (or target/ci)")
    # The appsink comes straight after swarmtrack: GStreamer 1.22's videoconvert would drop
    # the ROI params (see README, "ROI mirror").
    description = (
        f'filesrc location="{args.clip}" ! decodebin ! videoconvert ! videoscale '
        f"! video/x-raw,width={args.width},height={args.height} ! {args.detect} "
        f"! swarmconsensus stats-interval={args.stats_interval} "
        f"! swarmtrack stats-interval={args.stats_interval} "
        "! appsink name=sink sync=false max-buffers=4"
    )
    try:
        pipeline = Gst.parse_launch(description)
    except GLib.Error as err:
        sys.exit(f"embed.py: cannot build the pipeline: {err.message}")
    sink = pipeline.get_by_name("sink")
    bus = pipeline.get_bus()
    reader = RoiReader()
    frames = persons_total = stats_messages = 0
    failed = None

    def drain_bus():
        """Prints pending stats messages; returns an error text, 'eos', or None."""
        nonlocal stats_messages
        while True:
            msg = bus.pop_filtered(Gst.MessageType.ELEMENT | Gst.MessageType.ERROR | Gst.MessageType.EOS)
            if msg is None:
                return None
            if msg.type == Gst.MessageType.ERROR:
                err, debug = msg.parse_error()
                return f"{msg.src.get_path_string()}: {err.message} ({debug})"
            if msg.type == Gst.MessageType.EOS:
                return "eos"
            s = msg.get_structure()
            if s is not None and s.get_name() == "swarmpose-stats":
                stats_messages += 1
                stages = " ".join(
                    f"{s.nth_field_name(i)}={s.get_value(s.nth_field_name(i)):.3f}"
                    for i in range(s.n_fields())
                    if s.nth_field_name(i).endswith("-ms") and not s.nth_field_name(i).startswith("p")
                )
                print(
                    f"stats {s.get_value('element')} frames={s.get_value('frames')} "
                    f"fps={s.get_value('fps'):.1f} p50={s.get_value('p50-ms'):.3f}ms "
                    f"p95={s.get_value('p95-ms'):.3f}ms persons={s.get_value('persons')} "
                    f"dropped={s.get_value('dropped')} degraded={s.get_value('degraded')}"
                    + (f" {stages}" if stages else ""),
                    flush=True,
                )

    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        failed = drain_bus() or "the pipeline does not start"
    while failed is None:
        sample = sink.try_pull_sample(10 * Gst.SECOND)
        if sample is None:
            ended = drain_bus()
            if sink.is_eos() or ended == "eos":
                break
            failed = ended or "no frame for 10 s"
            break
        buffer = sample.get_buffer()
        people = []
        for roi_type, roi_id, (x, y, w, h), params in reader.rois(buffer):
            kp = params.get(ROI_PARAM)
            if roi_type != ROI_TYPE or kp is None:
                continue
            xs, ys, conf = array(kp, "x"), array(kp, "y"), array(kp, "confidence")
            shown = sum(1 for c in conf if c >= 0.3)
            label = f"#{roi_id}" if roi_id >= 0 else "#-"
            nose = f" nose={xs[0]:.0f},{ys[0]:.0f}" if xs and ys and conf and conf[0] >= 0.3 else ""
            people.append(
                f"{label} box={x},{y},{w}x{h} score={kp.get_value('score'):.2f} "
                f"kp={shown}/{NUM_KEYPOINTS}{nose}"
            )
        t = buffer.pts / Gst.SECOND if buffer.pts != Gst.CLOCK_TIME_NONE else float("nan")
        print(f"frame {frames} t={t:.3f} persons={len(people)}" + "".join(f" | {p}" for p in people), flush=True)
        frames += 1
        persons_total += len(people)
        ended = drain_bus()
        if ended not in (None, "eos"):
            failed = ended
        if args.max_frames and frames >= args.max_frames:
            break
    pipeline.set_state(Gst.State.NULL)
    drain_bus()
    print(f"summary frames={frames} persons={persons_total} stats-messages={stats_messages}", flush=True)
    if failed:
        sys.exit(f"embed.py: error: {failed}")


if __name__ == "__main__":
    main()
