"""Fold the trained student into the runtime's op set, quantise it to the Rust integer contract, write the bundle.

* fold_sequential(): every MobileNetV2 residual block  x -> expand(relu6) -> dw3x3(relu6) -> project -> + x
  becomes three plain convs: expand gets 2C extra output channels relu6(+x/s), relu6(-x/s); the depthwise conv
  passes them through (centre tap 1); project adds s*(p - n) = x. Exact in float while |x| <= 6 s
  (s calibrated per block). No Add op needed in the runtime. (C channels relu6(x/s + 3) would halve the extra
  parameters but give the residual stream one bit less: exact int8 AP 0.184 -> 0.171, body box AP 0.046 ->
  0.029 on the same student; training/README "Deeper Thunder features".)
* quantise(): the contract of src/engine/quant.rs: int8 symmetric per-output-channel weights (-127..=127),
  asymmetric per-tensor int8 activations x = (q - zp) * scale (QuantParams::from_range_min_scale, min/max
  calibrated in float), bias = round(b / (s_in s_w[c])), output scale raised so M = s_in s_w[c] / s_out < 0.5.
  Stem input: RGB pixel p -> q = p - 128 (input_quant scale 1/127.5, zero point 0).
* IntNet: exact integer simulation of the Rust engine (int64-exact accumulators, Requant fixed point, clamps,
  TF-SAME padding with the zero point), used for the int8 AP and for tests/data/bundle_golden.json.
* export_bundle(): the ONE place that knows the file format (src/engine/bundle.rs, format version 2).

    python training/export.py --run /work/cache/train/runs/final --out models/swarmpose.bundle
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
            layers.append(L(np.concatenate([wp, s * eye, -s * eye], 1), bp, 1, 1, "none"))
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
        co = ag.cout
        al.append(L(wo[n * co:(n + 1) * co], bo[n * co:(n + 1) * co], 1, 1, "none"))
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


def count(layers, size):
    """params and MACs of a sequential list for an input of size x size."""
    p = m = 0
    h = size
    for l in layers:
        h = -(-h // l["stride"])
        p += l["w"].size + l["b"].size
        m += l["w"].size * h * h
    return p, m, h


# ---------------------------------------------------------------- integer contract (mirror of src/engine/quant.rs)
FORMAT_VERSION = 2
MAGIC = b"SWPOSE\0\0"
ACC_LIMIT = 1 << 29
MAX_FAN_IN = 2048
MAX_MULTIPLIER = 0.5
f32 = np.float32
COCO_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
              "right_knee", "left_ankle", "right_ankle"]
STEM_INPUT_Q = (f32(1 / 127.5), 0)  # q = p - 128 for a pixel p in 0..=255


def round_half_away(x):
    """Rust f32/f64 round(): half away from zero."""
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def qparams_from_range(lo, hi, min_scale=0.0):
    """QuantParams::from_range_min_scale, in f32 as Rust computes it."""
    lo, hi = f32(min(float(lo), 0.0)), f32(max(float(hi), 0.0))
    scale = max(f32((hi - lo) / f32(255.0)), f32(min_scale), f32(1e-8))
    zp = int(np.clip(round_half_away(f32(-128.0) - lo / scale), -128, 127))
    return f32(scale), zp


def requant_from_real(m):
    """Requant::from_real -> (multiplier, shift)."""
    assert np.isfinite(m) and 0.0 <= m < MAX_MULTIPLIER, m
    shift = 16
    while shift < 46 and m * float(1 << shift) < 16384.0:
        shift += 1
    return int(min(round_half_away(m * float(1 << shift)), 32767.0)), shift


def fan_in(l):
    return int(l["w"][0].size)


def quantise(layers, in_q, ranges):
    """Float layer list -> quantised layers (wq int8, scales, bias_q, in_q, out_q, requant, clamp).
    ranges[i] = (min, max) of layer i's float output over the calibration inputs."""
    out = []
    for i, l in enumerate(layers):
        w = l["w"]
        fi = fan_in(l)
        assert fi <= MAX_FAN_IN, (i, fi)
        mx = np.abs(w.reshape(w.shape[0], -1)).max(1)
        sw = np.where(mx > 0, mx / 127.0, 1e-6).astype(f32)
        wq = np.clip(round_half_away(w / sw[:, None, None, None]), -127, 127).astype(np.int8)
        min_target = f32(in_q[0] * sw.max() / f32(MAX_MULTIPLIER * 0.98))
        oq = qparams_from_range(*ranges[i], min_scale=min_target)
        bias_limit = ACC_LIMIT - 1 - fi * 255 * 127
        bq = np.clip(round_half_away(l["b"].astype(np.float64) / (float(in_q[0]) * sw.astype(np.float64))),
                     -bias_limit, bias_limit).astype(np.int64)
        rq = [requant_from_real(float(in_q[0]) * float(s) / float(oq[0])) for s in sw]
        zp = oq[1]
        if l["act"] == "relu6":
            six = int(min(round_half_away(6.0 / float(oq[0])), 1000))
            clamp = (zp, min(zp + six, 127))
        elif l["act"] == "relu":
            clamp = (zp, 127)
        else:
            assert l["act"] == "none", l["act"]
            clamp = (-128, 127)
        out.append({**l, "wq": wq, "w_scale": sw, "bq": bq, "in_q": in_q, "out_q": oq, "clamp": clamp,
                    "mult": np.array([m for m, _ in rq], np.int64), "shift": np.array([s for _, s in rq], np.int64)})
        in_q = oq
    return out


