"""Content fingerprints of a training run's stages, to find where two machines' runs part.

    python training/fingerprint.py [--cache DIR] [--bundle FILE]

`run.sh` is deterministic on one machine, but the bundle it writes differs between CPU kinds
(training/README, "One command"). Run this on each machine's cache after `run.sh` (or after
any stage) and compare the lines: the first stage whose fingerprint differs is where the
arithmetic parted. Each line is a short SHA-256 of an artefact's *content*, so that what
differs only in form (absolute paths, pickling, zip timestamps) does not count:
- `.npz`: every array's dtype, shape and bytes; path strings cut to what follows `shared/data/`;
- `.pt`: the tensors and plain values of the object in order (torch.save's file bytes carry
  more than the values);
- `.json`: the text with paths cut the same way;
- the bundle: its bytes, which hold the cache path in their provenance notes (two runs with
  other caches differ there alone); the golden file beside it (`tests/data/bundle_golden.json`:
  the exported integer network's outputs on a fixed input) does not.
`results.json` files are left out: they hold timings.
"""
import argparse
import hashlib
import json
import os
import re

import numpy as np
import torch

from common import CACHE

DATA_PATH = re.compile(r"[^\"']*shared/data/")


def feed(h, obj):
    """Adds `obj` (tensors, arrays, containers, plain values) to the hash `h`, in order."""
    if isinstance(obj, torch.Tensor):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind == "U":
            obj = np.array([DATA_PATH.sub("", s) for s in obj.reshape(-1)]).reshape(obj.shape)
        h.update(f"{obj.dtype}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif isinstance(obj, dict):
        for k in obj:
            feed(h, k)
            feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}{len(obj)}".encode())
        for v in obj:
            feed(h, v)
    elif isinstance(obj, str):
        h.update(DATA_PATH.sub("", obj).encode())
    else:
        h.update(repr(obj).encode())


def fingerprint(path):
    h = hashlib.sha256()
    if path.endswith(".npz"):
        with np.load(path) as z:
            for k in sorted(z.files):
                feed(h, k)
                feed(h, z[k])
    elif path.endswith(".pt"):
        feed(h, torch.load(path, map_location="cpu", weights_only=False))
    elif path.endswith(".json"):
        h.update(DATA_PATH.sub("", open(path).read()).encode())
    else:
        h.update(open(path, "rb").read())
    return h.hexdigest()[:16]


def artefacts(cache):
    """The cache's labels, features, heatmaps, models and results, in the order run.sh makes them."""
    order = ["labels", "body", "feats", "runs"]
    for top in order:
        root = os.path.join(cache, top)
        for dirpath, dirs, files in sorted(os.walk(root)):
            dirs.sort()
            for f in sorted(files):
                if f.endswith((".npz", ".pt", ".json")) and f != "results.json":
                    yield os.path.join(dirpath, f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cache", default=CACHE, help="SWARMPOSE_TRAIN_CACHE of the run (default: %(default)s)")
    repo = os.path.join(os.path.dirname(__file__), "..")
    ap.add_argument("--bundle", default=os.path.join(repo, "models", "swarmpose.bundle"))
    ap.add_argument("--golden", default=os.path.join(repo, "tests", "data", "bundle_golden.json"))
    a = ap.parse_args()
    for path in artefacts(a.cache):
        print(f"{fingerprint(path)}  {os.path.relpath(path, a.cache)}", flush=True)
    for path, what in ((a.golden, "golden"), (a.bundle, "bundle")):
        if os.path.exists(path):
            print(f"{fingerprint(path)}  {os.path.relpath(path)} ({what})")


if __name__ == "__main__":
    main()
