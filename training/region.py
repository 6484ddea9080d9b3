"""Region agents (the region tier): the box of the person a keypoint crop is centred on.

The body tier finds persons on the whole frame letterboxed to 192 px, where most people are 1-3 stem
cells tall, so its boxes are coarse (held-out coco_mini bbox AP 0.044, sizes often 30 % off). Every
person's crop then runs through the stem at 192 px for the keypoint agents, the person filling it.
Region agents read that same stem output (no extra stem pass) and predict the person's box inside
the crop, CenterNet-style like the body agents (centre logit, dx, dy in cells, log(w/16), log(h/16)
in crop px; 453 parameters each); averaged, the highest peak, mapped back through the crop
transform, is the refined box.

Training data: train.py's augmented crops (the same crops and seed; their finished-stem features are
subcell_feats.py's cache) with the box of the crop's person as the target: coco128_person's labelled
boxes, and for lspet the box of body.py's frame labels that overlaps the joint box best (IoU >= 0.3;
otherwise the crop is ignored): MultiPose's, or where MultiPose missed the person the padded joint
box that body.py's labelling added, so in practice every person has one. Crops rotated by more than MAX_ROT degrees are ignored
(an axis-aligned box does not survive the rotation). Other persons in a crop are negatives: the
agents learn to box the one the crop is centred on. Held out: coco_mini, where the crops are cut
around the body tier's own boxes (body_results_coco_mini.json of the run), as the plugin does.

    python training/region.py --run $CACHE/runs/final            # 226 s on 1 thread (busy machine), writes region.pt
"""
import argparse
import contextlib
import io
import json
import os
import time

import numpy as np
import torch

import body as B
from common import CACHE, EVAL_SPLITS, apply_affine, crop_matrix, invert_affine, read_rgb, run_log, square_box, warp
from data import build_crops
from model import decode, normalise
from subcell import neck_tag
from train import feature_key, split_stem

MAX_ROT = 10.0  # degrees


def person_boxes(lab, frames):
    """Per labelled person: its box (x0, y0, x1, y1 image px), or None where none is trusted."""
    by_path = {os.path.normpath(it["path"]): np.array(it["boxes"], np.float32).reshape(-1, 4) for it in frames}
    out = []
    for p, (x, y, w, h) in zip(lab["paths"], lab["boxes"]):
        b = np.array([[x, y, x + w, y + h]], np.float32)
        if "coco128_person" in str(p):  # a labelled person box
            out.append(b[0])
            continue
        cand = by_path.get(os.path.normpath(str(p)), np.zeros((0, 4), np.float32))
        o = B.iou(b, cand)[0] if len(cand) else np.zeros(0)
        out.append(cand[int(np.argmax(o))] if len(o) and o.max() >= 0.3 else None)
    return out


def crop_boxes(mats, pid, pboxes, size):
    """body.targets() input per crop: (target box (1,4) crop px, ignore boxes); untrusted crops fully ignored."""
    out, none, whole = [], np.zeros((0, 4), np.float32), np.array([[0, 0, size, size]], np.float32)
    for M, i in zip(mats, pid):
        b = pboxes[i]
        rot = np.degrees(np.arctan2(abs(M[1, 0]), abs(M[1, 1])))  # row 1 is unchanged by the mirror flip
        if b is None or rot > MAX_ROT:
            out.append((none, whole))
            continue
        c = apply_affine(M, np.array([[b[0], b[1]], [b[2], b[1]], [b[0], b[3]], [b[2], b[3]]], np.float64))
        t = np.array([[c[:, 0].min(), c[:, 1].min(), c[:, 0].max(), c[:, 1].max()]], np.float32)
        centre = (t[0, :2] + t[0, 2:]) / 2
        inside = (centre >= 0).all() and (centre < size).all()
        out.append((t, none) if inside else (none, whole))
    return out


