"""Keypoint agents only, on the FROZEN stem of a finished run (default runs/e1 = the shipped stem, so the
body agents trained on it stay valid). Agents read the cached stem output (subcell_feats.py).

--kp-ch 6: sub-cell heatmap heads ("depth-to-space in the decoder"): channels 0..3 = heatmap logits of the 4
sub-cells of the agent's cell, s = 2*sy + sx (row-major: top-left, top-right, bottom-left, bottom-right),
4, 5 = dx, dy in SUB-CELL units relative to that sub-cell's centre; decode: model.decode_subcell.
--kp-ch 3: the old head (logit, dx, dy in cells) retrained the same way, as a control.

Targets: Gaussian on the 16x16 sub-cell grid (sigma in sub-cells), BCE (summed over the grid) or CenterNet
focal; smooth-L1 offsets at every cell within --orad cells of the keypoint, relative to the sub-cell of that cell
nearest to the keypoint (= the sub-cell the argmax would pick there).

    python training/subcell.py --out /work/cache/train/runs/sc1 --epochs 30
"""
import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from body import load_student
from common import CACHE, exit_on_check_args, run_log
from model import Student
from train import evaluate, grid_scale


def neck_tag(run):
    """Names a run's neck-feature cache: the run folder and its model.pt's mtime, so a retrained stem never
    reads another stem's features."""
    return f"{os.path.basename(os.path.normpath(run))}_{int(os.path.getmtime(os.path.join(run, 'model.pt')))}"


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default=os.path.join(CACHE, "runs", "e1"))
    ap.add_argument("--feats", default=None, help="neck feature cache (default: the one subcell_feats.py writes for --base)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--kp-ch", type=int, default=6)
    ap.add_argument("--apk", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--bs", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--sigma", type=float, default=0.9, help="Gaussian sigma (sub-cells for kp-ch 6, cells for 3)")
    ap.add_argument("--soft", type=float, default=0.0,
                    help="kp-ch 3: weight of Thunder's heatmaps in the heat target, as train.py --soft (its cache)")
    ap.add_argument("--loss", default="bce", choices=["bce", "focal"])
    ap.add_argument("--w-off", type=float, default=2.0)
    ap.add_argument("--orad", type=float, default=1.5, help="offset loss on cells within this many cells")
    ap.add_argument("--beta", type=float, default=0.1, help="smooth-L1 beta")
    ap.add_argument("--off-target", default="nearest", choices=["nearest", "argmax"],
                    help="kp-ch 6: offsets relative to the sub-cell nearest the keypoint, or to the sub-cell the "
                         "agent's own (detached) logits pick in that cell, i.e. the one the decode will use")
    ap.add_argument("--bag", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true", help="CI: 1 epoch, evaluation on 20 crops")
    ap.add_argument("--check-args", default=None, metavar="MODEL_PT",
                    help="exit 0 if MODEL_PT was trained with these arguments (all but base/feats/out/threads/"
                         "eval-every), else 1")
    a = ap.parse_args()
    if a.check_args:
        saved = torch.load(a.check_args, weights_only=False)["args"].get("agents_only", {})
        exit_on_check_args("subcell", ap, a, saved, ("base", "feats", "out", "threads", "eval_every", "check_args"))
    if a.out is None:
        ap.error("--out is required")
    if a.smoke:
        a.epochs, a.eval_every = 1, 1
    return a


def heat_and_offsets(y, kps, kp_ch, stride):
    """y: B,K,A,C,8,8 -> heat logits on the target grid (B,K,A,G,G), offsets (B,K,A,2,8,8)."""
    B, K, A, C, H, W = y.shape
    if kp_ch == 6:
        h = F.pixel_shuffle(y[:, :, :, 0:4].reshape(B * K * A, 4, H, W), 2).view(B, K, A, 2 * H, 2 * W)
        return h, y[:, :, :, 4:6]
    return y[:, :, :, 0], y[:, :, :, 1:3]


def make_targets(kps, H, W, stride, kp_ch, sigma, orad):
    sub = 2 if kp_ch == 6 else 1
    G = H * sub
    u = stride / sub  # target grid unit in px
    kx, ky = kps[..., 0] / u, kps[..., 1] / u  # B,K in grid units
    g = torch.arange(G).float() + 0.5
    d2 = (kx[..., None, None] - g[None, None, None, :]) ** 2 + (ky[..., None, None] - g[None, None, :, None]) ** 2
    pos = (kps[..., 2] > 0).float()
    heat = torch.exp(-d2 / (2 * sigma ** 2)) * pos[..., None, None]
    # offsets per cell (H, W), relative to the sub-cell of that cell nearest to the keypoint, in grid units
    c = torch.arange(W).float()
    if sub == 2:
        sx = (torch.floor(kx)[..., None] - 2 * c).clamp(0, 1)  # B,K,W
        sy = (torch.floor(ky)[..., None] - 2 * c).clamp(0, 1)
        ox = kx[..., None] - (2 * c + sx + 0.5)
        oy = ky[..., None] - (2 * c + sy + 0.5)
    else:
        ox = kx[..., None] - (c + 0.5)
        oy = ky[..., None] - (c + 0.5)
    off = torch.stack([ox[..., None, :].expand(-1, -1, H, W), oy[..., :, None].expand(-1, -1, H, W)], 2)  # B,K,2,H,W
    cd2 = (kps[..., 0, None, None] / stride - (c[None, None, None, :] + 0.5)) ** 2 + \
          (kps[..., 1, None, None] / stride - (c[None, None, :, None] + 0.5)) ** 2
    omask = (cd2 <= orad ** 2).float() * pos[..., None, None]
    return heat, off, omask


def loss_fn(y, kps, bagmask, a, stride, soft=None):
    B, K, A, C, H, W = y.shape
    hl, ol = heat_and_offsets(y, kps, a.kp_ch, stride)
    heat, off, omask = make_targets(kps, H, W, stride, a.kp_ch, a.sigma, a.orad)
    if soft is not None:  # as train.loss_fn: Thunder's heat in a 3-cell window around the label
        window = make_targets(kps, H, W, stride, a.kp_ch, 3.0, a.orad)[0]
        heat = (1 - a.soft) * heat + a.soft * soft * window
    kw = (kps[..., 2] != 0).float()[:, :, None] * bagmask  # B,K,A
    ht = heat[:, :, None].expand_as(hl)
    if a.loss == "bce":
        l = F.binary_cross_entropy_with_logits(hl, ht, reduction="none").sum((-1, -2))
    else:
        p = torch.sigmoid(hl).clamp(1e-4, 1 - 1e-4)
        is_pos = (ht > 0.99).float()  # the peak cell (sigma ~ 1: exactly one cell is >= 0.99 away from ties)
        posl = -((1 - p) ** 2) * torch.log(p) * is_pos
        negl = -((1 - ht) ** 4) * (p ** 2) * torch.log(1 - p) * (1 - is_pos)
        l = (posl + negl).sum((-1, -2))
    lh = (l * kw).sum() / kw.sum().clamp_min(1) * grid_scale(H, W)
    ot = off[:, :, None].expand_as(ol)
    if a.kp_ch == 6 and a.off_target == "argmax":
        s = y[:, :, :, 0:4].detach().argmax(3)  # B,K,A,H,W
        c = torch.arange(W).float()
        kx, ky = kps[..., 0] / (stride / 2), kps[..., 1] / (stride / 2)
        ox = kx[:, :, None, None, None] - (2 * c + (s % 2).float() + 0.5)
        oy = ky[:, :, None, None, None] - (2 * c[:, None] + (s // 2).float() + 0.5)
        ot = torch.stack([ox, oy], 3)
    l1 = F.smooth_l1_loss(ol, ot, reduction="none", beta=a.beta)
    m = omask[:, :, None, None] * bagmask[..., None, None, None]
    lo = (l1 * m).sum() / m.sum().clamp_min(1)
    return lh, lo


def main():
    a = parse()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    os.makedirs(a.out, exist_ok=True)
    say = run_log(os.path.join(a.out, "log.txt"))

    say("args", json.dumps(vars(a)))
    base, ta = load_student(a.base)
    fpath = a.feats
    if fpath is None:
        import glob
        fpath = glob.glob(os.path.join(CACHE, "feats", f"*_neck_{neck_tag(a.base)}.pt"))[0]
    feats, kps, pid = torch.load(fpath, weights_only=False)
    say(f"[features] {fpath} {tuple(feats.shape)}")
    soft = None
    if a.soft:  # train.py --soft's cache for the same crops
        assert a.kp_ch == 3, "--soft needs --kp-ch 3"
        from train import soft_path
        soft_from = argparse.Namespace(soft_from=ta.get("soft_from", "crop"))  # as the base student was trained
        soft = torch.load(soft_path(fpath.split("_neck_")[0] + ".pt", soft_from), weights_only=False)
        assert len(soft) == len(feats)
    kps_t = torch.from_numpy(kps)
    targs = {**ta, "apk": a.apk, "hidden": a.hidden, "kp_ch": a.kp_ch, "bag": a.bag, "seed": a.seed,
             "agents_only": vars(a)}
    model = Student(ta["upto"], ta["stem_out"], a.apk, a.hidden, ta["depth"], ta.get("max_stride", 16), a.kp_ch,
                    prune=ta.get("prune", ""), skip=ta.get("skip", ""))
    st = {k: v for k, v in base.state_dict().items() if not k.startswith("agents.")}
    missing, _ = model.load_state_dict(st, strict=False)
    assert all(k.startswith("agents.") for k in missing)
    ppa = model.agents.params_per_agent(model.stem.cout)
    say(f"[agents] {17 * a.apk} agents x {ppa} params = {17 * a.apk * ppa}")
    n_people = int(pid.max()) + 1
    rng = np.random.default_rng(a.seed + 1)
    bag = torch.from_numpy((rng.random((n_people, 17, a.apk)) < a.bag).astype(np.float32))
    bag[:, :, 0] = 1.0
    bag_t = bag[torch.from_numpy(pid)]
    for p in model.parameters():
        p.requires_grad_(False)
    params = list(model.agents.parameters())
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=a.wd)
    steps = a.epochs * ((len(feats) + a.bs - 1) // a.bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=steps, pct_start=0.05)
    g = torch.Generator().manual_seed(a.seed)
    t0, hist = time.time(), []
    for ep in range(a.epochs):
        model.agents.train()
        perm = torch.randperm(len(feats), generator=g)
        s_lh = s_lo = 0.0
        for b in range(0, len(perm), a.bs):
            j = perm[b:b + a.bs]
            y = model.agents(feats[j].float())
            y = y.view(y.shape[0], 17, a.apk, a.kp_ch, y.shape[-2], y.shape[-1])
            lh, lo = loss_fn(y, kps_t[j], bag_t[j], a, model.stride, None if soft is None else soft[j].float())
            loss = lh + a.w_off * lo
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            s_lh += lh.item() * len(j); s_lo += lo.item() * len(j)
        el = time.time() - t0
        msg = f"[train] epoch {ep + 1}/{a.epochs} heat {s_lh / len(perm):.4f} off {s_lo / len(perm):.4f} {el / 60:.1f} min"
        if (ep + 1) % a.eval_every == 0 or ep + 1 == a.epochs:
            m, _ = evaluate(model, ta["size"], limit=20 if a.smoke else None)
            msg += f" | coco_mini AP {m['AP']:.4f} AP50 {m['AP50']:.4f}"
            hist.append({"epoch": ep + 1, **m})
        say(msg)
    train_min = (time.time() - t0) / 60
    torch.save({"args": targs, "state": model.state_dict()}, os.path.join(a.out, "model.pt"))
    res = {"train_minutes_agents": round(train_min, 2), "params_per_agent": ppa, "history": hist,
           "base": a.base, "features": fpath}
    for split in ["coco_mini", "mmpose_coco"]:
        for fuse in ["weighted", "best"]:
            m, spc = evaluate(model, ta["size"], split, fuse, limit=20 if a.smoke else None)
            res[f"{split}_{fuse}_float"] = m
            say(f"[eval] {split} fuse={fuse} float AP {m['AP']:.4f} AP50 {m['AP50']:.4f}")
    json.dump(res, open(os.path.join(a.out, "results.json"), "w"), indent=1)
    say(f"[done] agents {train_min:.1f} min")


if __name__ == "__main__":
    main()

