"""Distil MoveNet Thunder into stem + per-keypoint agents; evaluate on held-out coco_mini with GT boxes.

Pipeline (all seeded):
  1. teacher labels (label.py cache)          2. augmented square crops, keypoints follow transforms
  3. frozen part of the transferred stem run once per crop -> cached features (fp16)
  4. train the stem's tail + neck + agents on the cache (heatmap BCE + sub-pixel offset L1); with --soft the
     heatmap target is Thunder's own heatmap of each crop near the label (computed once, cached; with
     --soft-from plain: of each person's unaugmented crop, warped into its augmented ones)
  5. pycocotools keypoint AP (GT boxes) of the fused agents, float; then export + int8 simulation (export.py)

    python training/train.py --out /work/cache/train/runs/final          # full run
    python training/train.py --smoke --out /work/cache/train/runs/smoke  # CI smoke: tiny subset, minutes
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from common import CACHE, coco_kp_ap, exit_on_check_args, predict_split, run_log
from data import build_crops
from model import Student, decode, normalise, parse_prune


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(CACHE, "runs", "final"))
    ap.add_argument("--labels", default=os.path.join(CACHE, "labels", "labels.npz"))
    ap.add_argument("--size", type=int, default=128, help="crop side in px")
    ap.add_argument("--upto", default="block_9_add",
                    help='last transferred Thunder tensor ("lightning:<tensor>": MoveNet Lightning\'s backbone)')
    ap.add_argument("--train-blocks", type=int, default=1, help="trailing residual blocks of the stem that are fine-tuned")
    ap.add_argument("--stem-out", default="32", help='trainable neck: "32" or e.g. "96,dw,32"')
    ap.add_argument("--neck-bn", action="store_true",
                    help="batch norm in the fresh neck while training (folded into its convs before saving)")
    ap.add_argument("--prune", default="",
                    help='hidden channels kept per Thunder block, e.g. "7:244,11:366" (chosen by importance; "" = all)')
    ap.add_argument("--skip", default="",
                    help='residual blocks of the backbone left out, e.g. "7,8,9,11" (README "Deeper Thunder features")')
    ap.add_argument("--train-from", type=int, default=0,
                    help="first Thunder block that is trained (0: the last --train-blocks residual blocks)")
    ap.add_argument("--distill", type=float, default=0.0,
                    help="weight of a loss pulling the trained backbone's output to unpruned Thunder's (0 = none)")
    ap.add_argument("--distill-epochs", type=int, default=0,
                    help="first train the blocks from --train-from on only to match unpruned Thunder's backbone output "
                         "for this many epochs, then freeze them but the last --train-blocks and train as usual")
    ap.add_argument("--distill-lr", type=float, default=1e-3, help="peak learning rate of --distill-epochs")
    ap.add_argument("--soft", type=float, default=0.0,
                    help="weight of Thunder's own keypoint heatmaps (run on each augmented crop, max-pooled to the "
                         "student's grid) in the heatmap target; the rest is the Gaussian around the label (0 = none)")
    ap.add_argument("--soft-from", choices=("crop", "plain"), default="crop",
                    help="--soft heatmaps from Thunder run on every augmented crop (crop), or on each person's "
                         "unaugmented first crop only, warped into the others by their affine (plain: one Thunder "
                         "run per person instead of per crop)")
    ap.add_argument("--max-stride", type=int, default=16, help="output stride of the stem (8: later stride-2 convs run at 1)")
    ap.add_argument("--apk", type=int, default=3, help="agents per keypoint")
    ap.add_argument("--hidden", type=int, default=8)
    ap.add_argument("--depth", type=int, default=1)
    ap.add_argument("--n-aug", type=int, default=4, help="crops per person (first unaugmented)")
    ap.add_argument("--coco-aug", type=int, default=0,
                    help="crops per person of a COCO photo (coco128_person); 0 = --n-aug")
    ap.add_argument("--lowres", type=float, default=0.0,
                    help="share of augmented crops seen at 1/3..1 of the crop's resolution, then upsampled")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--lr-stem", type=float, default=3e-4)
    ap.add_argument("--sigma", type=float, default=0.8, help="target Gaussian sigma in cells")
    ap.add_argument("--off-weight", type=float, default=2.0, help="weight of the offset loss against the heatmap loss")
    ap.add_argument("--bag", type=float, default=0.8, help="fraction of persons each agent trains on")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N labelled people")
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--check-args", default=None, metavar="MODEL_PT",
                    help="exit 0 if MODEL_PT was trained with these arguments (all but out/threads/eval-every), else 1")
    a = ap.parse_args()
    if a.check_args:
        saved = torch.load(a.check_args, weights_only=False)["args"]
        exit_on_check_args("train", ap, a, saved, ("out", "threads", "eval_every", "check_args"))
    if a.smoke:
        a.limit, a.n_aug, a.epochs, a.eval_every = 60, 2, 2, 1
        a.labels = os.path.join(CACHE, "labels", "labels_smoke.npz")
    return a


def feature_key(labels, args, start, n):
    """Name of the frozen-head feature cache of train.py's crops (subcell_feats.py finds it by the same name)."""
    coco = f"_coco{args['coco_aug']}" if args.get("coco_aug") else ""
    coco += f"_lr{args['lowres']}" if args.get("lowres") else ""
    coco += f"_skip{args['skip'].replace(',', '-')}" if args.get("skip") else ""
    return (f"{os.path.basename(labels)}_{os.path.getsize(labels)}_s{args['size']}_{args['upto']}_op{start}"
            f"_ms{args.get('max_stride', 16)}_aug{args['n_aug']}{coco}_seed{args['seed']}_n{n}")


