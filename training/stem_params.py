"""Parameters and MACs of a stem shape before training it: the backbone plus the keypoint neck, unfolded (residual
adds kept, as trained) and folded (each add turned into pass-through channels, as export.py ships it and as the
1 M stem budget counts it). The budget counts the body neck on top (body.py's 224,dw,48 on the backbone's output).

  python training/stem_params.py --upto block_12_add --skip 7,8,9,11 --stem-out 224,dw,48 [--size 192]
"""
import argparse

import torch

from export import count, fold_sequential
from model import Student
from body import body_neck


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upto", default="block_9_add")
    ap.add_argument("--skip", default="")
    ap.add_argument("--prune", default="")
    ap.add_argument("--stem-out", default="448,dw,48")
    ap.add_argument("--body-neck", default="224,dw,48")
    ap.add_argument("--size", type=int, default=192)
    a = ap.parse_args()
    model = Student(a.upto, a.stem_out, 3, 8, 1, 16, prune=a.prune, skip=a.skip).eval()
    unfolded = sum(p.numel() for p in model.stem.parameters())
    with torch.no_grad():
        stem_layers, _ = fold_sequential(model, torch.randn(2, 3, a.size, a.size))
    folded, macs, grid = count(stem_layers, a.size)
    neck, _ = body_neck(model.stem.cfeat, a.body_neck)
    body = sum(p.numel() for m in neck for p in m.conv.parameters())  # batch norm folds away
    print(f"stem {a.upto} skip={a.skip or '-'} prune={a.prune or '-'} neck {a.stem_out}: unfolded {unfolded}, "
          f"folded {folded}, MACs {macs} at {a.size} px (grid {grid}x{grid}); body neck {a.body_neck} {body}; "
          f"folded + body neck {folded + body} (budget 1000000)")


if __name__ == "__main__":
    main()