def int_forward(qlayers, q):
    """Exact integer forward. q: int (B, C, H, W) already quantised with qlayers[0]['in_q']. Returns int8 output.

    acc = bias + sum (q - zp_in) * w  (float64 conv: every partial sum is an integer < 2^53, hence exact);
    out = clamp(((acc * m + 2^(shift-1)) >> shift) + zp_out), TF-SAME padding with (q - zp) = 0."""
    x = torch.as_tensor(np.asarray(q), dtype=torch.float64)
    for l in qlayers:
        x = x - l["in_q"][1]
        k = l["wq"].shape[-1]
        acc = F.conv2d(same_pad(x, k, l["stride"]), torch.from_numpy(l["wq"].astype(np.float64)),
                       torch.from_numpy(l["bq"].astype(np.float64)), l["stride"], 0, 1, l["groups"])
        a = acc.to(torch.int64)
        assert int(a.abs().max()) < ACC_LIMIT
        m = torch.from_numpy(l["mult"])[None, :, None, None]
        sh = torch.from_numpy(l["shift"])[None, :, None, None]
        r = (a * m + (1 << (sh - 1))) >> sh
        x = (r + l["out_q"][1]).clamp(*l["clamp"]).to(torch.float64)
    return x.to(torch.int64).numpy().astype(np.int8)


def dequant(q, qp):
    """Final-layer dequantisation as the engine does it: (q - zp) as f32 * scale."""
    return (q.astype(np.int32) - qp[1]).astype(f32) * f32(qp[0])


class IntModel:
    """The bundle executed with the exact integer contract: stem once, then agents. With a body neck, the body
    tier reads the stem's layers 0..=from_layer followed by the body neck."""

    def __init__(self, stem_q, kp_agents_q, body_agents_q, stride, apk, body_neck_q=None, from_layer=None):
        self.stem, self.kp, self.body, self.stride, self.apk = stem_q, kp_agents_q, body_agents_q, stride, apk
        self.body_neck, self.from_layer = body_neck_q, from_layer

    def stem_q(self, img_uint8_bhwc):
        q = np.asarray(img_uint8_bhwc, np.int64).transpose(0, 3, 1, 2) - 128
        return int_forward(self.stem, q)

    def body_stem_q(self, img_uint8_bhwc):
        """The body tier's input features: the stem's, or its backbone's followed by the body neck."""
        if not self.body_neck:
            return self.stem_q(img_uint8_bhwc)
        q = np.asarray(img_uint8_bhwc, np.int64).transpose(0, 3, 1, 2) - 128
        return int_forward(self.stem[:self.from_layer + 1] + self.body_neck, q)

    def agents(self, fq, agents):
        return np.stack([dequant(int_forward(a, fq), a[-1]["out_q"]) for a in agents], 1)  # B, N, C, H, W

    def keypoints(self, img):
        y = torch.from_numpy(self.agents(self.stem_q(img), self.kp))
        B, N, C, H, W = y.shape
        return y.view(B, 17, self.apk, C, H, W)