def split_stem(stem, train_blocks):
    """Index of the first stem op that is trained: the start of the last `train_blocks` residual blocks."""
    adds = [k for k, op in enumerate(stem.ops) if op[0] == "add"]
    if train_blocks <= 0:
        return len(stem.ops)
    # a residual block ends at its add and starts right after the previous block's output
    end_prev = adds[-train_blocks - 1] if len(adds) > train_blocks else None
    start = adds[-train_blocks] - 3 if end_prev is None else end_prev + 1
    return start


def stem_head(stem, x, start):
    outs = []
    for op in stem.ops[:start]:
        if op[0] == "conv":
            outs.append(stem.convs[op[1]](x if op[2] == -1 else outs[op[2]]))
        else:
            outs.append(outs[op[1]] + outs[op[2]])
    return outs[start - 1]


def run_ops(stem, h, start, end):
    """Outputs of the stem's ops start..end-1 by op index, given the output `h` of op start - 1."""
    outs = {start - 1: h}
    for k in range(start, end):
        op = stem.ops[k]
        outs[k] = stem.convs[op[1]](outs[op[2]]) if op[0] == "conv" else outs[op[1]] + outs[op[2]]
    return outs


def stem_tail(stem, h, start, neck=True):
    """The stem from op `start` on, given the output `h` of op start - 1; with neck=False the backbone's output."""
    f = run_ops(stem, h, start, len(stem.ops))[len(stem.ops) - 1]
    return stem.neck(f) if neck and stem.neck is not None else f


def teacher_var(teacher):
    """The teacher outputs' mean square (over the first 512 crops): the scale of the relative distillation MSE."""
    return float(teacher[:512].float().pow(2).mean())


