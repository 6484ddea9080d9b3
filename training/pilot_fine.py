"""Pilot (float, not part of run.sh): stride-8 "fine" keypoint agents that refine the coarse
(stride-16) estimate of a finished keypoint run. Asked by tools/kp_errors.py's oracle: halving the
errors under one cell would lift GT-box AP from 0.177 to 0.279.

The fine agents read stride-8 features of the crop (Thunder's block_5_add, 56 channels, 24x24 at
192 px; frozen) and put a heatmap logit and x, y offsets on the 24x24 grid (agent shape as the
keypoint agents: 1x1 -> hidden, dw3x3, 1x1 -> 3). Variants:
  plain  the agents on the block_5 features as they are;
  neck   a fresh "64,dw,32" neck with batch norm first (fits the stem budget: 6.4 k params);
  fpn    an FPN-style neck: 1x1 lateral on block_5 (56 -> 32) plus the keypoint neck's output
         (48 channels, stride 16) through a 1x1 (48 -> 32) and a 2x nearest upsample, summed,
         ReLU6, dw3x3 (3.9 k params; the runtime would need an upsample op).
Decode: the run's coarse agents give the weighted pose; each fine agent takes its argmax within
the (2w+1)^2 fine cells around the coarse point's cell, w = 1, 2 or the whole grid ("free");
fine agents are fused by confidence as the coarse ones. Held-out coco_mini, GT boxes.

    python training/pilot_fine.py --run $CACHE/runs/final_s3 --variant fpn   # ~5 min on 2 threads
(the README's figures ran on runs/final_s3, the third session's run: coarse agents 0.181)
"""
import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

from body import load_student
from common import CACHE, coco_kp_ap, predict_split
from data import build_crops
from model import Agents, Conv, decode, normalise
from train import loss_fn, stem_head


def stride8_op(stem):
    """Index of the stride-8 tensor: what the expand conv before the 4th stride-2 conv reads."""
    s2 = [k for k, op in enumerate(stem.ops) if op[0] == "conv" and stem.convs[op[1]].conv.stride[0] == 2]
    return stem.ops[stem.ops[s2[3]][2]][2]


class FineNet(torch.nn.Module):
    def __init__(self, variant, c8, c16, agents, hidden):
        super().__init__()
        self.variant = variant
        if variant == "plain":
            self.neck, c = torch.nn.Sequential(), c8
        elif variant == "neck":
            self.neck, c = torch.nn.Sequential(Conv(c8, 64, 1, act="relu6", bn=True), Conv(64, 64, 3, 1, 64, "relu6", bn=True),
                                               Conv(64, 32, 1, act="relu6", bn=True)), 32
        else:
            c = 32
            self.lat = Conv(c8, c, 1, bn=True)
            self.top = Conv(c16, c, 1, bn=True)
            self.neck = torch.nn.Sequential(Conv(c, c, 3, 1, c, "relu6", bn=True))
        self.cin = c
        self.agents = Agents(c, agents, hidden, 1, 3)

    def forward(self, f8, f16):
        if self.variant == "fpn":
            f8 = F.relu6(self.lat(f8) + F.interpolate(self.top(f16), scale_factor=2, mode="nearest"))
        return self.agents(self.neck(f8))

    def neck_params(self):
        mods = [self.neck] + ([self.lat, self.top] if self.variant == "fpn" else [])
        return sum(p.numel() for m in mods for p in m.parameters())

    def fold_bn(self):
        for m in list(self.neck) + ([self.lat, self.top] if self.variant == "fpn" else []):
            m.fold_bn()


