"""Pilot (float, not part of run.sh): the body tier of a finished run at other letterbox sides,
mirrored, on corner tiles, and several of these merged by NMS (IoU 0.5), as COCO bbox AP on the
held-out coco_mini (pycocotools; all 80 photos). Asks whether inference alone can find more people.

    python training/pilot_body_scales.py --run $CACHE/runs/final_s3    # ~30 s per row on 2 threads
(the README's figures ran on runs/final_s3, the third session's run)
"""
import argparse
import contextlib
import io
import os

import cv2
import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import body as B
from common import CACHE, EVAL_SPLITS, letterbox_matrix, read_rgb
from model import normalise


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=os.path.join(CACHE, "runs", "final"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model, ta = B.load_student(a.run)
    B.use_side(ta["size"])
    net, _ = B.load_body(a.run, model.stem.cout, model.stem.cfeat)
    backbone = model.stem.backbone

    def boxes(img, side, window=None, mirror=False):
        """Body boxes (x0, y0, x1, y1, score) in image px from `window` of img letterboxed to side."""
        H, W = img.shape[:2]
        x0, y0, x1, y1 = window or (0, 0, W, H)
        sub = img[y0:y1, x0:x1]
        h, w = sub.shape[:2]
        M = letterbox_matrix(w, h, side)
        x = cv2.warpAffine(sub, M, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        batch = np.stack([x, x[:, ::-1]]) if mirror else x[None]
        with torch.no_grad():
            y = net(backbone(normalise(torch.from_numpy(np.ascontiguousarray(batch)), model.stem.norm))).mean(1).numpy()
        if mirror:  # the mirrored map back in the plain frame: cells reversed, x offset negated
            back = y[1][:, :, ::-1].copy()
            back[1] = -back[1] - 1.0 / B.STRIDE
            y = (y[0] + back) / 2
        else:
            y = y[0]
        out = []
        for bx0, by0, bx1, by1, score in B.decode_boxes(y, 0.01, 100):
            s, ox, oy = M[0, 0], M[0, 2], M[1, 2]
            box = [max((bx0 - ox) / s, 0) + x0, max((by0 - oy) / s, 0) + y0,
                   min((bx1 - ox) / s, w) + x0, min((by1 - oy) / s, h) + y0, score]
            if box[2] > box[0] and box[3] > box[1]:
                out.append(box)
        return out

    def nms(found, iou=0.5):
        kept = []
        for b in sorted(found, key=lambda b: -b[4]):
            if all(B.iou(np.array([b[:4]]), np.array([k[:4]]))[0, 0] <= iou for k in kept):
                kept.append(b)
        return kept

    def corners(img, f=0.6):
        H, W = img.shape[:2]
        tw, th = int(W * f), int(H * f)
        return [(0, 0, tw, th), (W - tw, 0, W, th), (0, H - th, tw, H), (W - tw, H - th, W, H)]

    ann_file, img_dir = EVAL_SPLITS["coco_mini"]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
    ids = sorted(gt.getImgIds())
    images = {i: read_rgb(os.path.join(img_dir, gt.loadImgs(i)[0]["file_name"])) for i in ids}
    rows = [
        ("192 (as shipped)", lambda im: boxes(im, 192)),
        ("256", lambda im: boxes(im, 256)),
        ("320", lambda im: boxes(im, 320)),
        ("192 mirrored too", lambda im: boxes(im, 192, mirror=True)),
        ("192 + 256, NMS", lambda im: nms(boxes(im, 192) + boxes(im, 256))),
        ("192 + 320, NMS", lambda im: nms(boxes(im, 192) + boxes(im, 320))),
        ("192 + 384, NMS", lambda im: nms(boxes(im, 192) + boxes(im, 384))),
        ("192 + 320 both mirrored too, NMS", lambda im: nms(boxes(im, 192, mirror=True) + boxes(im, 320, mirror=True))),
        ("192 + 4 corner tiles (0.6 of the frame) at 192, NMS",
         lambda im: nms(boxes(im, 192) + sum((boxes(im, 192, t) for t in corners(im)), []))),
    ]
    for name, find in rows:
        res = [{"image_id": i, "category_id": 1, "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                "score": float(b[4])} for i in ids for b in find(images[i])]
        with contextlib.redirect_stdout(io.StringIO()):
            ev = COCOeval(gt, gt.loadRes(res), "bbox")
            ev.params.catIds = [1]
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        print(f"{name:52s} AP {ev.stats[0]:.3f} AP50 {ev.stats[1]:.3f} AP medium {ev.stats[4]:.3f} "
              f"AP large {ev.stats[5]:.3f} AR100 {ev.stats[8]:.3f} ({len(res)} boxes)", flush=True)


if __name__ == "__main__":
    main()