def distill_stage(stem, feats, teacher, start, a, say):
    """Train the backbone's convs from op `start` on to reproduce unpruned Thunder's output (MSE relative to the
    teacher's mean square), without labels: the pruned blocks relearn what the dropped channels carried."""
    convs = [stem.convs[op[1]] for op in stem.ops[start:] if op[0] == "conv"]
    params = [p for m in convs for p in m.parameters()]
    for p in stem.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=a.distill_lr, weight_decay=1e-5)
    steps = a.distill_epochs * ((len(feats) + a.bs - 1) // a.bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.distill_lr, total_steps=steps, pct_start=0.05)
    t_var = teacher_var(teacher)
    g = torch.Generator().manual_seed(a.seed + 2)
    t0 = time.time()
    for ep in range(a.distill_epochs):
        perm = torch.randperm(len(feats), generator=g)
        tot = 0.0
        for b in range(0, len(perm), a.bs):
            j = perm[b:b + a.bs]
            fb = stem_tail(stem, feats[j].float(), start, neck=False)
            loss = (fb - teacher[j].float()).pow(2).mean() / t_var
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(j)
        el = time.time() - t0
        say(f"[distill] epoch {ep + 1}/{a.distill_epochs} relative MSE {tot / len(perm):.4f} {el / 60:.1f} min, "
            f"eta {el / (ep + 1) * (a.distill_epochs - ep - 1) / 60:.1f} min")
    for p in params:
        p.requires_grad_(False)


def prune_stem(stem, feats, start, spec, say, n=512):
    """Prune the hidden channels of the blocks in `spec` ({block: kept}) of the unpruned stem: keep those
    with the largest mean depthwise output times the L2 norm of the project weights reading them (how much
    the block's output moves when a channel is dropped, to first order), measured on `n` cached crops."""
    dws = {b: stem.blocks[b][1] for b in spec}
    assert all(k >= start for k in dws.values()), "--prune: pruned blocks must be trained (--train-from)"
    with torch.no_grad():
        outs = run_ops(stem, feats[:n].float(), start, len(stem.ops))
    for b, h in spec.items():
        wp = stem.transferred[stem.blocks[b][2]]["w"][:, :, 0, 0]
        imp = outs[dws[b]].mean((0, 2, 3)).numpy() * np.linalg.norm(wp, axis=0)
        keep = np.sort(np.argsort(-imp, kind="stable")[:h])
        stem.prune_hidden(b, keep)
        say(f"[prune] block {b}: {h} of {len(imp)} hidden channels kept ({imp[keep].sum() / imp.sum():.0%} of the importance)")


def soft_path(fpath, a):
    """The --soft heatmaps' cache file beside the features (--soft-from plain has its own)."""
    return fpath[:-3] + ("_soft.pt" if a.soft_from == "crop" else "_soft_plain.pt")


# crop pixel x -> Thunder heatmap cell u of that crop (the crop resized to 256 px, stride 4: cell u's centre is
# crop pixel 3u + 1), as a 3x3 affine
CROP_TO_HEAT = np.array([[1 / 3, 0, -1 / 3], [0, 1 / 3, -1 / 3], [0, 0, 1]])


def warp_heatmaps(plain, M0, M):
    """Heatmaps (17,64,64) of the crop with image->crop affine M0, carried into the crop with affine M: each cell of
    the new crop samples (bilinear, 0 outside) the point of the first crop that shows the same image point, and a
    mirrored crop takes the mirrored keypoint's channel (as make_crop does with the labels)."""
    import cv2
    from common import FLIP_PERM, invert_affine
    full = lambda m: np.vstack([m, [0, 0, 1]])
    H = (CROP_TO_HEAT @ full(M0) @ full(invert_affine(M)) @ np.linalg.inv(CROP_TO_HEAT))[:2]  # new cell -> first's
    src = plain[FLIP_PERM] if np.linalg.det(M[:, :2]) * np.linalg.det(M0[:, :2]) < 0 else plain
    return np.stack([cv2.warpAffine(c, H, (64, 64), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderValue=0)
                     for c in src])


def soft_targets(fpath, lab, idx, a, stride, kps, pid, say, crops=None, mats=None):
    """Thunder's keypoint heatmaps (its sigmoid output at stride 4) of every augmented crop, the crop resized to
    Thunder's 256 px, max-pooled to the student's grid: (N, 17, G, G) half. Cached beside the features; `crops`
    (and their affines `mats`) are the features' crops, rebuilt (same seed) when not given. --soft-from plain runs
    Thunder on each person's first, unaugmented crop only and warps that heatmap into the person's other crops."""
    spath = soft_path(fpath, a)
    if os.path.exists(spath):
        return torch.load(spath, weights_only=False)
    import multiprocessing
    from common import thunder_heatmaps
    if crops is None or mats is None:
        crops, kps2, pid2, mats = build_crops(lab, idx, a.size, a.n_aug, a.seed, coco_aug=a.coco_aug,
                                           lowres=a.lowres, matrices=True)
        assert np.array_equal(kps2, kps) and np.array_equal(pid2, pid), "rebuilt crops differ from the features' crops"
    G = a.size // stride
    out, t0 = [], time.time()
    if a.soft_from == "plain":
        soft = plain_soft_targets(crops, mats, pid, a, G, say)
        torch.save(soft, spath + ".tmp")
        os.replace(spath + ".tmp", spath)
        say(f"[soft] Thunder heatmaps of {len(crops)} crops from their persons' plain crops {tuple(soft.shape)}, "
            f"mean peak {soft.float().amax((-1, -2)).mean():.2f}, {time.time() - t0:.0f}s")
        return soft
    # One single-threaded Thunder per thread, in worker processes, 250 crops a chunk (the same bits as one
    # Thunder on all threads, in 458 instead of 596 s on the full run); pooled here as chunks come back, in order.
    chunks = [crops[b:b + 250] for b in range(0, len(crops), 250)]
    with multiprocessing.get_context("spawn").Pool(a.threads) as pool:
        for i, h in enumerate(pool.imap(thunder_heatmaps, chunks)):
            out.append(F.adaptive_max_pool2d(torch.from_numpy(h), G).half())
            b = i * 250
            if b % 2000 == 0:
                el = time.time() - t0
                say(f"[soft] {b}/{len(crops)} {el:.0f}s eta {el / (b + 250) * (len(crops) - b - 250):.0f}s")
    soft = torch.cat(out)
    torch.save(soft, spath + ".tmp")
    os.replace(spath + ".tmp", spath)
    say(f"[soft] Thunder heatmaps {tuple(soft.shape)}, mean peak {soft.float().amax((-1, -2)).mean():.2f}")
    return soft


def plain_soft_targets(crops, mats, pid, a, G, say):
    """--soft-from plain: Thunder on each person's first crop (build_crops makes it unaugmented; a person's crops
    are consecutive), in worker processes as in soft_targets, then warped into the person's other crops."""
    import multiprocessing
    from common import thunder_heatmaps
    starts = np.flatnonzero(np.r_[True, pid[1:] != pid[:-1]])  # each person's first crop
    ends = np.r_[starts[1:], len(crops)]
    out, t0, done = [], time.time(), 0
    chunks = [np.arange(b, min(b + 250, len(starts))) for b in range(0, len(starts), 250)]  # person numbers
    with multiprocessing.get_context("spawn").Pool(a.threads) as pool:
        for people, plain in zip(chunks, pool.imap(thunder_heatmaps, [crops[starts[c]] for c in chunks])):
            for s, e, h in zip(starts[people], ends[people], plain):
                warped = np.stack([h] + [warp_heatmaps(h, mats[s], mats[i]) for i in range(s + 1, e)])
                out.append(F.adaptive_max_pool2d(torch.from_numpy(warped), G).half())
            done += len(people)
            if done % 1000 == 0 or done == len(starts):
                el = time.time() - t0
                say(f"[soft] {done}/{len(starts)} persons {el:.0f}s eta {el / done * (len(starts) - done):.0f}s")
    return torch.cat(out)


def _cell_distances(kps, G, stride):
    """kps (B,17,3) crop px + weight -> dx (B,17,1,G), dy (B,17,G,1) in cells from each cell centre, and the
    positive mask (B,17,1,1)."""
    c = (torch.arange(G).float() + 0.5)
    kx, ky = kps[..., 0] / stride, kps[..., 1] / stride
    dx = kx[..., None, None] - c[None, None, None, :]
    dy = ky[..., None, None] - c[None, None, :, None]
    return dx, dy, (kps[..., 2] > 0).float()[..., None, None]


def gaussian_heat(kps, G, stride, sigma):
    """The Gaussian heat target (B,17,G,G) around each positive keypoint."""
    dx, dy, pos = _cell_distances(kps, G, stride)
    return torch.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2)) * pos


