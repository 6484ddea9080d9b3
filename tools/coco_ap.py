#!/usr/bin/env python3
"""COCO keypoint AP (pycocotools, OKS) of a results JSON against an annotation file.

    python tools/coco_ap.py ANNOTATIONS.json RESULTS.json [--json]

Prints pycocotools' summary and, with --json, a last line {"AP": .., "AP50": .., "AP75": .., "AR": ..}.
An empty results list scores 0.
"""
import argparse
import contextlib
import io
import json

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("annotations")
    ap.add_argument("results")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    res = json.load(open(a.results))
    if not res:
        print("no results: AP 0")
        stats = [0.0] * 10
    else:
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(a.annotations)
            dt = gt.loadRes(a.results)
        e = COCOeval(gt, dt, "keypoints")
        with contextlib.redirect_stdout(io.StringIO()):
            e.evaluate()
            e.accumulate()
        e.summarize()
        stats = [float(v) for v in e.stats]
    if a.json:
        print(json.dumps({"AP": stats[0], "AP50": stats[1], "AP75": stats[2], "AR": stats[5]}))


if __name__ == "__main__":
    main()
