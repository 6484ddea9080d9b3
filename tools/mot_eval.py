#!/usr/bin/env python3
"""Identity metrics (py-motmetrics) of tracker JSON lines against ground-truth JSON lines.

Both files hold swarmpose's per-frame JSON (one object per line, as `swarmpose run` and
swarmjson write it): persons with `id` and `bbox` [x, y, w, h]. Matching is box IoU >= 0.5,
the CLEAR-MOT / IDF1 convention. Persons with `id` null (tentative tracks) are ignored.

    python tools/mot_eval.py --gt gt.jsonl --pred run.jsonl [--json]

Prints one line: frames, gt track-frames, IDF1, ID switches, switches per 1000 gt
track-frames, MOTA, recall, precision (and the same as JSON with --json).
"""
import argparse
import json

import motmetrics as mm
import numpy as np


def read(path):
    frames = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                o = json.loads(line)
                frames[o["frame"]] = [(p["id"], p["bbox"]) for p in o["persons"] if p.get("id") is not None]
    return frames


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gt", required=True)
    ap.add_argument("--pred", required=True)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    gt, pred = read(a.gt), read(a.pred)
    acc = mm.MOTAccumulator(auto_id=True)
    for frame in sorted(gt):
        g = gt[frame]
        p = pred.get(frame, [])
        dist = mm.distances.iou_matrix(
            np.array([b for _, b in g], dtype=float).reshape(-1, 4),
            np.array([b for _, b in p], dtype=float).reshape(-1, 4),
            max_iou=0.5,
        )
        acc.update([i for i, _ in g], [i for i, _ in p], dist)
    mh = mm.metrics.create()
    s = mh.compute(acc, metrics=["num_frames", "num_objects", "idf1", "num_switches", "mota", "recall", "precision"],
                   name="run")
    r = {k: float(s[k].iloc[0]) for k in s.columns}
    r["switches_per_1000"] = 1000.0 * r["num_switches"] / max(r["num_objects"], 1.0)
    print(f"frames {int(r['num_frames'])} gt {int(r['num_objects'])} IDF1 {r['idf1']:.4f} "
          f"switches {int(r['num_switches'])} ({r['switches_per_1000']:.3f}/1000) MOTA {r['mota']:.4f} "
          f"recall {r['recall']:.4f} precision {r['precision']:.4f}")
    if a.json:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