def targets(kps, G, stride, sigma):
    """kps (B,17,3) crop px + weight -> heat target (B,17,G,G), offset target (B,17,2,G,G), offset mask."""
    dx, dy, pos = _cell_distances(kps, G, stride)
    d2 = dx ** 2 + dy ** 2
    heat = torch.exp(-d2 / (2 * sigma ** 2)) * pos
    off = torch.stack([dx.expand_as(d2), dy.expand_as(d2)], 2)
    omask = (d2 <= 1.5 ** 2).float() * pos
    return heat, off, omask


def grid_scale(h, w):
    """The heatmap loss is a sum over the grid, which grows with the crop. Scaled to the 8x8 grid of a
    128 px crop (exactly 1 there), larger crops keep the balance with the offset loss; unscaled, the
    fresh neck did not learn at 192 px."""
    return 64.0 / (h * w)


def loss_fn(y, kps, bagmask, stride, sigma, soft=None, soft_w=0.0):
    B, K, A, _, G, _ = y.shape
    heat, off, omask = targets(kps, G, stride, sigma)
    if soft is not None:
        # Thunder's heat near this person's label only (a 3-cell Gaussian window): the crop may show other people,
        # whose joints Thunder's map also lights up
        window = gaussian_heat(kps, G, stride, 3.0)
        heat = (1 - soft_w) * heat + soft_w * soft * window
    kw = (kps[..., 2] != 0).float()[:, :, None] * bagmask  # B,17,A
    bce = F.binary_cross_entropy_with_logits(y[:, :, :, 0], heat[:, :, None].expand(-1, -1, A, -1, -1), reduction="none")
    lh = (bce.sum((-1, -2)) * kw).sum() / kw.sum().clamp_min(1) * grid_scale(G, G)
    l1 = F.smooth_l1_loss(y[:, :, :, 1:3], off[:, :, None].expand(-1, -1, A, -1, -1, -1), reduction="none", beta=0.1)
    m = omask[:, :, None, None] * bagmask[..., None, None, None]
    lo = (l1 * m).sum() / m.sum().clamp_min(1)
    return lh, lo


