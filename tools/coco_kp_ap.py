"""Keypoint AP of a COCO results file with pycocotools: prints the AP (IoU=.50:.95 OKS).

    python tools/coco_kp_ap.py ANNOTATIONS.json RESULTS.json [--verbose]
"""
import contextlib
import io
import json
import sys

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def main():
    ann, res = sys.argv[1], sys.argv[2]
    verbose = "--verbose" in sys.argv
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet if not verbose else sys.stdout):
        gt = COCO(ann)
        results = json.load(open(res))
        if not results:
            print("0.0000")
            return
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    print("%.4f" % ev.stats[0])


if __name__ == "__main__":
    main()
