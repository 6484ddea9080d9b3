"""Student: shared stem ("retina", transferred from MoveNet Thunder) + a swarm of tiny per-keypoint agents.

Everything is Conv2d (k 1/3, stride 1/2, groups 1 or depthwise, TF-'same' zero padding, bias) with
ReLU / ReLU6 / none. The transferred MobileNetV2 blocks have residual adds in training; export.py
folds each add into plain sequential convs (identity pass-through channels), exactly in float.
"""
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from thunder_graph import load_backbone

ACTS = {"none": lambda x: x, "relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid}


def same_pad(x, k, s):
    """TensorFlow 'SAME' zero padding (extra pixel at bottom/right)."""
    if k == 1:
        return x
    h, w = x.shape[-2:]
    ph = max((math.ceil(h / s) - 1) * s + k - h, 0)
    pw = max((math.ceil(w / s) - 1) * s + k - w, 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class Conv(nn.Module):
    def __init__(self, cin, cout, k=1, stride=1, groups=1, act="none", w=None, b=None, bn=False):
        super().__init__()
        self.k, self.stride, self.groups, self.act = k, stride, groups, act
        self.conv = nn.Conv2d(cin, cout, k, stride, 0, groups=groups, bias=True)
        # training-only batch norm before the activation; fold_bn() merges it into the conv for export
        self.bn = nn.BatchNorm2d(cout) if bn else None
        if w is not None:
            with torch.no_grad():
                self.conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
                self.conv.bias.copy_(torch.from_numpy(b))

    def forward(self, x):
        y = self.conv(same_pad(x, self.k, self.stride))
        return ACTS[self.act](self.bn(y) if self.bn is not None else y)

    def fold_bn(self):
        """Merge the batch norm's running statistics into the conv (exact in eval mode) and drop it, so the
        saved state is a plain conv that every loader and the exporter read as before."""
        if self.bn is None:
            return
        bn = self.bn
        g = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        with torch.no_grad():
            self.conv.weight.mul_(g.view(-1, 1, 1, 1))
            self.conv.bias.copy_((self.conv.bias - bn.running_mean) * g + bn.bias)
        self.bn = None


def expand_blocks(ops):
    """{block number: (expand, depthwise, project) op indices} of Thunder's inverted-residual blocks, numbered
    as in its tensor names (block_1 is the first with an expand conv)."""
    blocks = {}
    for k in range(len(ops) - 2):
        e, d, p = ops[k:k + 3]
        if (all(o["op"] == "conv" for o in (e, d, p)) and e["w"].shape[2] == 1 and e["groups"] == 1
                and e["act"] == "relu6" and d["groups"] > 1 and d["src"] == k and p["src"] == k + 1
                and p["act"] == "none"):
            blocks[len(blocks) + 1] = (k, k + 1, k + 2)
    return blocks


def parse_prune(spec):
    """"7:244,11:366" -> {7: 244, 11: 366}: hidden channels kept per block."""
    return {int(b): int(h) for b, h in (t.split(":") for t in spec.split(","))} if spec else {}


def parse_skip(spec):
    """"7,8,9,11" -> [7, 8, 9, 11]: residual blocks left out of the backbone."""
    return sorted(int(b) for b in spec.split(",")) if spec else []


def skip_blocks(ops, blocks, skip):
    """Leave the residual blocks `skip` out of `ops`: a dropped block's add becomes its input (a residual
    block is x + f(x); without f the identity path carries on). Returns (ops, {old index: new index})."""
    drop, alias = set(), {}
    for b in skip:
        if b not in blocks:
            raise ValueError(f"--skip: no block {b} in this backbone")
        e, d, p = blocks[b]
        add = next((k for k, o in enumerate(ops) if o["op"] == "add" and p in (o["a"], o["b"])), None)
        x = None if add is None else ops[add]["a"] if ops[add]["b"] == p else ops[add]["b"]
        if x is None or ops[e]["src"] != x:
            raise ValueError(f"--skip: block {b} has no residual add around it (x + f(x)), so it cannot be left out")
        drop.update((e, d, p, add))
        alias[add] = x
    remap, kept = {-1: -1}, []
    for k, o in enumerate(ops):
        if k in drop:
            if k in alias:
                remap[k] = remap[alias[k]]
            continue
        o = dict(o)
        if o["op"] == "conv":
            o["src"] = remap[o["src"]]
        else:
            o["a"], o["b"] = remap[o["a"]], remap[o["b"]]
        remap[k] = len(kept)
        kept.append(o)
    return kept, remap


def _slice_hidden(block, keep):
    """Keep the hidden channels `keep` of an expand (1x1) -> depthwise -> project (1x1) block, in place."""
    e, d, p = block
    e["w"], e["b"] = e["w"][keep], e["b"][keep]
    d["w"], d["b"], d["groups"] = d["w"][keep], d["b"][keep], len(keep)
    p["w"] = p["w"][:, keep]


class Stem(nn.Module):
    """Thunder backbone up to `upto` (residual adds kept as graph edges) + trainable 1x1 neck to `cout` channels.
    `upto` = "lightning:<tensor>" takes MoveNet Lightning's backbone instead (a pilot: README "Deeper Thunder
    features"); `prune` = "7:244,11:366" keeps that many hidden channels of those blocks; `skip` = "7,8" leaves
    those residual blocks out (README "Deeper Thunder features"). Blocks keep Thunder's numbers either way."""

    def __init__(self, upto="block_9_add", neck="32", neck_act="relu6", max_stride=16, neck_bn=False, prune="",
                 skip=""):
        super().__init__()
        if upto.startswith("lightning:"):  # MoveNet Lightning's backbone (lightning_graph.py), not Thunder's
            from lightning_graph import load_backbone as load_lightning
            ops, self.norm = load_lightning(upto.split(":", 1)[1])
        else:
            ops, self.norm = load_backbone(upto)
        blocks, skipped = expand_blocks(ops), parse_skip(skip)
        ops, remap = skip_blocks(ops, blocks, skipped)
        self.blocks = {b: tuple(remap[i] for i in idx) for b, idx in blocks.items() if b not in skipped}
        # the transferred, unpruned weights, so prune_hidden() can keep any channels; the constructor keeps the
        # first ones (the shapes a saved pruned model loads into)
        self.transferred = [dict(o) for o in ops]
        for b, h in parse_prune(prune).items():
            _slice_hidden([ops[i] for i in self.blocks[b]], np.arange(h))
        # optionally keep the output resolution finer: stride-2 convs beyond max_stride run at stride 1
        cur = 1
        for o in ops:
            if o["op"] == "conv" and o["stride"] == 2:
                if cur >= max_stride:
                    o["stride"] = 1
                else:
                    cur *= 2
        self.ops = []
        self.convs = nn.ModuleList()
        for o in ops:
            if o["op"] == "conv":
                w = o["w"]
                m = Conv(w.shape[1] * o["groups"], w.shape[0], w.shape[2], o["stride"], o["groups"], o["act"], w, o["b"])
                self.ops.append(("conv", len(self.convs), o["src"]))
                self.convs.append(m)
            else:
                self.ops.append(("add", o["a"], o["b"]))
        self.cfeat = ops[-1]["w"].shape[0] if ops[-1]["op"] == "conv" else ops[ops[-1]["b"]]["w"].shape[0]
        self.stride = int(np.prod([o["stride"] for o in ops if o["op"] == "conv" and o["stride"] == 2])) if False else \
            2 ** sum(1 for o in ops if o["op"] == "conv" and o["stride"] == 2)
        # trainable neck: "32" = one 1x1 conv; "96,dw,32" = 1x1 ->96, depthwise 3x3, 1x1 ->32 (all ReLU6)
        layers, c = [], self.cfeat
        for tok in str(neck).split(",") if neck else []:
            if tok == "dw":
                layers.append(Conv(c, c, 3, 1, c, neck_act, bn=neck_bn))
            else:
                layers.append(Conv(c, int(tok), 1, 1, 1, neck_act, bn=neck_bn))
                c = int(tok)
        self.neck = nn.Sequential(*layers) if layers else None
        self.cout = c

    def prune_hidden(self, block, keep):
        """Rebuild block `block`'s expand / depthwise / project convs with only the hidden channels `keep`
        (indices into the transferred block's), from the transferred weights."""
        ops = [dict(self.transferred[i]) for i in self.blocks[block]]
        _slice_hidden(ops, np.asarray(keep))
        for i, o in zip(self.blocks[block], ops):
            old, w = self.convs[self.ops[i][1]], o["w"]
            self.convs[self.ops[i][1]] = Conv(w.shape[1] * o["groups"], w.shape[0], w.shape[2], old.stride,
                                              o["groups"], old.act, w, o["b"])

    def backbone(self, x):
        outs = []
        for op in self.ops:
            if op[0] == "conv":
                src = x if op[2] == -1 else outs[op[2]]
                outs.append(self.convs[op[1]](src))
            else:
                outs.append(outs[op[1]] + outs[op[2]])
        return outs[-1]

    def forward(self, x):
        f = self.backbone(x)
        return self.neck(f) if self.neck is not None else f


class Agents(nn.Module):
    """N independent tiny agents, each reading the stem features: 1x1 C->h (ReLU6), dw3x3 h (ReLU6)
    x `depth`, 1x1 h->3 (heatmap logit, dx, dy). Implemented with grouped convs (= N separate nets)."""

    def __init__(self, cin, n_agents, hidden=8, depth=1, cout=3):
        super().__init__()
        self.n, self.h, self.depth, self.cout = n_agents, hidden, depth, cout
        self.inp = Conv(cin, n_agents * hidden, 1, act="relu6")
        self.dws = nn.ModuleList([Conv(n_agents * hidden, n_agents * hidden, 3, 1, n_agents * hidden, "relu6")
                                  for _ in range(depth)])
        self.out = Conv(n_agents * hidden, n_agents * cout, 1, groups=n_agents)

    def params_per_agent(self, cin):
        h = self.h
        return cin * h + h + self.depth * (9 * h + h) + self.cout * h + self.cout

    def forward(self, f):
        x = self.inp(f)
        for d in self.dws:
            x = d(x)
        y = self.out(x)  # B, N*3, H, W
        B, _, H, W = y.shape
        return y.view(B, self.n, self.cout, H, W)


class Student(nn.Module):
    def __init__(self, upto="block_9_add", stem_out="32", agents_per_kp=3, hidden=8, depth=1, max_stride=16, kp_ch=3,
                 neck_bn=False, prune="", skip=""):
        super().__init__()
        self.stem = Stem(upto, stem_out, max_stride=max_stride, neck_bn=neck_bn, prune=prune, skip=skip)
        self.apk = agents_per_kp
        self.agents = Agents(self.stem.cout, 17 * agents_per_kp, hidden, depth, kp_ch)
        self.stride = self.stem.stride

    def fold_bn(self):
        for m in self.modules():
            if isinstance(m, Conv):
                m.fold_bn()

    def forward(self, x):
        """x: B,3,S,S normalised input. Returns B, 17, A, 3, H, W (agent a of keypoint k = index k*A+a)."""
        y = self.agents(self.stem(x))
        B, N, C, H, W = y.shape
        return y.view(B, 17, self.apk, C, H, W)


def normalise(img_uint8_bhwc, norm):
    x = img_uint8_bhwc.permute(0, 3, 1, 2).float()
    return x * norm[0] + norm[1]


def fuse_agents(pos, conf, fuse):
    """pos: B,K,A,2 positions, conf: B,K,A confidences -> (B,K,3) x, y, score. 'best' = the most confident
    agent; otherwise the confidence-weighted mean of positions with the mean confidence."""
    B, K = conf.shape[:2]
    if fuse == "best":
        j = conf.argmax(-1)
        p = torch.gather(pos, 2, j[:, :, None, None].expand(B, K, 1, 2))[:, :, 0]
        c = conf.max(-1).values
    else:
        wgt = conf / conf.sum(-1, keepdim=True).clamp_min(1e-6)
        p = (pos * wgt[..., None]).sum(2)
        c = conf.mean(-1)
    return torch.cat([p, c[..., None]], -1)


def decode(y, stride, fuse="weighted"):
    """y: B,17,A,3,H,W -> (B,17,3) crop x, y, score. Each agent: argmax cell + sub-pixel offset
    (offset in cells, added to the cell centre). Fusion over the A agents of a keypoint:
    'weighted' = confidence-weighted mean of positions, 'best' = highest-confidence agent."""
    B, K, A, C, H, W = y.shape
    if C == 6:
        return decode_subcell(y, stride, fuse)
    logit = y[:, :, :, 0].reshape(B, K, A, H * W)
    conf, idx = logit.max(-1)  # B,K,A
    conf = torch.sigmoid(conf)
    off = y[:, :, :, 1:3].reshape(B, K, A, 2, H * W)
    o = torch.gather(off, 4, idx[:, :, :, None, None].expand(B, K, A, 2, 1))[..., 0]
    cx = (idx % W).float() + 0.5 + o[..., 0]
    cy = (idx // W).float() + 0.5 + o[..., 1]
    pos = torch.stack([cx, cy], -1) * stride  # B,K,A,2
    if fuse.endswith("centroid"):
        # sub-cell position from the heatmap alone: sigmoid-weighted centroid of the 3x3 cells around the argmax
        lg = y[:, :, :, 0].reshape(B, K, A, H * W)
        r, cc = idx // W, idx % W
        num = torch.zeros(B, K, A, 2)
        den = torch.zeros(B, K, A)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                rr, c2 = (r + dy).clamp(0, H - 1), (cc + dx).clamp(0, W - 1)
                valid = (((r + dy) == rr) & ((cc + dx) == c2)).float()
                l = torch.gather(lg, 3, (rr * W + c2)[..., None])[..., 0]
                wgt = torch.sigmoid(l) * valid
                num += torch.stack([c2.float() + 0.5, rr.float() + 0.5], -1) * stride * wgt[..., None]
                den += wgt
        pos = num / den[..., None].clamp_min(1e-6)
        fuse = fuse[: -len("centroid")].rstrip("_") or "weighted"
    if fuse.endswith("local"):
        # refine each agent's argmax with a confidence-weighted mean over its 3x3 neighbourhood
        lg = y[:, :, :, 0]  # B,K,A,H,W
        r, cc = idx // W, idx % W
        num = torch.zeros(B, K, A, 2)
        den = torch.zeros(B, K, A)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                rr, c2 = (r + dy).clamp(0, H - 1), (cc + dx).clamp(0, W - 1)
                valid = ((r + dy) == rr) & ((cc + dx) == c2)
                j = (rr * W + c2)
                l = torch.gather(lg.reshape(B, K, A, H * W), 3, j[..., None])[..., 0]
                oo = torch.gather(off, 4, j[:, :, :, None, None].expand(B, K, A, 2, 1))[..., 0]
                wgt = torch.sigmoid(l) * valid.float()
                px = torch.stack([c2.float() + 0.5 + oo[..., 0], rr.float() + 0.5 + oo[..., 1]], -1) * stride
                num += px * wgt[..., None]
                den += wgt
        pos = num / den[..., None].clamp_min(1e-6)
        fuse = fuse[: -len("local")].rstrip("_") or "weighted"
    return fuse_agents(pos, conf, fuse)


def decode_subcell(y, stride, fuse="weighted"):
    """6-channel agents ("depth-to-space in the decoder"). y: B,17,A,6,H,W. Channels 0..3: heatmap logits of the
    4 sub-cells of a cell, s = 2*sy + sx (top-left, top-right, bottom-left, bottom-right); 4, 5: dx, dy in
    SUB-CELL units relative to the chosen sub-cell's centre. Per agent: first maximum over (r, c, s) in that
    order (HWC memory order, s fastest); x = (c + (sx + 0.5 + dx) / 2) * stride, y = (r + (sy + 0.5 + dy) / 2) * stride,
    confidence = sigmoid(max logit). Fusion over agents as in decode()."""
    B, K, A, C, H, W = y.shape
    lg = y[:, :, :, 0:4].permute(0, 1, 2, 4, 5, 3).reshape(B, K, A, H * W * 4)
    conf, idx = lg.max(-1)
    conf = torch.sigmoid(conf)
    cell, s = idx // 4, idx % 4
    off = y[:, :, :, 4:6].reshape(B, K, A, 2, H * W)
    o = torch.gather(off, 4, cell[:, :, :, None, None].expand(B, K, A, 2, 1))[..., 0]
    cx = (cell % W).float() + ((s % 2).float() + 0.5 + o[..., 0]) / 2
    cy = (cell // W).float() + ((s // 2).float() + 0.5 + o[..., 1]) / 2
    pos = torch.stack([cx, cy], -1) * stride
    return fuse_agents(pos, conf, fuse)