def evaluate(model, size, split="coco_mini", fuse="weighted", limit=None, forward=None):
    model.eval()
    norm = model.stem.norm

    def pred(crop):
        with torch.no_grad():
            x = normalise(torch.from_numpy(crop)[None], norm)
            y = model(x) if forward is None else forward(x)
            return decode(y, model.stride, fuse)[0].numpy()

    res, spc = predict_split(split, pred, size, limit=limit)
    return coco_kp_ap(split, res), spc


def main():
    a = parse()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    t_start = time.time()
    say = run_log(os.path.join(a.out, "log.txt"))

    say("args", json.dumps(vars(a)))
    if not os.path.exists(a.labels):
        import subprocess, sys
        cmd = [sys.executable, os.path.join(os.path.dirname(__file__), "label.py"), "--out", a.labels]
        if a.limit:
            cmd += ["--limit", str(a.limit)]
        subprocess.check_call(cmd)
    lab = dict(np.load(a.labels))
    n = len(lab["paths"]) if not a.limit else min(a.limit, len(lab["paths"]))
    idx = np.arange(n)

    model = Student(a.upto, a.stem_out, a.apk, a.hidden, a.depth, a.max_stride, neck_bn=a.neck_bn,
                    skip=a.skip)  # unpruned
    stem = model.stem
    start = stem.blocks[a.train_from][0] if a.train_from else split_stem(stem, a.train_blocks)
    say(f"stem: {len(stem.ops)} ops, trainable from op {start}; stride {model.stride}")

    # 2-3. augmented crops -> frozen stem features, cached on disk (keyed by everything they depend on)
    key = feature_key(a.labels, vars(a), start, n)
    soft = None  # Thunder's heatmaps of the crops (--soft)
    fpath = os.path.join(CACHE, "feats", key + ".pt")
    if os.path.exists(fpath):
        feats, kps, pid = torch.load(fpath, weights_only=False)
        say(f"[features] cached {fpath}")
    else:
        t0 = time.time()
        crops, kps, pid, mats = build_crops(lab, idx, a.size, a.n_aug, a.seed, coco_aug=a.coco_aug,
                                            lowres=a.lowres, matrices=True)
        say(f"[data] {len(crops)} crops from {n} people in {time.time() - t0:.0f}s; "
            f"positive kp {(kps[..., 2] > 0).mean():.2f} absent {(kps[..., 2] < 0).mean():.2f}")
        t0 = time.time()
        feats = []
        with torch.no_grad():
            for b in range(0, len(crops), 64):
                x = normalise(torch.from_numpy(crops[b:b + 64]), stem.norm)
                feats.append(stem_head(stem, x, start).half())
                if b % 1280 == 0:
                    el = time.time() - t0
                    say(f"[features] {b}/{len(crops)} {el:.0f}s eta {el / (b + 64) * (len(crops) - b):.0f}s")
        feats = torch.cat(feats)
        say(f"[features] {tuple(feats.shape)} in {time.time() - t0:.0f}s")
        os.makedirs(os.path.dirname(fpath), exist_ok=True)
        torch.save((feats, kps, pid), fpath + ".tmp")
        os.replace(fpath + ".tmp", fpath)
        if a.soft:  # while the crops are in memory
            soft = soft_targets(fpath, lab, idx, a, model.stride, kps, pid, say, crops=crops, mats=mats)
        del crops, mats
    if a.soft and soft is None:
        soft = soft_targets(fpath, lab, idx, a, model.stride, kps, pid, say)
    teacher = None
    if a.distill or a.distill_epochs:
        # unpruned Thunder's backbone output of every crop, the target of the distillation loss
        tpath = fpath[:-3] + "_teacher.pt"
        if os.path.exists(tpath):
            teacher = torch.load(tpath, weights_only=False)
        else:
            with torch.no_grad():
                teacher = torch.cat([stem_tail(stem, feats[b:b + 256].float(), start, neck=False).half()
                                     for b in range(0, len(feats), 256)])
            torch.save(teacher, tpath + ".tmp")
            os.replace(tpath + ".tmp", tpath)
        t_var = teacher_var(teacher)
        say(f"[distill] teacher backbone outputs {tuple(teacher.shape)}")
    if a.prune:
        prune_stem(stem, feats, start, parse_prune(a.prune), say)
    if a.distill_epochs:
        distill_stage(stem, feats, teacher, start, a, say)
        # the distilled blocks are frozen from here on: their output becomes the cached features
        end = split_stem(stem, a.train_blocks)
        with torch.no_grad():
            feats = torch.cat([run_ops(stem, feats[b:b + 256].float(), start, end)[end - 1].half()
                               for b in range(0, len(feats), 256)])
        say(f"[distill] frozen up to op {end - 1}; features {tuple(feats.shape)}")
        start = end
    kps_t = torch.from_numpy(kps)
    rng = np.random.default_rng(a.seed + 1)
    bag = torch.from_numpy((rng.random((len(lab["paths"]), 17, a.apk)) < a.bag).astype(np.float32))
    bag[:, :, 0] = 1.0  # agent 0 of each keypoint sees every person
    bag_t = bag[torch.from_numpy(pid)]

    # 4. train tail + neck + agents
    for p in stem.parameters():
        p.requires_grad_(False)
    tail = [stem.convs[op[1]] for op in stem.ops[start:] if op[0] == "conv"]
    tail_params = [p for m in tail for p in m.parameters()]
    for p in tail_params:
        p.requires_grad_(True)
    new_params = list(stem.neck.parameters()) + list(model.agents.parameters())
    for p in new_params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW([{"params": new_params, "lr": a.lr, "weight_decay": 1e-4},
                             {"params": tail_params, "lr": a.lr_stem, "weight_decay": 1e-5}])
    steps = a.epochs * ((len(feats) + a.bs - 1) // a.bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, [a.lr, a.lr_stem], total_steps=steps, pct_start=0.05)
    g = torch.Generator().manual_seed(a.seed)
    t0, step, hist = time.time(), 0, []
    for ep in range(a.epochs):
        model.train()
        perm = torch.randperm(len(feats), generator=g)
        s_lh = s_lo = s_ld = 0.0
        for b in range(0, len(perm), a.bs):
            j = perm[b:b + a.bs]
            fb = stem_tail(stem, feats[j].float(), start, neck=False)
            y = model.agents(stem.neck(fb) if stem.neck is not None else fb)
            y = y.view(y.shape[0], 17, a.apk, 3, y.shape[-2], y.shape[-1])
            lh, lo = loss_fn(y, kps_t[j], bag_t[j], model.stride, a.sigma,
                             None if soft is None else soft[j].float(), a.soft)
            loss = lh + a.off_weight * lo
            if a.distill:
                ld = (fb - teacher[j].float()).pow(2).mean() / t_var
                loss = loss + a.distill * ld
                s_ld += ld.item() * len(j)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            s_lh += lh.item() * len(j); s_lo += lo.item() * len(j)
        el = time.time() - t0
        msg = (f"[train] epoch {ep + 1}/{a.epochs} heat {s_lh / len(perm):.4f} off {s_lo / len(perm):.4f} "
               + (f"distill {s_ld / len(perm):.4f} " if a.distill else "") +
               f"{el / 60:.1f} min, eta {el / (ep + 1) * (a.epochs - ep - 1) / 60:.1f} min")
        if (ep + 1) % a.eval_every == 0 or ep + 1 == a.epochs:
            m, _ = evaluate(model, a.size, limit=20 if a.smoke else None)
            msg += f" | held-out coco_mini AP {m['AP']:.4f}"
            hist.append({"epoch": ep + 1, **m})
        say(msg)
    train_min = (time.time() - t_start) / 60
    model.eval()
    model.fold_bn()
    torch.save({"args": vars(a), "state": model.state_dict()}, os.path.join(a.out, "model.pt"))

    # 5. final float evaluation, both fusions, both held-out splits
    res = {"train_minutes_total": round(train_min, 2), "history": hist}
    for split in ["coco_mini", "mmpose_coco"]:
        for fuse in ["weighted", "best"]:
            m, spc = evaluate(model, a.size, split, fuse, limit=20 if a.smoke else None)
            res[f"{split}_{fuse}_float"] = m
            say(f"[eval] {split} fuse={fuse} float AP {m['AP']:.4f} AP50 {m['AP50']:.4f} ({spc * 1000:.1f} ms/crop torch)")
    json.dump(res, open(os.path.join(a.out, "results.json"), "w"), indent=1)
    say(f"[done] {train_min:.1f} min")


if __name__ == "__main__":
    main()