def region_box(net, f):
    """Averaged region maps of one crop's stem output f (1,C,G,G) -> box (x0, y0, x1, y1 crop px)."""
    with torch.no_grad():
        y = net(f)[0].mean(0)
    return B.decode_boxes(y, thr=0.0, max_det=1)[0, :4]


def to_image(M, b):
    c = apply_affine(invert_affine(M), np.array([[b[0], b[1]], [b[2], b[3]]], np.float64))
    return [float(c[0, 0]), float(c[0, 1]), float(c[1, 0] - c[0, 0]), float(c[1, 1] - c[0, 1])]


def bbox_ap(gt, res):
    from pycocotools.cocoeval import COCOeval
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(res), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": float(ev.stats[0]), "AP50": float(ev.stats[1]), "AP75": float(ev.stats[2])}


def best_ious(gt, res):
    """Each detection's best IoU with a non-crowd person of its image (0 where there is none)."""
    v = []
    for r in res:
        g = np.array([a["bbox"] for a in gt.imgToAnns[r["image_id"]] if not a["iscrowd"]], np.float32).reshape(-1, 4)
        g[:, 2:] += g[:, :2]
        x, y, w, h = r["bbox"]
        v.append(B.iou(np.array([[x, y, x + w, y + h]], np.float32), g).max() if len(g) else 0.0)
    return np.array(v)


def evaluate(model, net, run, size, min_score=0.3, margin=0.25, limit=None):
    """Held-out coco_mini: the body tier's boxes (score > min_score) against the region agents' refinement
    of them, and a box from the keypoint agents' pose (extent + 10 % per side), all with the body score."""
    from pycocotools.coco import COCO
    ann, img_dir = EVAL_SPLITS["coco_mini"]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann)
    dets = [d for d in json.load(open(os.path.join(run, "body_results_coco_mini.json"))) if d["score"] > min_score]
    dets = dets[:limit] if limit else dets
    files = {im["id"]: im["file_name"] for im in gt.dataset["images"]}
    out = {"body": [], "region": [], "pose_extent": []}
    cache = {}
    for d in dets:
        if d["image_id"] not in cache:
            cache = {d["image_id"]: read_rgb(os.path.join(img_dir, files[d["image_id"]]))}
        cx, cy, side = square_box(d["bbox"], margin)
        M = crop_matrix(cx, cy, side, size)
        x = normalise(torch.from_numpy(warp(cache[d["image_id"]], M, size))[None], model.stem.norm)
        with torch.no_grad():
            f = model.stem(x)
            kp = decode(model(x), model.stride, "weighted")[0].numpy()
        rb = region_box(net, f)
        lo, hi = kp[:, :2].min(0), kp[:, :2].max(0)
        pad = 0.1 * (hi - lo).max()
        base = {"image_id": d["image_id"], "category_id": 1, "score": d["score"]}
        out["body"].append({**base, "bbox": d["bbox"]})
        out["region"].append({**base, "bbox": to_image(M, rb)})
        out["pose_extent"].append({**base, "bbox": to_image(M, np.r_[lo - pad, hi + pad])})
    # How well the boxes fit where the body tier did find someone: the same detections (body box IoU >= 0.3
    # with a person; two detections of one person both count) for every source of boxes.
    found = best_ious(gt, out["body"]) >= 0.3
    m = {}
    for k, v in out.items():
        fit = best_ious(gt, v)[found] if found.any() else np.zeros(1)
        m[k] = {**bbox_ap(gt, v), "n": len(v), "found": int(found.sum()), "found_mean_iou": float(fit.mean()),
                "found_iou_ge_0.5": float((fit >= 0.5).mean()), "found_iou_ge_0.75": float((fit >= 0.75).mean())}
    return m


