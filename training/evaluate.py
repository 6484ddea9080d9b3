"""Keypoint AP of a trained student on the held-out splits (pycocotools, COCO results JSON).

    python training/evaluate.py --run /work/cache/train/runs/final --gt-boxes [--fuse weighted,best,weighted_centroid]
                                [--splits coco_mini] [--margin 0.25]

--gt-boxes: top-down on the ground-truth person boxes (25 % margin square crops); the only protocol so far
(end-to-end with body agents is future work)."""
import argparse
import json
import os

import numpy as np
import torch

from common import CACHE, coco_kp_ap, predict_split
from model import Student, decode, normalise

ap = argparse.ArgumentParser()
ap.add_argument("--run", default=os.path.join(CACHE, "runs", "final"))
ap.add_argument("--gt-boxes", action="store_true", default=True)
ap.add_argument("--fuse", default="weighted,best,weighted_local,weighted_centroid")
ap.add_argument("--splits", default="coco_mini,mmpose_coco")
ap.add_argument("--margin", type=float, default=0.25, help="crop margin around the box (the plugin's: 0.25)")
a = ap.parse_args()
torch.set_num_threads(1)
ck = torch.load(os.path.join(a.run, "model.pt"), weights_only=False)
ta = ck["args"]
model = Student(ta["upto"], ta["stem_out"], ta["apk"], ta["hidden"], ta["depth"], ta.get("max_stride", 16),
                prune=ta.get("prune", ""), skip=ta.get("skip", ""))
st = {k.replace("stem.neck.conv.", "stem.neck.0.conv."): v for k, v in ck["state"].items()}  # pre-neck-spec runs
model.load_state_dict(st)
model.eval()
for split in a.splits.split(","):
    for fuse in a.fuse.split(","):
        def pred(crop):
            with torch.no_grad():
                return decode(model(normalise(torch.from_numpy(crop)[None], model.stem.norm)), model.stride, fuse)[0].numpy()
        res, spc = predict_split(split, pred, ta["size"], margin=a.margin)
        json.dump(res, open(os.path.join(a.run, f"results_{split}_{fuse}.json"), "w"))
        m = coco_kp_ap(split, res)
        print(json.dumps({"split": split, "fuse": fuse, **{k: round(v, 4) for k, v in m.items()}}), flush=True)
