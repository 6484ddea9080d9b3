"""Fold the trained student into the runtime's op set, export it, and simulate int8.

* fold_sequential(): every MobileNetV2 residual block  x -> expand(relu6) -> dw3x3(relu6) -> project -> + x
  becomes three plain convs: expand gets 2C extra output channels relu6(+x/s), relu6(-x/s); the depthwise conv
  passes them through (centre tap 1); project adds s*(p - n) = x. Exact in float while |x| <= 6 s
  (s calibrated per block). No Add op needed in the runtime.
* export_bundle(): the ONE place that writes the file format (npz weights + JSON layer description);
  retarget it to the runtime's binary bundle format later.
* Int8 simulation: per-output-channel symmetric int8 weights, per-tensor symmetric int8 activations
  (calibrated max on training crops), input x/127.5-1 quantised with scale 1/127.5.

    python training/export.py --run /work/cache/train/runs/final
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F

from model import Student, decode, normalise, same_pad

ACT = {"none": lambda x: x, "relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid}


def L(w, b, stride, groups, act):
    return {"w": np.asarray(w, np.float32), "b": np.asarray(b, np.float32), "stride": int(stride),
            "groups": int(groups), "act": act}


def conv_of(m):
    return m.conv.weight.detach().numpy(), m.conv.bias.detach().numpy()


def fold_sequential(model, calib_x):
    """Sequential layer list of the stem (backbone with folded residuals + neck), one list per agent."""
    stem = model.stem
    # block-input magnitudes for the pass-through scale s
    outs = []
    with torch.no_grad():
        for op in stem.ops:
            if op[0] == "conv":
                outs.append(stem.convs[op[1]](calib_x if op[2] == -1 else outs[op[2]]))
            else:
                outs.append(outs[op[1]] + outs[op[2]])
    layers, k = [], 0
    ops = stem.ops
    while k < len(ops):
        op = ops[k]
        is_block = (k + 3 < len(ops) and ops[k + 3][0] == "add" and op[0] == "conv" and ops[k + 1][2] == k
                    and ops[k + 2][2] == k + 1 and k + 2 in ops[k + 3][1:])
        if is_block:
            e, d, p = (stem.convs[ops[k + i][1]] for i in range(3))
            a, b = ops[k + 3][1], ops[k + 3][2]
            x_idx = a if a != k + 2 else b
            assert ops[k][2] == x_idx and e.act == "relu6" and d.act == "relu6" and p.act == "none" and d.stride == 1
            C = e.conv.in_channels
            s = float(outs[x_idx].abs().max()) / 6.0 * 1.05 + 1e-6
            we, be = conv_of(e)
            E = we.shape[0]
            eye = np.eye(C, dtype=np.float32)[:, :, None, None]
            layers.append(L(np.concatenate([we, eye / s, -eye / s]), np.concatenate([be, np.zeros(2 * C)]), 1, 1, "relu6"))
            wd, bd = conv_of(d)
            ident = np.zeros((2 * C, 1, 3, 3), np.float32)
            ident[:, 0, 1, 1] = 1.0
            layers.append(L(np.concatenate([wd, ident]), np.concatenate([bd, np.zeros(2 * C)]), 1, E + 2 * C, "relu6"))
            wp, bp = conv_of(p)
            layers.append(L(np.concatenate([wp, eye[:, :, 0, 0][..., None, None] * s, -eye * s], 1)[:, :, :, :]
                            if False else np.concatenate([wp, s * eye, -s * eye], 1), bp, 1, 1, "none"))
            layers[-1]["residual_scale"] = s
            k += 4
        else:
            assert op[0] == "conv", "unfolded add"
            m = stem.convs[op[1]]
            w, b = conv_of(m)
            layers.append(L(w, b, m.stride, m.groups, m.act))
            k += 1
    for m in (stem.neck if stem.neck is not None else []):
        w, b = conv_of(m)
        layers.append(L(w, b, m.stride, m.groups, m.act))
    # agents: split the grouped implementation into independent nets
    ag = model.agents
    h, N = ag.h, ag.n
    wi, bi = conv_of(ag.inp)
    wo, bo = conv_of(ag.out)
    agents = []
    for n in range(N):
        sl = slice(n * h, (n + 1) * h)
        al = [L(wi[sl], bi[sl], 1, 1, ag.inp.act)]
        for dwm in ag.dws:
            wd, bd = conv_of(dwm)
            al.append(L(wd[sl], bd[sl], 1, h, dwm.act))
        al.append(L(wo[n * 3:(n + 1) * 3], bo[n * 3:(n + 1) * 3], 1, 1, "none"))
        agents.append({"keypoint": n // model.apk, "index": n % model.apk, "layers": al})
    return layers, agents


def run_seq(layers, x, qstate=None, calib=None, prefix=""):
    """Run a sequential layer list. qstate: dict name -> act scale for int8 simulation; calib: collects maxima."""
    for i, l in enumerate(layers):
        w = torch.from_numpy(l["wq"] if qstate is not None else l["w"])
        x = F.conv2d(same_pad(x, w.shape[-1], l["stride"]), w, torch.from_numpy(l["b"]), l["stride"], 0, 1, l["groups"])
        x = ACT[l["act"]](x)
        name = f"{prefix}{i}"
        if calib is not None:
            calib[name] = max(calib.get(name, 0.0), float(x.abs().max()))
        if qstate is not None:
            sc = qstate[name]
            x = torch.clamp(torch.round(x / sc), -127, 127) * sc
    return x


def quantise_weights(layers):
    for l in layers:
        w = l["w"]
        sc = np.abs(w.reshape(w.shape[0], -1)).max(1) / 127.0 + 1e-12
        l["w_scale"] = sc.astype(np.float32)
        l["wq"] = (np.clip(np.round(w / sc[:, None, None, None]), -127, 127) * sc[:, None, None, None]).astype(np.float32)


class SeqModel:
    """Exported student executed layer by layer (float or int8-simulated)."""

    def __init__(self, layers, agents, stride, apk, act_scales=None):
        self.layers, self.agents, self.stride, self.apk = layers, agents, stride, apk
        self.q = act_scales

    def __call__(self, x, calib=None):
        q = self.q
        if q is not None:
            x = torch.clamp(torch.round(x * 127.5), -127, 127) / 127.5
        f = run_seq(self.layers, x, q, calib, "stem.")
        ys = [run_seq(a["layers"], f, q, calib, f"agent{n}.") for n, a in enumerate(self.agents)]
        y = torch.stack(ys, 1)  # B, N, 3, H, W
        B, N, C, H, W = y.shape
        return y.view(B, 17, self.apk, C, H, W)


def export_bundle(path, layers, agents, meta, act_scales=None):
    """Write weights (npz) + layer description (json). Isolated so it can target the runtime's bundle format."""
    arrays, desc = {}, {"meta": meta, "stem": [], "agents": []}

    def one(prefix, l):
        arrays[prefix + ".w"] = l["w"]
        arrays[prefix + ".b"] = l["b"]
        d = {"name": prefix, "cout": int(l["w"].shape[0]), "cin": int(l["w"].shape[1] * l["groups"]),
             "kernel": int(l["w"].shape[-1]), "stride": l["stride"], "groups": l["groups"],
             "depthwise": l["groups"] > 1, "act": l["act"], "padding": "same_tf"}
        if "w_scale" in l:
            arrays[prefix + ".w_int8"] = np.round(l["w"] / l["w_scale"][:, None, None, None]).clip(-127, 127).astype(np.int8)
            arrays[prefix + ".w_scale"] = l["w_scale"]
        if act_scales is not None:
            d["out_act_scale"] = act_scales[prefix.replace(".L", ".")]
        return d

    for i, l in enumerate(layers):
        desc["stem"].append(one(f"stem.L{i}", l))
    for n, a in enumerate(agents):
        desc["agents"].append({"keypoint": a["keypoint"], "index": a["index"],
                               "layers": [one(f"agent{n}.L{j}", l) for j, l in enumerate(a["layers"])]})
    np.savez_compressed(path + ".npz", **arrays)
    json.dump(desc, open(path + ".json", "w"), indent=1)


