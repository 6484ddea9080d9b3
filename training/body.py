"""Body agents: person boxes on the whole frame letterboxed to the stem's input side (192 px).

The body tier reads its own neck: the retina's frozen backbone (the keypoint student's stem without its
neck) followed by a body neck ("224,dw,48": 1x1 ->224, depthwise 3x3, 1x1 ->48, ReLU6, trained here with
batch norm, folded before saving). The keypoint neck is trained on person crops only; body agents
reading it reached box AP 0.022, against 0.053 on a neck trained for boxes (pilot, 2026-11-30).
The backbone runs once per detected frame either way; the body neck costs 5.45 M MACs at 192 px.

Letterbox (the Rust element does exactly the same, see common.letterbox_matrix):
  s = LB / max(W, H), ox = (LB - W s) / 2, oy = (LB - H s) / 2 (LB = the stem side, 192), cv2.warpAffine with [[s,0,ox],[0,s,oy]]
  (bilinear, pixel-index convention of cv2: output pixel (u, v) samples the image at ((u-ox)/s, (v-oy)/s)),
  border 0 (black); then x = p / 127.5 - 1 on RGB.
Body agent (453 params on the 48-channel body neck, 389 on a 32-channel stem): C->h k1 relu6, dw h k3 relu6, h->5 k1
none (h = body_hidden(C): 7 at 48 channels, 8 at 32). Channels: 0 centre logit, 1-2 centre
offset dx, dy (cells), 3-4 log(w/16), log(h/16) (letterbox px). Decode: cell (r, c) -> cx = (c + .5 + dx) 16,
cy = (r + .5 + dy) 16, w = exp(ch3) 16, h = exp(ch4) 16, score = sigmoid(mean logit); the runtime averages the
agents' 5 channels, then keeps 3x3 local maxima above a threshold.

Stages (each cached under $CACHE/body):
  1. labels: coco128_person (its YOLO person boxes = GT), lspet + clip frames (every 5th) labelled by
     MoveNet MultiPose (detections with score > 0.3; lspet's GT person box added when MultiPose missed it).
  2. augmented letterboxed frames (random zoom in/out, crops, flips, colour), plus mosaics (2x2 augmented
     frames shrunk to one: many small persons, the scale COCO photos have) -> frozen backbone -> fp16 features.
  3. the body neck and N agents trained on the cache, the agents with bagging (each its own 80 % of the
     source photos, own seed; every agent sees the mosaics): focal loss on Gaussian centre targets,
     smooth-L1 on offsets and log sizes at the centre cells.
  4. held-out coco_mini: COCO bbox AP (pycocotools) and recall at IoU 0.5 of the decoded boxes.

    python training/body.py --run /work/cache/train/runs/e1            # writes body.pt, body results into results.json
    python training/body.py --run /work/cache/train/runs/smoke --smoke
"""
import argparse
import glob
import json
import os
import time

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from common import CACHE, DATA, EVAL_SPLITS, letterbox_matrix, read_rgb, run_log
from model import Conv, Student, normalise

LB = 128      # letterbox side: the stem's input side, set from the keypoint run by use_side()
STRIDE = 16   # stem output stride
G = LB // STRIDE


def use_side(side):
    """Both tiers share the stem and its input side (the Rust detector letterboxes frames to the
    same side it crops persons to), so the body tier follows the keypoint run's --size."""
    global LB, G
    LB, G = side, side // STRIDE


# Clips whose licence allows training a shipped model. Not street_walk_1280x720.avi: CMU OpenPose's
# example media are licensed for non-commercial research, tests and demos only (../shared/data/README.md).
CLIPS = ["pedestrians_768x576.avi", "pose2sim_multiperson/cam01.mp4", "pose2sim_multiperson/cam02.mp4",
         "pose2sim_multiperson/cam03.mp4", "pose2sim_multiperson/cam04.mp4", "walker_outdoor_1768x994.mp4",
         "cyclists_640x272.mp4", "street_demo_960x540.mp4"]


