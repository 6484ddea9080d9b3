"""The two ways of computing train.py's --soft heatmaps, on a slice of the full run's labels (run.sh's crops):
    OMP_NUM_THREADS=1 python training/check_heatmaps.py [--people 300] [--coco 60]
1. Thunder(heatmap=True) (the graph cut at the heatmap head) against the full graph with the heatmap as an extra
   output: ms a crop, one thread, three alternating sittings, and whether the heatmaps are equal.
2. --soft-from plain (Thunder on each person's unaugmented crop, warped into the others) against --soft-from crop
   (Thunder on every crop, 2 worker processes): seconds, pooled difference, and the 64x64 argmax's distance to the
   hard label (which comes from Thunder on the unaugmented crop, so it favours the warp)."""
import argparse
import multiprocessing
import os
import time
import types

import numpy as np
import torch
import torch.nn.functional as F

import train as T
from common import CACHE, TEACHERS, Thunder, thunder_heatmaps
from data import build_crops


def graph_cut(crops):
    import onnx
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    m = onnx.load(os.path.join(TEACHERS, "movenet-thunder.onnx"))
    m.graph.output.append(onnx.helper.make_tensor_value_info(Thunder.HEATMAP, onnx.TensorProto.FLOAT, None))
    full = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    ways = {"full graph": lambda c: full.run([Thunder.HEATMAP], {"input:0": c[None].astype(np.int32)})[0][0],
            "cut": Thunder(1, heatmap=True).heatmap}
    import cv2
    crops = [cv2.resize(c, (256, 256), interpolation=cv2.INTER_LINEAR) for c in crops]
    for sitting in range(3):
        res = {}
        for name, f in ways.items():
            t = time.time()
            res[name] = np.stack([f(c) for c in crops])
            print(f"[cut] sitting {sitting + 1}: {name} {(time.time() - t) / len(crops) * 1000:.1f} ms a crop")
        print(f"[cut] equal: {np.array_equal(res['full graph'], res['cut'])}")


def plain_vs_crop(crops, kps, pid, mats):
    G, a = 12, types.SimpleNamespace(threads=2)
    t = time.time()
    plain = T.plain_soft_targets(crops, mats, pid, a, G, lambda *s: None).float().numpy()
    t_plain = time.time() - t
    t = time.time()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        ref = np.concatenate(list(pool.imap(thunder_heatmaps, [crops[b:b + 250] for b in range(0, len(crops), 250)])))
    t_crop = time.time() - t
    pooled = F.adaptive_max_pool2d(torch.from_numpy(ref), G).half().float().numpy()
    first = np.r_[True, pid[1:] != pid[:-1]]
    print(f"[plain] {first.sum()} people, {len(crops)} crops: plain {t_plain:.1f} s, every crop {t_crop:.1f} s")
    print(f"[plain] first crops equal: {np.array_equal(pooled[first], plain[first])}; augmented crops: mean |diff| "
          f"{np.abs(pooled - plain)[~first].mean():.4f} per pooled cell, mean cell {pooled[~first].mean():.4f}")
    # argmax of the 64x64 heatmaps (cell u's centre is crop pixel 3u + 1) against the hard label, visible keypoints
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(crops)]
    warped = np.concatenate([np.stack([ref[s]] + [T.warp_heatmaps(ref[s], mats[s], mats[i]) for i in range(s + 1, e)])
                             for s, e in zip(starts, ends)])
    vis = (kps[..., 2] > 0) & ~first[:, None]

    def err(h):
        u = np.stack(np.unravel_index(h.reshape(*h.shape[:2], -1).argmax(-1), (64, 64)), -1)[..., ::-1] * 3 + 1
        return np.linalg.norm(u - kps[..., :2], axis=-1)[vis]
    print(f"[plain] argmax to hard label, {vis.sum()} visible keypoints of augmented crops, median / mean px: "
          f"every crop {np.median(err(ref)):.2f} / {err(ref).mean():.2f}, plain {np.median(err(warped)):.2f} / "
          f"{err(warped).mean():.2f}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--people", type=int, default=300, help="first lspet people of the labels")
    ap.add_argument("--coco", type=int, default=60, help="last (coco128_person) people of the labels")
    a = ap.parse_args()
    path = os.path.join(CACHE, "labels", "labels.npz")
    if not os.path.exists(path):
        raise SystemExit(f"no {path}: run `bash training/run.sh --threads 2` first")
    lab = dict(np.load(path))
    n = len(lab["paths"])
    idx = np.r_[np.arange(a.people), np.arange(n - a.coco, n)]
    crops, kps, pid, mats = build_crops(lab, idx, 192, 4, 0, coco_aug=24, matrices=True)  # run.sh's crop arguments
    graph_cut(crops[:200])
    plain_vs_crop(crops, kps, pid, mats)


if __name__ == "__main__":
    main()
