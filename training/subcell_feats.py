"""Cache the finished stem's output (neck, 32 channels) for train.py's augmented crops (same crops, same seed).
Reads train.py's frozen-head feature cache when it exists; otherwise computes it and writes it too."""
import os, sys, time
import numpy as np
import torch
from common import CACHE
from data import build_crops
from model import normalise
from body import load_student
from train import feature_key, split_stem, stem_head, stem_tail
from subcell import neck_tag

torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
base = sys.argv[1] if len(sys.argv) > 1 else os.path.join(CACHE, "runs", "e1")
model, ta = load_student(base)
lab_path = ta["labels"]
lab = dict(np.load(lab_path))
n = len(lab["paths"]) if not ta.get("limit") else min(ta["limit"], len(lab["paths"]))
stem = model.stem
start = split_stem(stem, ta["train_blocks"])
key = feature_key(lab_path, ta, start, n)
out = os.path.join(CACHE, "feats", key + f"_neck_{neck_tag(base)}.pt")
hpath = os.path.join(CACHE, "feats", key + ".pt")
if os.path.exists(out):
    print("cached", out); sys.exit(0)
t0 = time.time()
heads, necks = [], []
if os.path.exists(hpath):
    # train.py's own cache of the frozen head over the same crops: only the trained tail + neck run here,
    # on exactly the fp16 features the stem tail was trained on
    cached, kps, pid = torch.load(hpath, weights_only=False)
    print(f"frozen-head features from {hpath}", flush=True)
    with torch.no_grad():
        for b in range(0, len(cached), 256):
            necks.append(stem_tail(stem, cached[b:b + 256].float(), start).half())
    necks = torch.cat(necks)
else:
    crops, kps, pid = build_crops(lab, np.arange(n), ta["size"], ta["n_aug"], ta["seed"], coco_aug=ta.get("coco_aug", 0),
                                 lowres=ta.get("lowres", 0.0))
    print(f"{len(crops)} crops {time.time()-t0:.0f}s", flush=True)
    with torch.no_grad():
        for b in range(0, len(crops), 64):
            x = normalise(torch.from_numpy(crops[b:b + 64]), stem.norm)
            h = stem_head(stem, x, start)
            heads.append(h.half())
            necks.append(stem_tail(stem, h, start).half())
            if b % 2560 == 0:
                print(f"{b}/{len(crops)} {time.time()-t0:.0f}s", flush=True)
    heads, necks = torch.cat(heads), torch.cat(necks)
if not os.path.exists(hpath):
    torch.save((heads, kps, pid), hpath + ".tmp"); os.replace(hpath + ".tmp", hpath)
torch.save((necks, kps, pid), out + ".tmp"); os.replace(out + ".tmp", out)
print("saved", out, tuple(necks.shape), f"{time.time()-t0:.0f}s", flush=True)