def clip_allowed(item):
    """Whether a labelled frame may train the body tier: photos, and frames of the clips in CLIPS (a cache
    written before a clip was dropped from CLIPS still holds its frames)."""
    if item["src"] != "clip":
        return True
    name = os.path.basename(item["path"]).rsplit("_", 1)[0]
    return name in {c.replace("/", "_") for c in CLIPS}


def load_student(run):
    ck = torch.load(os.path.join(run, "model.pt"), weights_only=False)
    ta = ck["args"]
    model = Student(ta["upto"], ta["stem_out"], ta["apk"], ta["hidden"], ta["depth"], ta.get("max_stride", 16),
                    ta.get("kp_ch", 3), prune=ta.get("prune", ""), skip=ta.get("skip", ""))
    st = {k.replace("stem.neck.conv.", "stem.neck.0.conv."): v for k, v in ck["state"].items()}  # pre-neck-spec runs
    model.load_state_dict(st)
    model.eval()
    return model, ta


# ---------------------------------------------------------------- 1. labels
class MultiPose:
    def __init__(self, threads=1):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.sess = ort.InferenceSession(os.path.join(DATA, "teachers", "movenet-multipose.onnx"), so,
                                         providers=["CPUExecutionProvider"])

    def __call__(self, img, side=256, thr=0.3):
        """RGB image -> (n, 5) boxes x0, y0, x1, y1, score in image px (letterboxed into side x side)."""
        H, W = img.shape[:2]
        M = letterbox_matrix(W, H, side)
        x = cv2.warpAffine(img, M, (side, side), flags=cv2.INTER_LINEAR, borderValue=0)
        out = self.sess.run(None, {"input:0": x[None].astype(np.int32)})[0][0]
        det = out[:, 51:56]
        det = det[det[:, 4] > thr]
        s, ox, oy = M[0, 0], M[0, 2], M[1, 2]
        b = np.stack([(det[:, 1] * side - ox) / s, (det[:, 0] * side - oy) / s,
                      (det[:, 3] * side - ox) / s, (det[:, 2] * side - oy) / s, det[:, 4]], 1)
        b[:, [0, 2]] = b[:, [0, 2]].clip(0, W)
        b[:, [1, 3]] = b[:, [1, 3]].clip(0, H)
        return b.astype(np.float32)