def count(layers, size):
    """params and MACs of a sequential list for an input of size x size."""
    p = m = 0
    h = size
    for l in layers:
        h = -(-h // l["stride"])
        p += l["w"].size + l["b"].size
        m += l["w"].size * h * h
    return p, m, h


def main():
    import sys
    from common import CACHE, coco_kp_ap, predict_split
    from data import build_crops
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=os.path.join(CACHE, "runs", "final"))
    ap.add_argument("--calib", type=int, default=256, help="training crops for calibration")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    ck = torch.load(os.path.join(a.run, "model.pt"), weights_only=False)
    ta = ck["args"]
    model = Student(ta["upto"], ta["stem_out"], ta["apk"], ta["hidden"], ta["depth"], ta.get("max_stride", 16))
    st = {k.replace("stem.neck.conv.", "stem.neck.0.conv."): v for k, v in ck["state"].items()}  # pre-neck-spec runs
    model.load_state_dict(st)
    model.eval()
    size = ta["size"]
    lab = dict(np.load(ta["labels"]))
    rng = np.random.default_rng(123)
    n = len(lab["paths"]) if not ta.get("limit") else min(ta["limit"], len(lab["paths"]))
    cidx = np.sort(rng.choice(n, min(a.calib, n), replace=False))
    crops, _, _ = build_crops(lab, cidx, size, 1, seed=7)
    calib_x = normalise(torch.from_numpy(crops), model.stem.norm)
    layers, agents = fold_sequential(model, calib_x[:64])
    seq = SeqModel(layers, agents, model.stride, model.apk)
    with torch.no_grad():
        ref = model(calib_x[:8])
        got = seq(calib_x[:8])
    err = float((ref - got).abs().max())
    print(f"[export] sequential (folded residuals) vs trained model: max |diff| {err:.2e}")
    # calibration of activation ranges
    calib = {}
    with torch.no_grad():
        for b in range(0, len(calib_x), 32):
            seq(calib_x[b:b + 32], calib=calib)
    act_scales = {k: v / 127.0 for k, v in calib.items()}
    quantise_weights(layers)
    for ag in agents:
        quantise_weights(ag["layers"])
    seq_q = SeqModel(layers, agents, model.stride, model.apk, act_scales)
    sp, sm, g = count(layers, size)
    ap_ = [count(ag["layers"], g)[:2] for ag in agents]
    meta = {"input": {"size": size, "layout": "NCHW RGB", "normalise": "x / 127.5 - 1",
                      "crop": "square, GT/person box side * 1.25, bilinear, zero border"},
            "stem": {"params": sp, "macs": sm, "out_stride": model.stride, "out_grid": g, "out_channels": layers[-1]["w"].shape[0]},
            "agents": {"count": len(agents), "per_keypoint": model.apk, "params_max": max(p for p, _ in ap_),
                       "params_total": sum(p for p, _ in ap_), "macs_total": sum(m for _, m in ap_)},
            "decode": "per agent: argmax over heatmap logit (ch 0); x = (col + 0.5 + ch1[cell]) * stride, "
                      "y = (row + 0.5 + ch2[cell]) * stride, conf = sigmoid(max logit); keypoint = "
                      "confidence-weighted mean of its agents' positions, score = mean conf"}
    export_bundle(os.path.join(a.run, "student"), layers, agents, meta, act_scales)
    print("[export]", json.dumps(meta["stem"]), json.dumps(meta["agents"]))

    res = json.load(open(os.path.join(a.run, "results.json")))
    res["export"] = {"max_abs_diff_sequential": err, **meta}
    for split in ["coco_mini", "mmpose_coco"]:
        for name, net in [("seq_float", seq), ("int8", seq_q)]:
            for fuse in ["weighted", "best"]:
                def pred(crop):
                    with torch.no_grad():
                        x = normalise(torch.from_numpy(crop)[None], model.stem.norm)
                        return decode(net(x), model.stride, fuse)[0].numpy()
                r, spc = predict_split(split, pred, size, limit=20 if a.smoke else None)
                m = coco_kp_ap(split, r)
                res[f"{split}_{fuse}_{name}"] = m
                print(f"[eval] {split} fuse={fuse} {name} AP {m['AP']:.4f} AP50 {m['AP50']:.4f}", flush=True)
    json.dump(res, open(os.path.join(a.run, "results.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