# ---------------------------------------------------------------- the bundle file
def layer_manifest(l):
    return {"in_c": int(l["w"].shape[1] * l["groups"]), "out_c": int(l["w"].shape[0]), "kernel": int(l["w"].shape[-1]),
            "stride": int(l["stride"]), "groups": int(l["groups"]), "activation": l["act"],
            "weight_scales": [float(s) for s in l["w_scale"]],
            "output_quant": {"scale": float(l["out_q"][0]), "zero_point": int(l["out_q"][1])}}


def net_params(qlayers):
    return int(sum(l["wq"].size + l["bq"].size for l in qlayers))


def export_bundle(path, stem_q, stem_input, agents, provenance, crop_margin=0.25, body_neck_q=None, from_layer=None,
                  body_side=None):
    """Write the binary bundle (src/engine/bundle.rs, format version 2).

    stem_q: quantised stem layers; stem_input (h, w, c); agents: list of dicts {name, tier, keypoint,
    specialisation, layers (quantised)}, in manifest order. Tiers are derived from the agents (channels and
    input_quant: the stem's output, or for the body tier the body neck's when there is one). body_neck_q:
    quantised layers reading the output of stem layer `from_layer`; body_side: the letterbox side of the body
    tier (None: the stem's input side). Returns the manifest."""
    import struct
    import zlib

    def tier_input(name):
        last = body_neck_q[-1] if (name == "body" and body_neck_q) else stem_q[-1]
        return int(last["w"].shape[0]), {"scale": float(last["out_q"][0]), "zero_point": int(last["out_q"][1])}
    tiers = []
    for a in agents:
        if a["tier"] not in [t["name"] for t in tiers]:
            ch, q = tier_input(a["tier"])
            tiers.append({"name": a["tier"], "channels": ch, "input_quant": q})
    h, w, c = stem_input
    _, macs, _ = count(stem_q, h)
    assert h == w
    manifest = {
        "tiers": tiers,
        "stem": {"name": "retina", "input": {"h": h, "w": w, "c": c},
                 "input_quant": {"scale": float(stem_q[0]["in_q"][0]), "zero_point": int(stem_q[0]["in_q"][1])},
                 "layers": [layer_manifest(l) for l in stem_q], "param_count": net_params(stem_q),
                 "macs_per_frame": int(macs)},
        "agents": [{"name": a["name"], "tier": a["tier"], "keypoint": a["keypoint"],
                    "specialisation": a["specialisation"], "param_count": net_params(a["layers"]),
                    "layers": [layer_manifest(l) for l in a["layers"]]} for a in agents],
        "total_agent_params": int(sum(net_params(a["layers"]) for a in agents)),
        "detector": {"crop_margin": float(crop_margin), **({"body_side": int(body_side)} if body_side else {})},
        "provenance": provenance,
    }
    if body_neck_q:
        _, _, side_at = count(stem_q[:from_layer + 1], h)
        manifest["body_neck"] = {"name": "retina_body", "from_layer": int(from_layer),
                                 "layers": [layer_manifest(l) for l in body_neck_q],
                                 "param_count": net_params(body_neck_q),
                                 "macs_per_frame": int(count(body_neck_q, side_at)[1])}
    blob = bytearray()
    for net in [stem_q] + ([body_neck_q] if body_neck_q else []) + [a["layers"] for a in agents]:
        for l in net:
            blob += l["wq"].astype(np.int8).tobytes() + l["bq"].astype("<i4").tobytes()
    js = json.dumps(manifest, separators=(",", ":")).encode()
    out = MAGIC + struct.pack("<II", FORMAT_VERSION, len(js)) + js + struct.pack("<Q", len(blob)) + bytes(blob)
    out += struct.pack("<I", zlib.crc32(out) & 0xFFFFFFFF)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "wb") as f:
        f.write(out)
    os.replace(path + ".tmp", path)
    return manifest


