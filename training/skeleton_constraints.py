"""Learns the skeleton constraints of swarmconsensus' validator agents from the TRAINING labels
(teacher poses on lspet + coco128_person, $CACHE/labels/labels.npz from training/label.py; never
the held-out coco_mini) and writes them as a small JSON compiled into the plugin.

    /work/cache/train/venv/bin/python training/skeleton_constraints.py \
        [--labels /work/cache/train/labels/labels.npz] [--out models/skeleton_constraints.json]

Per person (teacher keypoints with score >= 0.3, flip disagreement < 0.05 of the crop), in
box-relative units (u = (x - box x) / box w, v likewise; lengths / max(box w, box h)):
- position: per keypoint, the 0.5 and 99.5 percentiles of u and v;
- limbs: per COCO skeleton link, the 0.5 and 99.5 percentiles of its length;
- lr: per left/right pair, how often its order (sign of x_left - x_right, when apart by more
  than 5 % of the box) agrees with the person's facing (majority order of shoulders and hips);
- angles: per elbow/knee, the 0.5 and 99.5 percentiles of the joint angle in degrees.
"""
import argparse
import json
import os

import numpy as np

SKELETON = [(15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8), (7, 9),
            (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)]
LR = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]
ANGLES = [(5, 7, 9), (6, 8, 10), (11, 13, 15), (12, 14, 16)]
LO, HI = 0.5, 99.5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--labels", default="/work/cache/train/labels/labels.npz")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "models", "skeleton_constraints.json"))
    ap.add_argument("--min-score", type=float, default=0.3)
    args = ap.parse_args()
    d = np.load(args.labels)
    kp, box, dis = d["thunder"].astype(np.float64), d["boxes"].astype(np.float64), d["thunder_flip_dis"]
    ok = (kp[:, :, 2] >= args.min_score) & (dis < 0.05)
    bx, by, bw, bh = (box[:, i:i + 1] for i in range(4))
    bw, bh = np.maximum(bw, 1.0), np.maximum(bh, 1.0)
    u, v = (kp[:, :, 0] - bx) / bw, (kp[:, :, 1] - by) / bh
    scale = np.maximum(bw, bh)[:, 0]

    def pct(x):
        return [round(float(np.percentile(x, LO)), 4), round(float(np.percentile(x, HI)), 4)] if len(x) else [0.0, 0.0]

    position = [{"u": pct(u[ok[:, k], k]), "v": pct(v[ok[:, k], k])} for k in range(17)]
    limbs = []
    for a, b in SKELETON:
        m = ok[:, a] & ok[:, b]
        length = np.hypot(kp[m, a, 0] - kp[m, b, 0], kp[m, a, 1] - kp[m, b, 1]) / scale[m]
        limbs.append({"a": a, "b": b, "length": pct(length), "n": int(m.sum())})
    # facing: majority order of shoulders and hips
    dx = kp[:, :, 0]
    facing = np.zeros(len(kp))
    for l, r in [(5, 6), (11, 12)]:
        m = ok[:, l] & ok[:, r]
        facing += np.where(m, np.sign(dx[:, l] - dx[:, r]), 0)
    lr = []
    for l, r in LR:
        m = ok[:, l] & ok[:, r] & (np.abs(dx[:, l] - dx[:, r]) > 0.05 * scale) & (facing != 0)
        agree = np.sign(dx[m, l] - dx[m, r]) == np.sign(facing[m])
        lr.append({"left": l, "right": r, "agree": round(float(agree.mean()), 4) if m.any() else 0.0, "n": int(m.sum())})
    angles = []
    for a, b, c in ANGLES:
        m = ok[:, a] & ok[:, b] & ok[:, c]
        v1 = kp[m, a, :2] - kp[m, b, :2]
        v2 = kp[m, c, :2] - kp[m, b, :2]
        cos = (v1 * v2).sum(1) / np.maximum(np.linalg.norm(v1, axis=1) * np.linalg.norm(v2, axis=1), 1e-6)
        ang = np.degrees(np.arccos(np.clip(cos, -1, 1)))
        angles.append({"a": a, "joint": b, "c": c, "degrees": pct(ang), "n": int(m.sum())})
    out = {
        "source": "teacher (MoveNet Thunder, flip-averaged) poses of lspet + coco128_person, labels.npz; "
                  "made by training/skeleton_constraints.py",
        "persons": int(len(kp)),
        "percentiles": [LO, HI],
        "position": position,
        "limbs": limbs,
        "lr": lr,
        "angles": angles,
    }
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(args.out), "from", len(kp), "persons")
    for k, p in enumerate(position):
        print(k, p)
    for l in limbs:
        print(l)
    for l in lr:
        print(l)
    for a in angles:
        print(a)


if __name__ == "__main__":
    main()
