"""Checks examples/embed.py's ROI walk on a buffer built here: every "person" ROI is found,
including several sharing id -1 (untracked; the case GstVideo's lookup by id misses), and the
pose-17-kp arrays and scalars read back exactly. Prints "ok N" on success."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples"))
import embed  # noqa: E402
from embed import Gst, GstVideo  # noqa: E402

Gst.init(None)
buffer = Gst.Buffer.new_allocate(None, 16, None)
expected = []
for i, roi_id in enumerate([-1, 7, -1, -1]):
    roi = GstVideo.buffer_add_video_region_of_interest_meta(buffer, "person", 10 * i, 20 * i, 30 + i, 40 + i)
    roi.id = roi_id
    xs = [float(i * 100 + k) + 0.5 for k in range(embed.NUM_KEYPOINTS)]
    params = Gst.Structure.new_from_string(
        "pose-17-kp, x=(float)<%s>, score=(float)0.75, predicted=(boolean)false"
        % ", ".join(repr(x) for x in xs)
    )
    roi.add_param(params)
    expected.append((roi_id, (10 * i, 20 * i, 30 + i, 40 + i), xs))
# Another producer's ROI without our param must come back without it.
GstVideo.buffer_add_video_region_of_interest_meta(buffer, "face", 1, 2, 3, 4)

found = list(embed.RoiReader().rois(buffer))
persons = [(i, box, embed.array(p["pose-17-kp"], "x")) for t, i, box, p in found if t == "person"]
assert persons == expected, f"{persons} != {expected}"
faces = [(t, p) for t, _, _, p in found if t == "face"]
assert faces == [("face", {})], faces
assert found[0][3]["pose-17-kp"].get_value("score") == 0.75
print(f"ok {len(persons)}")