def refine(coarse, yf, agents, w):
    """coarse (17, 3) crop px, yf (17, A, 3, G, G) -> (17, 3): fine agents' fused point near the coarse one."""
    out = coarse.clone()
    g = yf.shape[-1]
    for k in range(17):
        fc, fr = int(coarse[k, 0] // 8), int(coarse[k, 1] // 8)
        r0, r1, c0, c1 = max(fr - w, 0), min(fr + w + 1, g), max(fc - w, 0), min(fc + w + 1, g)
        pts, conf = [], []
        for a in range(agents):
            lg = yf[k, a, 0, r0:r1, c0:c1]
            i = int(lg.argmax())
            r, c = r0 + i // (c1 - c0), c0 + i % (c1 - c0)
            pts.append([(c + 0.5 + float(yf[k, a, 1, r, c])) * 8, (r + 0.5 + float(yf[k, a, 2, r, c])) * 8])
            conf.append(float(torch.sigmoid(lg.max())))
        pts, conf = np.array(pts), np.array(conf)
        out[k, :2] = torch.from_numpy((pts * conf[:, None]).sum(0) / conf.sum())
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=os.path.join(CACHE, "runs", "final"))
    ap.add_argument("--variant", choices=["plain", "neck", "fpn"], default="fpn")
    ap.add_argument("--limit", type=int, default=2000, help="people (the pilot protocol of train.py)")
    ap.add_argument("--n-aug", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--agents", type=int, default=2, help="fine agents per keypoint")
    ap.add_argument("--sigma", type=float, default=0.8, help="target sigma in fine cells")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model, ta = load_student(a.run)
    stem, size = model.stem, ta["size"]
    k8 = stride8_op(stem)
    lab = dict(np.load(os.path.join(CACHE, "labels", "labels.npz")))
    t0 = time.time()
    crops, kps, _ = build_crops(lab, np.arange(a.limit), size, a.n_aug, 0)
    f8, f16 = [], []
    with torch.no_grad():
        for b in range(0, len(crops), 64):
            x = normalise(torch.from_numpy(crops[b:b + 64]), stem.norm)
            f8.append(stem_head(stem, x, k8 + 1).half())
            if a.variant == "fpn":
                f16.append(stem(x).half())
    f8 = torch.cat(f8)
    f16 = torch.cat(f16) if f16 else None
    del crops
    g = f8.shape[-1]
    print(f"stride-8 features {tuple(f8.shape)} (stem op {k8}) in {time.time() - t0:.0f}s", flush=True)
    hidden = 7 if a.variant == "plain" else 8  # <= 500 params per agent
    net = FineNet(a.variant, f8.shape[1], stem.cout, 17 * a.agents, hidden)
    print(f"variant {a.variant}: neck {net.neck_params()} params, {net.agents.params_per_agent(net.cin)} per fine agent",
          flush=True)
    kps_t, bag = torch.from_numpy(kps), torch.ones(len(kps), 17, a.agents)
    opt = torch.optim.AdamW(net.parameters(), 3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=a.epochs * ((len(f8) + 63) // 64), pct_start=0.05)
    gen = torch.Generator().manual_seed(0)
    for ep in range(a.epochs):
        net.train()
        perm = torch.randperm(len(f8), generator=gen)
        s_h = s_o = 0.0
        for b in range(0, len(perm), 64):
            j = perm[b:b + 64]
            y = net(f8[j].float(), None if f16 is None else f16[j].float()).view(len(j), 17, a.agents, 3, g, g)
            lh, lo = loss_fn(y, kps_t[j], bag[j], 8, a.sigma)
            opt.zero_grad()
            (lh + 2 * lo).backward()
            opt.step()
            sched.step()
            s_h += lh.item() * len(j)
            s_o += lo.item() * len(j)
        print(f"epoch {ep + 1}/{a.epochs} heat {s_h / len(perm):.3f} off {s_o / len(perm):.3f} (fine cells) "
              f"{time.time() - t0:.0f}s", flush=True)
    net.eval()
    net.fold_bn()
    for mode, w in [("coarse", None), ("fine, window 3x3", 1), ("fine, window 5x5", 2), ("fine, free", g)]:
        def pred(crop):
            with torch.no_grad():
                x = normalise(torch.from_numpy(crop)[None], stem.norm)
                coarse = decode(model(x), model.stride, "weighted")[0]
                if w is None:
                    return coarse.numpy()
                yf = net(stem_head(stem, x, k8 + 1), stem(x) if a.variant == "fpn" else None).view(17, a.agents, 3, g, g)
                return refine(coarse, yf, a.agents, w).numpy()
        res, _ = predict_split("coco_mini", pred, size)
        m = coco_kp_ap("coco_mini", res)
        print(f"{mode}: AP {m['AP']:.4f} AP50 {m['AP50']:.4f} AP75 {m['AP75']:.4f}", flush=True)


if __name__ == "__main__":
    main()