def split_agents(net, n, cout):
    """Grouped-conv agents (inp 1x1, dws, out grouped) -> per-agent float layer lists."""
    h = net.inp.conv.out_channels // n
    wi, bi = conv_of(net.inp)
    dws = list(net.dws) if hasattr(net, "dws") else [net.dw]
    wo, bo = conv_of(net.out)
    agents = []
    for k in range(n):
        sl = slice(k * h, (k + 1) * h)
        al = [L(wi[sl], bi[sl], 1, 1, net.inp.act)]
        for d in dws:
            wd, bd = conv_of(d)
            al.append(L(wd[sl], bd[sl], 1, h, d.act))
        al.append(L(wo[k * cout:(k + 1) * cout], bo[k * cout:(k + 1) * cout], 1, 1, "none"))
        agents.append(al)
    return agents


def float_ranges(layers, x):
    """Per-layer (min, max) of the float outputs; x NCHW float. Returns ranges and the final output."""
    r = []
    with torch.no_grad():
        for l in layers:
            x = ACT[l["act"]](F.conv2d(same_pad(x, l["w"].shape[-1], l["stride"]), torch.from_numpy(l["w"]),
                                       torch.from_numpy(l["b"]), l["stride"], 0, 1, l["groups"]))
            r.append((float(x.min()), float(x.max())))
    return r, x


def merge_ranges(a, b):
    return [(min(p[0], q[0]), max(p[1], q[1])) for p, q in zip(a, b)] if a else b


def ranges_batched(layers, x, bs=32):
    r, outs = None, []
    for k in range(0, len(x), bs):
        rr, o = float_ranges(layers, x[k:k + bs])
        r = merge_ranges(r, rr)
        outs.append(o)
    return r, torch.cat(outs)


def golden_file(path, im, stem_q, body_q, kp_q, kp_index, body_neck_q=None, from_layer=None):
    """Bit-exactness fixture for the Rust engine: one side x side x 3 uint8 input (hex, HWC RGB), the stem's
    int8 output (HWC, every value), the body tier's input features (body neck) when there is a body neck,
    body_0 and left_wrist_0 outputs (int8 and dequantised f32, HWC)."""
    imq = IntModel(stem_q, [], [], 16, 3, body_neck_q, from_layer)
    fq = imq.stem_q(im[None])  # 1, C, H, W
    fb = imq.body_stem_q(im[None])
    g = {"input_hex": im.astype(np.uint8).tobytes().hex(), "input_shape_hwc": list(im.shape),
         "input_quant": "q = p - 128", "stem_output_quant": {"scale": float(stem_q[-1]["out_q"][0]),
                                                             "zero_point": int(stem_q[-1]["out_q"][1])},
         "stem_out_shape_hwc": [int(fq.shape[2]), int(fq.shape[3]), int(fq.shape[1])]}
    s_hwc = fq[0].transpose(1, 2, 0).reshape(-1).astype(np.int64)
    g["stem_q_hwc"] = s_hwc.tolist()
    g["stem_q_first64"] = s_hwc[:64].tolist()
    g["stem_q_sum"] = int(s_hwc.sum())
    g["stem_q_weighted_sum"] = int(((np.arange(len(s_hwc)) % 251 + 1) * s_hwc).sum())
    if body_neck_q:
        b_hwc = fb[0].transpose(1, 2, 0).reshape(-1).astype(np.int64)
        g["body_stem_out_shape_hwc"] = [int(fb.shape[2]), int(fb.shape[3]), int(fb.shape[1])]
        g["body_stem_q_hwc"] = b_hwc.tolist()
        g["body_stem_q_sum"] = int(b_hwc.sum())
    for name, layers, feats in [("body_0", body_q, fb), ("left_wrist_0", kp_q, fq)]:
        q = int_forward(layers, feats)[0].transpose(1, 2, 0)
        d = dequant(q, layers[-1]["out_q"])
        g[name] = {"out_shape_hwc": list(q.shape), "q_hwc": q.reshape(-1).astype(int).tolist(),
                   "f32_hwc": [float(v) for v in d.reshape(-1)], "index_in_tier": 0 if name == "body_0" else kp_index}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    json.dump(g, open(path, "w"), separators=(",", ":"))
    return g


