"""Diagnostics for the keypoint agents (coco_mini, GT boxes, 128 px crops).

    python training/subcell_diag.py RUN                 # float AP (weighted) with offsets used / zeroed
    python training/subcell_diag.py --oracle            # AP ceilings of grid decodes (GT snapped to cell / sub-cell centres)
    python training/subcell_diag.py --errors RES.json   # localisation error of a results JSON, in crop px
"""
import json
import sys

import numpy as np
import torch

from common import apply_affine, coco_kp_ap, crop_matrix, eval_people, invert_affine, square_box


def offsets_used_or_zeroed(run):
    import model as M
    import train
    from body import load_student
    m, ta = load_student(run)
    ch = ta.get("kp_ch", 3)
    orig = M.decode

    def nooff(y, stride, fuse="weighted"):
        y = y.clone()
        y[:, :, :, (4 if ch == 6 else 1):] = 0
        return orig(y, stride, fuse)

    for name, fn in [("full", orig), ("offsets zeroed", nooff)]:
        train.decode = fn
        r, _ = train.evaluate(m, ta["size"], "coco_mini", "weighted")
        print(f"{run}: {name}: AP {r['AP']:.4f} AP50 {r['AP50']:.4f}", flush=True)


def oracle():
    _, _, _, people = eval_people("coco_mini")
    for name, q in [("exact", None), ("snap 8 px (sub-cell centre)", 8), ("snap 16 px (cell centre)", 16)]:
        res = []
        for a in people:
            g = np.array(a["keypoints"], float).reshape(17, 3)
            M = crop_matrix(*square_box(a["bbox"], 0.25), 128)
            p = apply_affine(M, g[:, :2])
            p[g[:, 2] == 0] = 64.0
            if q:
                p = (np.floor(p / q) + 0.5) * q
            xy = apply_affine(invert_affine(M), p)
            res.append({"image_id": a["image_id"], "category_id": 1, "score": 1.0,
                        "keypoints": [float(v) for v in np.concatenate([xy, np.ones((17, 1))], 1).reshape(-1)]})
        m = coco_kp_ap("coco_mini", res)
        print(f"{name}: AP {m['AP']:.3f} AP50 {m['AP50']:.3f} AP75 {m['AP75']:.3f}", flush=True)


def errors(path):
    _, _, _, people = eval_people("coco_mini")
    res = json.load(open(path))
    e = []
    for a, r in zip(people, res):
        assert r["image_id"] == a["image_id"]
        g = np.array(a["keypoints"], float).reshape(17, 3)
        pr = np.array(r["keypoints"], float).reshape(17, 3)
        M = crop_matrix(*square_box(a["bbox"], 0.25), 128)
        d = np.linalg.norm(apply_affine(M, g[:, :2]) - apply_affine(M, pr[:, :2]), axis=1)
        e += list(d[g[:, 2] > 0])
    e = np.array(e)
    print(f"{path}: n {len(e)} median {np.median(e):.1f} px, <8 px {np.mean(e < 8):.2f}, <16 px {np.mean(e < 16):.2f}, "
          f">32 px {np.mean(e > 32):.2f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    if sys.argv[1] == "--oracle":
        oracle()
    elif sys.argv[1] == "--errors":
        for p in sys.argv[2:]:
            errors(p)
    else:
        offsets_used_or_zeroed(sys.argv[1])
