"""Stage (a): teacher keypoint AP on the held-out splits, top-down with ground-truth boxes, pycocotools.

    python training/eval_teachers.py [--margin 0.25]
"""
import argparse
import json

from common import Lightning, Thunder, coco_kp_ap, predict_split

ap = argparse.ArgumentParser()
ap.add_argument("--margin", type=float, default=0.25)
ap.add_argument("--splits", default="coco_mini,mmpose_coco")
args = ap.parse_args()
rows = []
for name, T in [("lightning_int8", Lightning), ("thunder", Thunder)]:
    t = T(threads=1)
    for split in args.splits.split(","):
        res, spc = predict_split(split, t, t.size, args.margin)
        m = coco_kp_ap(split, res)
        rows.append({"model": name, "split": split, "people": len(res), "ms_per_crop": round(spc * 1000, 2), **{k: round(v, 4) for k, v in m.items()}})
        print(json.dumps(rows[-1]), flush=True)