def merge_agents(model, ta, extra_run):
    """The keypoint agents of `extra_run` (training/subcell.py, trained on this model's frozen stem) join this
    model's: keypoint k keeps its own agents at k*A + a and gets the extra ones at k*A + A0 + b."""
    from body import load_student
    extra, _ = load_student(extra_run)
    st, sx = model.state_dict(), extra.state_dict()
    for k, v in st.items():
        if not k.startswith("agents."):
            assert torch.equal(v, sx[k]), f"{extra_run} was not trained on this stem ({k} differs)"
    assert (model.agents.h, model.agents.depth, model.agents.cout) == (extra.agents.h, extra.agents.depth, extra.agents.cout)
    a0, a1 = model.apk, extra.apk
    merged = Student(ta["upto"], ta["stem_out"], a0 + a1, ta["hidden"], ta["depth"], ta.get("max_stride", 16),
                     ta.get("kp_ch", 3), prune=ta.get("prune", ""), skip=ta.get("skip", ""))
    out = {k: v for k, v in st.items() if not k.startswith("agents.")}
    for k, v in st.items():
        if k.startswith("agents."):
            # every agent owns an equal slice of dim 0 (grouped / depthwise convs, the input conv's outputs)
            per = v.shape[0] // (17 * a0)
            mine = v.reshape(17, a0 * per, *v.shape[1:])
            theirs = sx[k].reshape(17, a1 * per, *v.shape[1:])
            out[k] = torch.cat([mine, theirs], 1).reshape(17 * (a0 + a1) * per, *v.shape[1:])
    merged.load_state_dict(out)
    merged.eval()
    return merged, {**ta, "apk": a0 + a1}