def iou(a, b):
    """a (n,4), b (m,4) x0 y0 x1 y1 -> (n,m)."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0]); y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2]); y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = (x1 - x0).clip(0) * (y1 - y0).clip(0)
    ar = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])
    return inter / (ar(a)[:, None] + ar(b)[None] - inter + 1e-9)


def label_frames(out, smoke=False):
    """Returns list of dicts {src, path, frame, boxes (n,4 x0y0x1y1 image px)}; frames of clips stored as jpg."""
    if os.path.exists(out):
        return [it for it in json.load(open(out)) if clip_allowed(it)]
    from label import sources
    t0 = time.time()
    mp = MultiPose(1)
    items = []
    # coco128_person: GT boxes (all persons, also the small ones)
    paths = sorted(glob.glob(os.path.join(DATA, "coco128_person/images/*.jpg")))[: 8 if smoke else None]
    for p in paths:
        H, W = cv2.imread(p).shape[:2]
        bx = []
        for line in open(p.replace("/images/", "/labels/").replace(".jpg", ".txt")):
            c, cx, cy, w, h = map(float, line.split())
            if int(c) == 0:
                bx.append([(cx - w / 2) * W, (cy - h / 2) * H, (cx + w / 2) * W, (cy + h / 2) * H])
        items.append({"src": "coco128_person", "path": p, "boxes": bx})
    # lspet: MultiPose + the GT person box when MultiPose missed it
    lsp = [(p, box) for p, box, _ in sources() if "/lspet/" in p][: 60 if smoke else None]
    n_added = 0
    for k, (p, box) in enumerate(lsp):
        img = read_rgb(p)
        det = mp(img, 256)
        g = np.array([[box[0], box[1], box[0] + box[2], box[1] + box[3]]], np.float32)
        g[:, [0, 2]] = g[:, [0, 2]].clip(0, img.shape[1]); g[:, [1, 3]] = g[:, [1, 3]].clip(0, img.shape[0])
        bx = det[:, :4].tolist()
        if len(det) == 0 or iou(g, det[:, :4]).max() < 0.3:
            bx.append(g[0].tolist()); n_added += 1
        items.append({"src": "lspet", "path": p, "boxes": bx})
        if k % 500 == 0:
            print(f"[body/label] lspet {k}/{len(lsp)} {time.time() - t0:.0f}s", flush=True)
    # clips: every 5th frame, MultiPose at 512 px
    fdir = os.path.join(os.path.dirname(out), "frames")
    os.makedirs(fdir, exist_ok=True)
    for clip in CLIPS[: 2 if smoke else None]:
        cap = cv2.VideoCapture(os.path.join(DATA, "clips", clip))
        f = 0
        while True:
            ok, bgr = cap.read()
            if not ok or (smoke and f >= 50):
                break
            if f % 5 == 0:
                img = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                det = mp(img, 512)
                fp = os.path.join(fdir, clip.replace("/", "_") + f"_{f:04d}.jpg")
                cv2.imwrite(fp, bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
                items.append({"src": "clip", "path": fp, "boxes": det[:, :4].tolist()})
            f += 1
        print(f"[body/label] clip {clip} {f} frames, {time.time() - t0:.0f}s", flush=True)
    print(f"[body/label] {len(items)} frames, {sum(len(i['boxes']) for i in items)} boxes "
          f"(lspet GT box added {n_added}x) in {time.time() - t0:.0f}s", flush=True)
    json.dump(items, open(out + ".tmp", "w"))
    os.replace(out + ".tmp", out)
    return items


# ---------------------------------------------------------------- 2. augmented letterboxed frames
def aug_frame(img, boxes, rng, plain=False):
    """Random window of the image (zoom in/out, aspect), letterboxed to LB, flip, colour.
    Returns uint8 (LB,LB,3) and boxes (n,4) in letterbox px."""
    H, W = img.shape[:2]
    if plain or rng.random() < 0.2:
        x0, y0, ww, wh = 0.0, 0.0, float(W), float(H)
    else:
        z = float(np.exp(rng.uniform(np.log(0.3), np.log(1.6))))  # < 1 zoom in, > 1 zoom out (persons smaller)
        asp = float(np.exp(rng.uniform(-0.4, 0.4)))
        ww, wh = W * z * asp ** 0.5, H * z / asp ** 0.5
        x0 = rng.uniform(min(0, W - ww), max(0, W - ww))
        y0 = rng.uniform(min(0, H - wh), max(0, H - wh))
    M = letterbox_matrix(ww, wh, LB)
    M[:, 2] -= M[:, :2] @ np.array([x0, y0])
    out = cv2.warpAffine(img, M, (LB, LB), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mask = cv2.warpAffine(np.ones((H, W), np.float32), M, (LB, LB), flags=cv2.INTER_LINEAR, borderValue=0)
    b = np.array(boxes, np.float32).reshape(-1, 4)
    s = M[0, 0]
    b = b * s + np.array([M[0, 2], M[1, 2], M[0, 2], M[1, 2]], np.float32)
    # visible part: inside the image content and the letterbox square
    lo = np.array([max(M[0, 2], 0), max(M[1, 2], 0)]); hi = np.array([min(M[0, 2] + W * s, LB), min(M[1, 2] + H * s, LB)])
    area0 = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    c = b.copy()
    c[:, [0, 2]] = c[:, [0, 2]].clip(lo[0], hi[0]); c[:, [1, 3]] = c[:, [1, 3]].clip(lo[1], hi[1])
    area = (c[:, 2] - c[:, 0]).clip(0) * (c[:, 3] - c[:, 1]).clip(0)
    keep = (area > 0.4 * area0) & (c[:, 2] - c[:, 0] >= 2) & (c[:, 3] - c[:, 1] >= 2)
    ign = (~keep) & (area > 0)  # mostly cut off: neither positive nor negative
    c, cign = c[keep], c[ign]
    x = out.astype(np.float32)
    if not plain:
        if rng.random() < 0.5:
            x = x[:, ::-1]; mask = mask[:, ::-1]
            c[:, [0, 2]] = LB - c[:, [2, 0]]; cign[:, [0, 2]] = LB - cign[:, [2, 0]]
        g = x.mean(-1, keepdims=True)
        x = g + (x - g) * (0.0 if rng.random() < 0.1 else float(np.exp(rng.uniform(-0.6, 0.4))))
        x = (x - 128) * float(np.exp(rng.uniform(-0.35, 0.35))) + 128 + rng.uniform(-40, 40)
        if rng.random() < 0.15:
            x = cv2.GaussianBlur(np.ascontiguousarray(x), (0, 0), rng.uniform(0.5, 1.2))
        x = x * mask[..., None]  # the letterbox border stays exactly 0, as at runtime
    return np.clip(x, 0, 255).round().astype(np.uint8), c, cign


def build_set(items, seed, views, plain_first=True):
    """views: dict src -> augmented views per frame. Returns imgs, list of (boxes, ignore), item index."""
    rng = np.random.default_rng(seed)
    imgs, boxes, src = [], [], []
    for i, it in enumerate(items):
        img = read_rgb(it["path"])
        for v in range(views[it["src"]]):
            x, b, ig = aug_frame(img, it["boxes"], rng, plain=(v == 0 and plain_first))
            imgs.append(x); boxes.append((b, ig)); src.append(i)
    return np.stack(imgs), boxes, np.array(src)


def mosaic_set(items, n, seed):
    """n mosaics: a 2x2 grid of augmented letterboxed frames (2 to 4 of them, the rest black) shrunk to one
    LB x LB frame, so persons come at half the scale and several to a frame. Returns imgs, [(boxes, ignore)]."""
    rng = np.random.default_rng(seed)
    imgs, boxes = [], []
    for _ in range(n):
        k = int(rng.integers(2, 5))
        canvas = np.zeros((2 * LB, 2 * LB, 3), np.uint8)
        bx = []
        for q in range(4):
            if q >= k and rng.random() < 0.5:
                continue
            it = items[int(rng.integers(len(items)))]
            x, b, _ = aug_frame(read_rgb(it["path"]), it["boxes"], rng)
            r, c = divmod(q, 2)
            canvas[r * LB:(r + 1) * LB, c * LB:(c + 1) * LB] = x
            bx += [bb + np.array([c * LB, r * LB, c * LB, r * LB]) for bb in b]
        b = np.array(bx, np.float32).reshape(-1, 4) / 2
        keep = (b[:, 2] - b[:, 0] >= 3) & (b[:, 3] - b[:, 1] >= 3)  # smaller ones: ignored, not negatives
        imgs.append(cv2.resize(canvas, (LB, LB), interpolation=cv2.INTER_AREA))
        boxes.append((b[keep], b[~keep]))
    return np.stack(imgs), boxes


def stem_features(model, imgs, say, bs=32, backbone=False):
    """Features of letterboxed frames: the frozen backbone's (for a body neck) or the whole stem's."""
    fn = model.stem.backbone if backbone else model.stem
    feats, t0 = [], time.time()
    with torch.no_grad():
        for b in range(0, len(imgs), bs):
            x = normalise(torch.from_numpy(imgs[b:b + bs]), model.stem.norm)
            feats.append(fn(x).half())
            if b % (bs * 40) == 0:
                el = time.time() - t0
                say(f"[body/features] {b}/{len(imgs)} {el:.0f}s eta {el / (b + bs) * (len(imgs) - b):.0f}s")
    return torch.cat(feats)


# ---------------------------------------------------------------- 3. targets, agents, training
def targets(boxes):
    """boxes list of (b (n,4), ign (m,4)) letterbox px -> heat (N,G,G), reg (N,4,G,G), pos mask (N,G,G), ignore (N,G,G)."""
    N = len(boxes)
    heat = np.zeros((N, G, G), np.float32); reg = np.zeros((N, 4, G, G), np.float32)
    pos = np.zeros((N, G, G), np.float32); ign = np.zeros((N, G, G), np.float32)
    yy, xx = np.mgrid[0:G, 0:G] + 0.5
    for n, (b, ig) in enumerate(boxes):
        order = np.argsort(-(b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))  # small boxes last: they win a shared cell
        for x0, y0, x1, y1 in b[order]:
            w, h = x1 - x0, y1 - y0
            cx, cy = (x0 + x1) / 2 / STRIDE, (y0 + y1) / 2 / STRIDE
            sig = max(0.5, 0.12 * np.sqrt(w * h) / STRIDE)
            heat[n] = np.maximum(heat[n], np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sig ** 2)))
            c, r = min(int(cx), G - 1), min(int(cy), G - 1)
            heat[n, r, c] = 1.0
            pos[n, r, c] = 1.0
            reg[n, :, r, c] = [cx - c - 0.5, cy - r - 0.5, np.log(max(w, 1) / 16), np.log(max(h, 1) / 16)]
        for x0, y0, x1, y1 in ig:
            c0, c1 = int(max(x0, 0) // STRIDE), int(min(x1, LB - 1) // STRIDE)
            r0, r1 = int(max(y0, 0) // STRIDE), int(min(y1, LB - 1) // STRIDE)
            ign[n, r0:r1 + 1, c0:c1 + 1] = 1.0
    ign *= (1 - pos) * (heat < 0.3)
    return heat, reg, pos, ign


def body_hidden(cin, budget=500):
    """Hidden width of a body agent reading `cin` stem channels: 8, or less where 8 would break the
    per-agent parameter budget (cin*h + h + 9h + h + 5h + 5 <= budget; 48 channels -> 7)."""
    return min(8, (budget - 5) // (cin + 16))


def body_neck(cin, spec):
    """The body neck: spec "224,dw,48" = 1x1 -> 224, depthwise 3x3, 1x1 -> 48 (ReLU6, batch norm while training).
    Returns (layers, output channels)."""
    layers, c = [], cin
    for tok in spec.split(",") if spec else []:
        if tok == "dw":
            layers.append(Conv(c, c, 3, 1, c, "relu6", bn=True))
        else:
            layers.append(Conv(c, int(tok), 1, 1, 1, "relu6", bn=True))
            c = int(tok)
    return torch.nn.Sequential(*layers), c


class BodyNet(torch.nn.Module):
    """The body tier as trained: body neck (may be empty: agents on the stem output) + N agents."""

    def __init__(self, cin, n, neck=""):
        super().__init__()
        self.neck_spec = neck
        self.neck, c = body_neck(cin, neck)
        self.agents = BodyAgents(c, n)

    def fold_bn(self):
        for m in self.neck:
            m.fold_bn()

    def forward(self, f):
        return self.agents(self.neck(f))


def load_body(run, stem_cin, backbone_cin):
    """body.pt of a run -> (BodyNet in eval mode, its checkpoint dict)."""
    bk = torch.load(os.path.join(run, "body.pt"), weights_only=False)
    neck = bk.get("neck", "")
    net = BodyNet(backbone_cin if neck else stem_cin, bk["n"], neck)
    net.fold_bn()
    st = bk["state"]
    if not any(k.startswith("agents.") for k in st):  # before the body neck: agents only
        st = {"agents." + k: v for k, v in st.items()}
    net.load_state_dict(st)
    net.eval()
    return net, bk


class BodyAgents(torch.nn.Module):
    """N independent body agents (grouped convs): C->h k1 relu6, dw3x3 relu6, h->5 k1 (32->8 at 32 channels)."""

    def __init__(self, cin=32, n=6, hidden=None):
        super().__init__()
        hidden = body_hidden(cin) if hidden is None else hidden
        self.n, self.h = n, hidden
        self.inp = Conv(cin, n * hidden, 1, act="relu6")
        self.dw = Conv(n * hidden, n * hidden, 3, 1, n * hidden, "relu6")
        self.out = Conv(n * hidden, n * 5, 1, groups=n)
        with torch.no_grad():
            self.out.conv.bias.view(n, 5)[:, 0] = -2.2  # prior ~0.1 on the centre heatmap
            self.out.conv.bias.view(n, 5)[:, 3:] = 1.0

    def forward(self, f):
        y = self.out(self.dw(self.inp(f)))
        B, _, H, W = y.shape
        return y.view(B, self.n, 5, H, W)


def focal(logit, heat, pos, valid):
    p = torch.sigmoid(logit).clamp(1e-4, 1 - 1e-4)
    lp = -((1 - p) ** 2) * torch.log(p) * pos
    ln = -((1 - heat) ** 4) * (p ** 2) * torch.log(1 - p) * (1 - pos)
    return ((lp + ln) * valid).sum(dim=(-1, -2))  # per sample (and agent)


def train_agents(feats, heat, reg, pos, ign, bagmask, epochs, seed, say, bs=64, lr=3e-3, neck=""):
    """bagmask (N_samples, n_agents) 1 = agent trains on the sample. Returns the BodyNet, batch norms folded."""
    torch.manual_seed(seed)
    n_ag = bagmask.shape[1]
    net = BodyNet(feats.shape[1], n_ag, neck)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
    N = len(feats)
    steps = epochs * ((N + bs - 1) // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for ep in range(epochs):
        perm = torch.randperm(N, generator=g)
        tot = np.zeros(3)
        for k in range(0, N, bs):
            j = perm[k:k + bs]
            y = net(feats[j].float())  # B, A, 5, G, G
            bm = bagmask[j]  # B, A
            h, p, v = heat[j][:, None], pos[j][:, None], (1 - ign[j])[:, None]
            npos = (p.sum(dim=(-1, -2)) * bm).sum().clamp_min(1.0)
            lh = (focal(y[:, :, 0], h, p, v) * bm).sum() / npos
            m = p[:, :, None] * bm[:, :, None, None, None]
            l_off = (F.smooth_l1_loss(y[:, :, 1:3], reg[j][:, None, :2].expand(-1, n_ag, -1, -1, -1), reduction="none", beta=0.2) * m).sum() / npos
            l_sz = (F.smooth_l1_loss(y[:, :, 3:5], reg[j][:, None, 2:].expand(-1, n_ag, -1, -1, -1), reduction="none", beta=0.2) * m).sum() / npos
            loss = lh + l_off + l_sz
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
            tot += [lh.item(), l_off.item(), l_sz.item()]
        nb = (N + bs - 1) // bs
        say(f"[body/train] epoch {ep + 1}/{epochs} heat {tot[0] / nb:.3f} off {tot[1] / nb:.3f} size {tot[2] / nb:.3f} "
            f"{time.time() - t0:.0f}s")
    net.eval()
    net.fold_bn()
    return net


# ---------------------------------------------------------------- 4. decode + evaluation
def decode_boxes(y, thr=0.05, max_det=20):
    """y (5,G,G) = the agents' averaged outputs -> (n,5) x0 y0 x1 y1 score in letterbox px (3x3 local maxima)."""
    y = torch.as_tensor(y, dtype=torch.float32)
    lg = y[0]
    mx = F.max_pool2d(lg[None, None], 3, 1, 1)[0, 0]
    rr, cc = torch.nonzero((lg >= mx) & (torch.sigmoid(lg) > thr), as_tuple=True)
    out = []
    for r, c in zip(rr.tolist(), cc.tolist()):
        cx = (c + 0.5 + float(y[1, r, c])) * STRIDE
        cy = (r + 0.5 + float(y[2, r, c])) * STRIDE
        w, h = float(np.exp(y[3, r, c])) * STRIDE, float(np.exp(y[4, r, c])) * STRIDE
        out.append([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, float(torch.sigmoid(lg[r, c]))])
    out = np.array(out, np.float32).reshape(-1, 5)
    return out[np.argsort(-out[:, 4])][:max_det]