def load_region(run, cin):
    """region.pt of a run -> the region agents (a BodyNet without neck) in eval mode."""
    rk = torch.load(os.path.join(run, "region.pt"), weights_only=False)
    net = B.BodyNet(cin, rk["n"])
    net.load_state_dict(rk["state"])
    net.eval()
    return net


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=os.path.join(CACHE, "runs", "final"))
    ap.add_argument("--agents", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--bag", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--eval-only", action="store_true", help="evaluate the run's region.pt")
    a = ap.parse_args()
    if a.smoke:
        a.agents, a.epochs = 2, 1
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    say = run_log(os.path.join(a.run, "log_region.txt"))
    say("[region] args", json.dumps(vars(a)))
    t_start = time.time()
    model, ta = B.load_student(a.run)
    B.use_side(ta["size"])
    if a.eval_only:
        net = load_region(a.run, model.stem(torch.zeros(1, 3, ta["size"], ta["size"])).shape[1])
        for k, v in evaluate(model, net, a.run, ta["size"]).items():
            say(f"[region/eval] coco_mini (held out) boxes from {k}, float: {json.dumps(v)}")
        return
    lab = dict(np.load(ta["labels"]))
    n = len(lab["paths"]) if not ta.get("limit") else min(ta["limit"], len(lab["paths"]))
    key = feature_key(ta["labels"], ta, split_stem(model.stem, ta["train_blocks"]), n)
    fpath = os.path.join(CACHE, "feats", key + f"_neck_{neck_tag(a.run)}.pt")
    feats, _, pid = torch.load(fpath, weights_only=False)  # written by subcell_feats.py (run.sh runs it first)
    mpath = os.path.join(CACHE, "feats", key + "_matrices.npy")
    if os.path.exists(mpath):
        mats = np.load(mpath)
    else:
        t0 = time.time()
        *_, mpid, mats = build_crops(lab, np.arange(n), ta["size"], ta["n_aug"], ta["seed"],
                                     coco_aug=ta.get("coco_aug", 0), lowres=ta.get("lowres", 0.0), matrices=True)
        assert (mpid == pid).all(), "the crops differ from the cached features' crops"
        np.save(mpath, mats)
        say(f"[region/data] crop matrices of {len(mats)} crops in {time.time() - t0:.0f}s")
    frames = B.label_frames(os.path.join(CACHE, "body" + ("_smoke" if a.smoke else ""), "frames.json"), a.smoke)
    pboxes = person_boxes(lab, frames)
    boxes = crop_boxes(mats, pid, pboxes, ta["size"])
    used = sum(len(b) for b, _ in boxes)
    say(f"[region/data] {len(boxes)} crops, {used} with a target box "
        f"({sum(b is not None for b in pboxes[:n])} of {n} people have a trusted box)")
    heat, reg, pos, ign = (torch.from_numpy(v) for v in B.targets(boxes))
    rng = np.random.default_rng(a.seed + 1)
    bag = (rng.random((len(lab["paths"]), a.agents)) < a.bag).astype(np.float32)
    bag[:, 0] = 1.0
    t0 = time.time()
    net = B.train_agents(feats, heat, reg, pos, ign, torch.from_numpy(bag[pid]), a.epochs, a.seed, say)
    t_train = time.time() - t0
    torch.save({"state": net.state_dict(), "n": a.agents, "args": vars(a), "bag": a.bag},
               os.path.join(a.run, "region.pt"))
    m = evaluate(model, net, a.run, ta["size"], limit=10 if a.smoke else None)
    for k, v in m.items():
        say(f"[region/eval] coco_mini (held out) boxes from {k}, float: {json.dumps(v)}")
    rp = os.path.join(a.run, "results.json")
    r = json.load(open(rp)) if os.path.exists(rp) else {}
    r["region"] = {"coco_mini_float": m, "train_seconds": t_train, "total_seconds": time.time() - t_start,
                   "crops": len(boxes), "crops_with_box": used, "agents": a.agents, "epochs": a.epochs}
    json.dump(r, open(rp, "w"), indent=1)
    say(f"[region] done in {time.time() - t_start:.0f}s")


if __name__ == "__main__":
    main()
