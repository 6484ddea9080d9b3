"""Where end-to-end keypoint AP is lost: per held-out person, the best OKS (pycocotools' own
computeOks) of a results file, by person size, and optionally the share of people with
keypoints whose best detected box reaches IoU 0.5 (a body-tier results file, COCO bbox format), and
optionally what the same people score with ground-truth boxes (`--gt-results`, from `eval-coco
--gt-boxes`): for the people found end to end, the OKS lost to imprecise boxes; for the others, what
finding them would be worth.

    python tools/person_diag.py ANNOTATIONS RESULTS.json [--boxes BODY_BOXES.json --min-score 0.3]
                                [--gt-results GT_RESULTS.json]
"""
import argparse
import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


FOUND_OKS = 0.05  # below this a "match" is chance: the person was not detected


def best_oks(gt, people, results):
    """Each person's best OKS (pycocotools' computeOks) against any pose of `results` in its image."""
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.evaluate()
    best = []
    for g in people:
        ious = ev.ious.get((g["image_id"], 1), [])
        gt_ids = [x["id"] for x in ev._gts[g["image_id"], 1]]
        best.append(float(np.max(np.asarray(ious)[:, gt_ids.index(g["id"])])) if len(ious) else 0.0)
    return np.array(best)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("annotations")
    ap.add_argument("results")
    ap.add_argument("--boxes", help="body-tier boxes, COCO results with bbox and score")
    ap.add_argument("--min-score", type=float, default=0.3)
    ap.add_argument("--gt-results", help="the same model's keypoint results on ground-truth boxes")
    a = ap.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(a.annotations)
    people = [g for g in gt.loadAnns(gt.getAnnIds(catIds=[1])) if not g["iscrowd"] and g["num_keypoints"] > 0]
    best, area = best_oks(gt, people, a.results), np.array([g["area"] for g in people])
    print(f"{len(people)} people with keypoints; best OKS > 0.5: {np.mean(best > 0.5):.3f}")
    for name, lo, hi in [("medium", 32 ** 2, 96 ** 2), ("large", 96 ** 2, 1e12)]:
        m = (area >= lo) & (area < hi)
        if m.any():
            print(f"{name} ({m.sum()}): mean best OKS {best[m].mean():.3f}")
    if a.gt_results:
        on_gt = best_oks(gt, people, a.gt_results)
        found = best > FOUND_OKS
        print(f"found end to end (best OKS > {FOUND_OKS}): {found.sum()} of {len(people)}; their mean OKS "
              f"{best[found].mean():.3f} end to end, {on_gt[found].mean():.3f} on ground-truth boxes; "
              f"the {(~found).sum()} others: {on_gt[~found].mean():.3f} on ground-truth boxes")
        for name, lo, hi in [("medium", 32 ** 2, 96 ** 2), ("large", 96 ** 2, 1e12)]:
            m = (area >= lo) & (area < hi)
            print(f"  {name}: {(m & found).sum()} of {m.sum()} found")
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
