"""Stage (b): label the training photos with the teachers, cached under $CACHE/labels/.

Sources (never the held-out coco_mini / mmpose): lspet (5000 photos, box from its GT joints)
and coco128_person (person boxes, YOLO format). For every person box: Thunder on the 256 px
square crop (25 % margin) and on its mirror image (flip-averaged), Lightning on the 192 px crop.
Stored per person: image path, box, thunder kp (17x3, image px + score), thunder flip-disagreement,
lightning kp (17x3), lspet GT mapped to COCO-17 (17x3, v=-1 where absent).

    python training/label.py [--limit N] [--out labels.npz] [--workers N]
"""
import argparse
import glob
import multiprocessing
import os
import time

import numpy as np
import scipy.io

from common import (CACHE, DATA, FLIP_PERM, Lightning, Thunder, apply_affine, crop_matrix, invert_affine, read_rgb,
                    square_box, warp)

# LSP index for each COCO-17 keypoint (-1: none)
LSP2COCO = [-1, -1, -1, -1, -1, 9, 8, 10, 7, 11, 6, 3, 2, 4, 1, 5, 0]


def sources(limit=None):
    items = []
    J = scipy.io.loadmat(os.path.join(DATA, "lspet/joints.mat"))["joints"]  # 14,3,N
    n = J.shape[2] if not limit else min(limit, J.shape[2])
    for i in range(n):
        j = J[:, :, i]
        ok = (j[:, 0] > 0) & (j[:, 1] > 0)
        if ok.sum() < 4:
            continue
        x0, y0 = j[ok, 0].min(), j[ok, 1].min()
        x1, y1 = j[ok, 0].max(), j[ok, 1].max()
        w, h = x1 - x0, y1 - y0
        # joints lie inside the body: pad the joint box a little to approximate a person box
        pad = 0.1 * max(w, h)
        box = [x0 - pad, y0 - pad, w + 2 * pad, h + 2 * pad]
        gt = np.full((17, 3), -1.0)
        for c, l in enumerate(LSP2COCO):
            if l >= 0 and ok[l]:
                gt[c] = [j[l, 0], j[l, 1], j[l, 2]]
        items.append((os.path.join(DATA, "lspet/images/im%05d.jpg" % (i + 1)), box, gt))
    paths = sorted(glob.glob(os.path.join(DATA, "coco128_person/images/*.jpg")))
    if limit:
        paths = paths[: max(2, limit // 50)]
    import cv2
    for p in paths:
        lab = p.replace("/images/", "/labels/").replace(".jpg", ".txt")
        hw = cv2.imread(p).shape[:2]
        for line in open(lab):
            c, cx, cy, w, h = map(float, line.split())
            if int(c) != 0:
                continue
            W, H = hw[1], hw[0]
            if w * W < 16 or h * H < 24:  # too small to carry keypoints
                continue
            items.append((p, [(cx - w / 2) * W, (cy - h / 2) * H, w * W, h * H], np.full((17, 3), -1.0)))
    return items


def label_chunk(chunk):
    """Teacher labels of consecutive items (one worker process, teachers on 1 thread each, made once per worker):
    (paths, boxes, thunder kp, thunder flip disagreement, lightning kp, gt)."""
    global _TEACHERS
    if _TEACHERS is None:
        _TEACHERS = Thunder(1), Lightning(1)
    th, li = _TEACHERS
    out, last = [], None
    for p, box, gt in chunk:
        if p != last:
            img, last = read_rgb(p), p
        cx, cy, side = square_box(box, 0.25)
        M = crop_matrix(cx, cy, side, 256)
        crop = warp(img, M, 256)
        a = th(crop)
        b = th(crop[:, ::-1].copy())[FLIP_PERM]
        b[:, 0] = 256 - b[:, 0]
        kp = (a + b) / 2
        dis = np.linalg.norm(a[:, :2] - b[:, :2], axis=1) / 256.0
        Mi = invert_affine(M)
        kp[:, :2] = apply_affine(Mi, kp[:, :2])
        M2 = crop_matrix(cx, cy, side, 192)
        lk = li(warp(img, M2, 192))
        lk[:, :2] = apply_affine(invert_affine(M2), lk[:, :2])
        out.append((p, box, kp, dis, lk, gt))
    return out


_TEACHERS = None  # (Thunder, Lightning) of this worker process


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--out", default=os.path.join(CACHE, "labels", "labels.npz"))
    ap.add_argument("--workers", type=int, default=1,
                    help="processes, each with single-threaded teachers: the labels do not depend on it")
    args = ap.parse_args()
    if os.path.exists(args.out):
        print("cached:", args.out)
        return
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    items = sources(args.limit)
    # Consecutive chunks (a photo's people stay together, read once), labelled in any order, kept in order.
    size = max(1, min(200, -(-len(items) // (4 * args.workers))))
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    rows, t0 = [], time.time()
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for done in pool.imap(label_chunk, chunks):
            rows.extend(done)
            el = time.time() - t0
            print(f"[label] {len(rows)}/{len(items)}  {el:.0f}s  eta {el / len(rows) * (len(items) - len(rows)):.0f}s",
                  flush=True)
    paths, boxes, TK, TD, LK, GK = zip(*rows)
    tmp = args.out + ".tmp.npz"  # atomic: a concurrent reader never sees a half-written cache
    np.savez_compressed(tmp, paths=np.array(paths), boxes=np.array(boxes, np.float32), thunder=np.array(TK, np.float32),
                        thunder_flip_dis=np.array(TD, np.float32), lightning=np.array(LK, np.float32), gt=np.array(GK, np.float32))
    os.replace(tmp, args.out)
    print("wrote", args.out, len(paths), "people", f"{time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
