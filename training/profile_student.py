"""Where one keypoint-student training step spends its time, on the full run's cached features:
    OMP_NUM_THREADS=2 python training/profile_student.py [--threads 2] [--channels-last]
prints the step's forward / loss / backward / optimiser milliseconds (40 steps of 64 crops, after 10 warm-up
steps), torch.profiler's top operators, and each 1x1 convolution of the student timed as conv2d and as a
plain matmul on (B*H*W, C) rows (forward + backward). Needs a finished `run.sh` cache (features + soft heatmaps)."""
import argparse
import glob
import os
import time

import torch
import torch.nn.functional as F

import train as T
from common import CACHE
from model import Student


def timed(f, n=20):
    for _ in range(3):
        f()
    t = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - t) / n * 1000


def conv_vs_matmul(B=64, G=12):
    for cin, cout in ((112, 672), (672, 112), (112, 448), (448, 48)):
        x = torch.randn(B, cin, G, G, requires_grad=True)
        w = torch.randn(cout, cin, 1, 1, requires_grad=True)
        xr = torch.randn(B * G * G, cin, requires_grad=True)
        wr = torch.randn(cin, cout, requires_grad=True)

        def conv():
            y = F.conv2d(x, w)
            y.backward(torch.ones_like(y))

        def mm():
            y = xr @ wr
            y.backward(torch.ones_like(y))
        print(f"1x1 {cin}->{cout}: conv2d {timed(conv):.1f} ms, matmul {timed(mm):.1f} ms (forward + backward)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels-last", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    found = sorted(f for f in glob.glob(os.path.join(CACHE, "feats", "labels.npz_*_s192_*.pt"))
                   if "_neck_" not in f and "_soft" not in f)
    if not found:
        raise SystemExit(f"no full-run features in {CACHE}/feats: run `bash training/run.sh --threads 2` first")
    fpath = found[0]
    feats, kps, _ = torch.load(fpath, weights_only=False)
    soft_files = [fpath[:-3] + e for e in ("_soft.pt", "_soft_plain.pt") if os.path.exists(fpath[:-3] + e)]
    if not soft_files:
        raise SystemExit(f"no soft heatmaps beside {fpath}: run `bash training/run.sh --threads 2` first")
    soft = torch.load(soft_files[0], weights_only=False)  # run.sh's own first; the values do not change a step's time
    model = Student("block_9_add", "448,dw,48", 3, 8, 1, 16, neck_bn=True)  # run.sh's student
    stem = model.stem
    start = T.split_stem(stem, 1)
    for p in stem.parameters():
        p.requires_grad_(False)
    tail = [p for op in stem.ops[start:] if op[0] == "conv" for p in stem.convs[op[1]].parameters()]
    new = list(stem.neck.parameters()) + list(model.agents.parameters())
    for p in tail + new:
        p.requires_grad_(True)
    opt = torch.optim.AdamW([{"params": new, "lr": 1e-3}, {"params": tail, "lr": 1e-4}])
    model.train()
    if a.channels_last:
        model.to(memory_format=torch.channels_last)
    kps_t, bag = torch.from_numpy(kps), torch.ones(64, 17, 3)
    perm = torch.randperm(len(feats), generator=torch.Generator().manual_seed(0))

    def step(j, parts=None):
        t = [time.perf_counter()]
        x = feats[j].float()
        if a.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = model.agents(stem.neck(T.stem_tail(stem, x, start, neck=False)))
        y = y.view(y.shape[0], 17, 3, 3, y.shape[-2], y.shape[-1])
        t.append(time.perf_counter())
        lh, lo = T.loss_fn(y, kps_t[j], bag, 16, 0.8, soft[j].float(), 1.0)
        loss = lh + 2.0 * lo
        t.append(time.perf_counter())
        opt.zero_grad()
        loss.backward()
        t.append(time.perf_counter())
        opt.step()
        t.append(time.perf_counter())
        if parts is not None:
            for k, (t0, t1) in zip(("forward", "loss", "backward", "optimiser"), zip(t, t[1:])):
                parts[k] = parts.get(k, 0.0) + (t1 - t0) * 1000

    batches = [perm[b:b + 64] for b in range(0, 50 * 64, 64)]
    for j in batches[:10]:
        step(j)
    parts = {}
    for j in batches[10:]:
        step(j, parts)
    print({k: round(v / 40, 1) for k, v in parts.items()}, f"ms per step; total {sum(parts.values()) / 40:.1f} ms")
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for j in batches[:20]:
            step(j)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
    conv_vs_matmul()


if __name__ == "__main__":
    main()