def eval_boxes(predict, split="coco_mini", limit=None, thr_recall=0.3):
    """predict(letterboxed uint8 LBxLBx3) -> (5,G,G) averaged agent output. COCO bbox AP + recall at IoU 0.5."""
    import contextlib
    import io
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    ann_file, img_dir = EVAL_SPLITS[split]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(ann_file)
    img_ids = sorted(gt.getImgIds())[:limit]
    res, t = [], 0.0
    for iid in img_ids:
        im = gt.loadImgs(iid)[0]
        img = read_rgb(os.path.join(img_dir, im["file_name"]))
        H, W = img.shape[:2]
        M = letterbox_matrix(W, H, LB)
        x = cv2.warpAffine(img, M, (LB, LB), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        t0 = time.perf_counter()
        y = predict(x)
        t += time.perf_counter() - t0
        for x0, y0, x1, y1, sc in decode_boxes(y, 0.01, 100):
            s, ox, oy = M[0, 0], M[0, 2], M[1, 2]
            bx0, by0 = max((x0 - ox) / s, 0), max((y0 - oy) / s, 0)
            bx1, by1 = min((x1 - ox) / s, W), min((y1 - oy) / s, H)
            if bx1 > bx0 and by1 > by0:
                res.append({"image_id": iid, "category_id": 1, "bbox": [float(bx0), float(by0), float(bx1 - bx0),
                                                                         float(by1 - by0)], "score": float(sc)})
    with contextlib.redirect_stdout(io.StringIO()) as buf:
        dt = gt.loadRes(res) if res else COCO()
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = img_ids
        ev.params.catIds = [1]
        ev.evaluate(); ev.accumulate(); ev.summarize()
    # recall at IoU 0.5 over non-crowd GT persons: all detections (max 100) and those with score > thr_recall
    rec = ev.eval["recall"]  # T, K, A, M
    r50_all = float(rec[0, 0, 0, -1])
    n_gt = hit = 0
    for iid in img_ids:
        g = [a for a in gt.loadAnns(gt.getAnnIds(imgIds=iid, catIds=[1])) if not a.get("iscrowd", 0)]
        if not g:
            continue
        gb = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]] for a in g])
        d = np.array([[r["bbox"][0], r["bbox"][1], r["bbox"][0] + r["bbox"][2], r["bbox"][1] + r["bbox"][3]]
                      for r in res if r["image_id"] == iid and r["score"] > thr_recall]).reshape(-1, 4)
        n_gt += len(gb)
        if len(d):
            ious = iou(gb, d)
            used = set()
            for gi in np.argsort(-ious.max(1)):  # greedy one-to-one matching
                j = int(np.argmax([ious[gi, k] if k not in used else -1 for k in range(len(d))]))
                if ious[gi, j] >= 0.5 and j not in used:
                    used.add(j); hit += 1
    return {"AP": float(ev.stats[0]), "AP50": float(ev.stats[1]), "AP75": float(ev.stats[2]),
            "AP_large": float(ev.stats[5]), "AP_medium": float(ev.stats[4]),
            "recall50_all_dets": r50_all, f"recall50_score_gt_{thr_recall}": hit / max(n_gt, 1), "n_gt": n_gt,
            "images": len(img_ids), "sec_per_image_agents": t / max(len(img_ids), 1)}, res, buf.getvalue()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=os.path.join(CACHE, "runs", "e1"), help="run folder with the keypoint student model.pt")
    ap.add_argument("--agents", type=int, default=6)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--bag", type=float, default=0.8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--neck", default="224,dw,48", help='body neck on the frozen backbone ("" = agents on the stem output)')
    ap.add_argument("--mosaics", type=int, default=6000, help="2x2 mosaic frames added to the training set")
    ap.add_argument("--body-side", type=int, default=0,
                    help="side of the letterboxed frame the body tier runs on in the plugin (bundle detector.body_side; "
                         "0 = the stem's side); training stays at the stem's side, the stem being fully convolutional")
    ap.add_argument("--coco-views", type=int, default=24,
                    help="augmented views per coco128_person photo (lspet: 1, clip frames: 3)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--labels-only", action="store_true",
                    help="only label the frames with MultiPose (cached; 1 thread, so run.sh runs it beside label.py)")
    a = ap.parse_args()
    if a.smoke:
        a.agents, a.epochs, a.mosaics = 2, 2, 16
    bdir = os.path.join(CACHE, "body" + ("_smoke" if a.smoke else ""))
    os.makedirs(bdir, exist_ok=True)
    if a.labels_only:
        t0 = time.time()
        items = label_frames(os.path.join(bdir, "frames.json"), a.smoke)
        print(f"[body/labels] {len(items)} photos/frames in {bdir}/frames.json, {time.time() - t0:.0f}s", flush=True)
        return
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    say = run_log(os.path.join(a.run, "log_body.txt"))

    say("[body] args", json.dumps(vars(a)))
    t_start = time.time()
    model, ta = load_student(a.run)
    use_side(ta["size"])
    say(f"[body] letterbox {LB} px, grid {G}x{G}")
    items = label_frames(os.path.join(bdir, "frames.json"), a.smoke)
    views = {"coco128_person": 3 if a.smoke else a.coco_views, "lspet": 1, "clip": 1 if a.smoke else 3}
    mstamp = int(os.path.getmtime(os.path.join(a.run, "model.pt")))
    key = (f"feats_{os.path.basename(os.path.normpath(a.run))}_{mstamp}_n{len(items)}_v{views['coco128_person']}-"
           f"{views['lspet']}-{views['clip']}_m{a.mosaics}_lb{LB}_seed{a.seed}{'_bb' if a.neck else ''}.pt")
    fpath = os.path.join(bdir, key)
    if os.path.exists(fpath):
        feats, boxes, src = torch.load(fpath, weights_only=False)
        say(f"[body/features] cached {fpath}")
    else:
        t0 = time.time()
        imgs, boxes, src = build_set(items, a.seed, views)
        if a.mosaics:
            mi, mb = mosaic_set(items, a.mosaics, a.seed + 2)
            imgs, boxes, src = np.concatenate([imgs, mi]), list(boxes) + mb, np.concatenate([src, np.full(len(mi), -1)])
        say(f"[body/data] {len(imgs)} letterboxed frames ({a.mosaics} mosaics) from {len(items)} photos/frames, "
            f"{sum(len(b) for b, _ in boxes)} boxes, {time.time() - t0:.0f}s")
        feats = stem_features(model, imgs, say, backbone=bool(a.neck))
        torch.save((feats, boxes, src), fpath + ".tmp")
        os.replace(fpath + ".tmp", fpath)
        say(f"[body/features] {tuple(feats.shape)} in {time.time() - t0:.0f}s")
    heat, reg, pos, ign = (torch.from_numpy(v) for v in targets(boxes))
    # bagging over source photos: agent k trains on its own random 80 % of them (agent 0 on all)
    rng = np.random.default_rng(a.seed + 1)
    bag_items = (rng.random((len(items), a.agents)) < a.bag).astype(np.float32)
    bag_items[:, 0] = 1.0
    bagmask = torch.from_numpy(np.where(src[:, None] >= 0, bag_items[src], 1.0).astype(np.float32))  # mosaics: all
    t0 = time.time()
    net = train_agents(feats, heat, reg, pos, ign, bagmask, a.epochs, a.seed, say, neck=a.neck)
    t_train = time.time() - t0
    torch.save({"state": net.state_dict(), "n": a.agents, "neck": a.neck, "args": vars(a), "bag": a.bag},
               os.path.join(a.run, "body.pt"))
    fn = model.stem.backbone if a.neck else model.stem

    def predict(x):
        with torch.no_grad():
            f = fn(normalise(torch.from_numpy(x)[None], model.stem.norm))
            return net(f)[0].mean(0).numpy()

    train_side = LB
    use_side(a.body_side or LB)
    m, res, summary = eval_boxes(predict, limit=10 if a.smoke else None)
    use_side(train_side)
    say(summary)
    say(f"[body/eval] coco_mini (held out) float, letterboxed to {a.body_side or train_side} px:", json.dumps(m))
    json.dump(res, open(os.path.join(a.run, "body_results_coco_mini.json"), "w"))
    rp = os.path.join(a.run, "results.json")
    r = json.load(open(rp)) if os.path.exists(rp) else {}
    r["body"] = {"coco_mini_float": m, "train_seconds": t_train, "total_seconds": time.time() - t_start,
                 "frames": int(len(feats)), "agents": a.agents, "epochs": a.epochs, "neck": a.neck, "mosaics": a.mosaics, "body_side": a.body_side,
                 "sources": {s: sum(1 for i in items if i["src"] == s) for s in views}, "views": views}
    json.dump(r, open(rp, "w"), indent=1)
    say(f"[body] done in {time.time() - t_start:.0f}s")


if __name__ == "__main__":
    main()