def main():
    import sys
    import time
    import body as body_mod
    from body import aug_frame, eval_boxes, load_body, load_student
    from common import CACHE, coco_kp_ap, predict_split, read_rgb
    from data import build_crops
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=os.path.join(CACHE, "runs", "final"))
    ap.add_argument("--out", default=None, help="bundle path (default: <run>/swarmpose.bundle)")
    ap.add_argument("--golden", default=None, help="golden fixture path (default: <run>/bundle_golden.json)")
    ap.add_argument("--calib", type=int, default=128, help="keypoint crops and letterboxed frames for calibration")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--extra-agents", default=None, metavar="RUN",
                    help="a run of training/subcell.py on this run's frozen stem: its keypoint agents join this run's")
    a = ap.parse_args()
    torch.set_num_threads(1)
    t_start = time.time()
    out = a.out or os.path.join(a.run, "swarmpose.bundle")
    gpath = a.golden or os.path.join(a.run, "bundle_golden.json")
    model, ta = load_student(a.run)
    n_first = model.apk
    if a.extra_agents:
        model, ta = merge_agents(model, ta, a.extra_agents)
        print(f"[export] keypoint agents: {n_first} per keypoint from {a.run} + {model.apk - n_first} from "
              f"{a.extra_agents} (same stem)", flush=True)
    body, bk = load_body(a.run, model.stem.cout, model.stem.cfeat)
    body_side = bk["args"].get("body_side")
    size = ta["size"]
    body_mod.use_side(size)
    # calibration: keypoint crops (training people) and whole training frames letterboxed
    lab = dict(np.load(ta["labels"]))
    rng = np.random.default_rng(123)
    n = len(lab["paths"]) if not ta.get("limit") else min(ta["limit"], len(lab["paths"]))
    cidx = np.sort(rng.choice(n, min(a.calib, n), replace=False))
    crops, _, _ = build_crops(lab, cidx, size, 1, seed=7)
    bdir = os.path.join(CACHE, "body" + ("_smoke" if bk["args"].get("smoke") else ""))
    # through label_frames: the frames the body tier may train on (body.clip_allowed), as a labelling from nothing
    items = body_mod.label_frames(os.path.join(bdir, "frames.json"), bk["args"].get("smoke", False))
    fr = np.random.default_rng(321)
    frames = np.stack([aug_frame(read_rgb(items[i]["path"]), items[i]["boxes"], fr, plain=True)[0]
                       for i in np.sort(fr.choice(len(items), min(a.calib, len(items)), replace=False))])
    print(f"[export] calibration: {len(crops)} keypoint crops + {len(frames)} letterboxed frames", flush=True)
    xc = normalise(torch.from_numpy(crops), model.stem.norm)
    xf = normalise(torch.from_numpy(frames), model.stem.norm)
    layers, kp_agents = fold_sequential(model, xc[:64])
    seq = SeqModel(layers, kp_agents, model.stride, model.apk)
    with torch.no_grad():
        err = float((model(xc[:8]) - seq(xc[:8])).abs().max())
    print(f"[export] sequential (folded residuals) vs trained model: max |diff| {err:.2e}", flush=True)
    body_layers = split_agents(body.agents, bk["n"], 5)
    r1, fc = ranges_batched(layers, xc)
    r2, ff = ranges_batched(layers, xf)
    stem_q = quantise(layers, STEM_INPUT_Q, merge_ranges(r1, r2))
    tq = stem_q[-1]["out_q"]
    kp_q = [quantise(ag["layers"], tq, ranges_batched(ag["layers"], fc)[0]) for ag in kp_agents]
    body_neck_q, from_layer = None, None
    if len(body.neck):
        # the body neck reads the backbone: the stem's layers without the keypoint neck
        from_layer = len(layers) - (len(model.stem.neck) if model.stem.neck is not None else 0) - 1
        neck_layers = [L(*conv_of(m), m.stride, m.groups, m.act) for m in body.neck]
        _, fbb = ranges_batched(layers[:from_layer + 1], xf)
        rn, ff = ranges_batched(neck_layers, fbb)
        body_neck_q = quantise(neck_layers, stem_q[from_layer]["out_q"], rn)
        print(f"[export] body neck {bk['neck']} on stem layer {from_layer}: {net_params(body_neck_q)} params", flush=True)
    bq = body_neck_q[-1]["out_q"] if body_neck_q else tq
    body_q = [quantise(al, bq, ranges_batched(al, ff)[0]) for al in body_layers]
    im = IntModel(stem_q, kp_q, body_q, model.stride, model.apk, body_neck_q, from_layer)

    # bundle
    apk = model.apk
    agents = []
    bag = bk.get("bag", 0.8)
    for k, al in enumerate(body_q):
        agents.append({"name": f"body_{k}", "tier": "body", "keypoint": "person", "layers": al,
                       "specialisation": ("all training frames" if k == 0 else f"bag {int(bag * 100)} % of the source photos (rng seed {bk['args']['seed'] + 1}, column {k})")
                       + f"; centre logit, dx, dy, log(w/16), log(h/16) on the {body_side or size} px letterboxed frame"
                       + (f", reading the body neck {bk['neck']}" if body_neck_q else "")})
    for n_, al in enumerate(kp_q):
        k, i = divmod(n_, apk)
        agents.append({"name": f"{COCO_NAMES[k]}_{i}", "tier": "keypoint", "keypoint": COCO_NAMES[k], "layers": al,
                       "specialisation": ("all training people" if i in (0, n_first) else f"bag {int(ta['bag'] * 100)} % of the training people (seed {ta['seed'] + 1})")
                       + ("" if i < n_first else "; trained alone on the frozen stem (training/subcell.py)")
                       + ("; 6 channels: heatmap logits of the 4 sub-cells s = 2*sy + sx (TL, TR, BL, BR), dx, dy in "
                          "sub-cell units from the sub-cell centre; x = (c + (sx + 0.5 + dx) / 2) * 16, y = (r + (sy + 0.5 + "
                          f"dy) / 2) * 16 on the {size} px square crop" if ta.get("kp_ch", 3) == 6 else
                          f"; heatmap logit, dx, dy on the {size} px square crop")})
    res = json.load(open(os.path.join(a.run, "results.json")))
    cmd = os.environ.get("SWARMPOSE_COMMAND", "python " + " ".join(sys.argv))
    prov = {"command": cmd,
            "data": "keypoint agents + stem neck: lspet (first 5000 photos) and coco128_person person crops, labels "
                    "from MoveNet Thunder/Lightning (training/label.py); body agents: coco128_person YOLO boxes, lspet and "
                    "every 5th frame of the clips in shared/data/clips but street_walk_1280x720.avi (licensed for tests "
                    "and demos only; body.CLIPS) labelled by MoveNet MultiPose (score > 0.3); stem layers "
                    "transferred from MoveNet Thunder (Apache-2.0)",
            "seed": int(ta["seed"]),
            "notes": "held out (never trained on): coco_mini, mmpose. Measured figures in training/README.md and "
                     f"{a.run}/results.json."}
    manifest = export_bundle(out, stem_q, (size, size, 3), agents, prov, body_neck_q=body_neck_q, from_layer=from_layer,
                             body_side=body_side)
    sp = manifest["stem"]["param_count"]
    bn = manifest.get("body_neck", {}).get("param_count", 0)
    print(f"[export] {out}: {os.path.getsize(out)} bytes; stem {sp} params (+ body neck {bn} = {sp + bn}), "
          f"{manifest['stem']['macs_per_frame']} MACs; "
          f"{len(agents)} agents, max {max(x['param_count'] for x in manifest['agents'])} params, total "
          f"{manifest['total_agent_params']}", flush=True)
    # golden: the first calibration frame (a letterboxed training photo)
    g = golden_file(gpath, frames[0], stem_q, body_q[0], kp_q[9 * apk], 9 * apk, body_neck_q, from_layer)
    print(f"[export] golden {gpath}: {os.path.getsize(gpath)} bytes, stem q sum {g['stem_q_sum']}", flush=True)

    # evaluation: float (folded) and exact int8 simulation
    lim = 10 if a.smoke else None
    ev = {}
    for name, fn in [("seq_float", lambda x: seq(x)), ("int8_exact", None)]:
        for split in (["coco_mini"] if a.smoke else ["coco_mini", "mmpose_coco"]):
            for fuse in ["weighted", "best"]:
                def pred(crop):
                    with torch.no_grad():
                        if fn is None:
                            y = im.keypoints(crop[None])
                        else:
                            y = fn(normalise(torch.from_numpy(crop)[None], model.stem.norm))
                        return decode(y, model.stride, fuse)[0].numpy()
                r, spc = predict_split(split, pred, size, limit=lim)
                m = coco_kp_ap(split, r)
                ev[f"{split}_{fuse}_{name}"] = {**m, "sec_per_crop": spc}
                print(f"[eval] keypoints {split} GT boxes fuse={fuse} {name}: AP {m['AP']:.4f} AP50 {m['AP50']:.4f} "
                      f"({spc * 1000:.0f} ms/crop)", flush=True)

    def body_pred(x):
        fq = im.body_stem_q(x[None])
        return im.agents(fq, body_q)[0].mean(0)
    body_mod.use_side(body_side or size)
    mb, _, summ = eval_boxes(body_pred, limit=lim)
    print(summ)
    print(f"[eval] body boxes coco_mini int8_exact, letterboxed to {body_side or size} px:", json.dumps(mb), flush=True)
    res["export"] = {"bundle": out, "bundle_bytes": os.path.getsize(out), "golden": gpath,
                     "max_abs_diff_sequential": err, "stem_params": sp, "body_neck_params": bn, "stem_macs": manifest["stem"]["macs_per_frame"],
                     "agents": len(agents), "agent_params_max": max(x["param_count"] for x in manifest["agents"]),
                     "total_agent_params": manifest["total_agent_params"], "seconds": time.time() - t_start}
    res.update(ev)
    res.setdefault("body", {})["coco_mini_int8_exact"] = mb
    json.dump(res, open(os.path.join(a.run, "results.json"), "w"), indent=1)
    # the provenance notes carry the measured figures: rewrite the bundle with them
    prov["notes"] += (f" Keypoint AP coco_mini (GT boxes, 25 % margin, exact int8): "
                      f"{ev['coco_mini_weighted_int8_exact']['AP']:.3f} (weighted fusion); body boxes coco_mini bbox AP "
                      f"{mb['AP']:.3f}, AP50 {mb['AP50']:.3f}, recall@0.5 {mb['recall50_all_dets']:.3f} (exact int8).")
    export_bundle(out, stem_q, (size, size, 3), agents, prov, body_neck_q=body_neck_q, from_layer=from_layer,
                             body_side=body_side)
    print(f"[export] done in {time.time() - t_start:.0f}s; bundle {out} ({os.path.getsize(out)} bytes)", flush=True)


if __name__ == "__main__":
    main()
