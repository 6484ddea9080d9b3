"""Where end-to-end keypoint AP is lost: per held-out person, the best OKS (pycocotools' own
computeOks) of a results file, by person size, and optionally the share of people with
keypoints whose best detected box reaches IoU 0.5 (a body-tier results file, COCO bbox format).

    python tools/person_diag.py ANNOTATIONS RESULTS.json [--boxes BODY_BOXES.json --min-score 0.3]
"""
import argparse
import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("annotations")
    ap.add_argument("results")
    ap.add_argument("--boxes", help="body-tier boxes, COCO results with bbox and score")
    ap.add_argument("--min-score", type=float, default=0.3)
    a = ap.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(a.annotations)
        ev = COCOeval(gt, gt.loadRes(a.results), "keypoints")
        ev.evaluate()
    people = [g for g in gt.loadAnns(gt.getAnnIds(catIds=[1])) if not g["iscrowd"] and g["num_keypoints"] > 0]
    best = []
    for g in people:
        ious = ev.ious.get((g["image_id"], 1), [])
        gt_ids = [x["id"] for x in ev._gts[g["image_id"], 1]]
        col = gt_ids.index(g["id"])
        best.append(float(np.max(np.asarray(ious)[:, col])) if len(ious) else 0.0)
    best, area = np.array(best), np.array([g["area"] for g in people])
    print(f"{len(people)} people with keypoints; best OKS > 0.5: {np.mean(best > 0.5):.3f}")
    for name, lo, hi in [("medium", 32 ** 2, 96 ** 2), ("large", 96 ** 2, 1e12)]:
        m = (area >= lo) & (area < hi)
        if m.any():
            print(f"{name} ({m.sum()}): mean best OKS {best[m].mean():.3f}")
    if a.boxes:
        import json
        dets = [d for d in json.load(open(a.boxes)) if d["score"] > a.min_score]
        hit = 0
        for g in people:
            x0, y0, w, h = g["bbox"]
            for d in (d for d in dets if d["image_id"] == g["image_id"]):
                u0, v0, dw, dh = d["bbox"]
                iw = max(0.0, min(x0 + w, u0 + dw) - max(x0, u0))
                ih = max(0.0, min(y0 + h, v0 + dh) - max(y0, v0))
                if iw * ih / (w * h + dw * dh - iw * ih) >= 0.5:
                    hit += 1
                    break
        print(f"people with keypoints with a box at IoU >= 0.5 (score > {a.min_score}): {hit / len(people):.3f}")


if __name__ == "__main__":
    main()
