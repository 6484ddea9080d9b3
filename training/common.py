"""Shared helpers: paths, square person crops, teachers, pycocotools evaluation."""
import json
import os
import time

import cv2
import numpy as np

DATA = os.environ.get("SWARMPOSE_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
if not os.path.isdir(DATA):
    DATA = "/work/shared/data"
CACHE = os.environ.get("SWARMPOSE_TRAIN_CACHE", "/work/cache/train")
TEACHERS = os.path.join(DATA, "teachers")

# held-out evaluation splits (NEVER used for training)
EVAL_SPLITS = {
    "coco_mini": (os.path.join(DATA, "coco_mini/annotations/person_keypoints_train2017.json"),
                  os.path.join(DATA, "coco_mini/train2017")),
    "mmpose_coco": (os.path.join(DATA, "mmpose/coco/test_coco.json"), os.path.join(DATA, "mmpose/coco")),
}

# COCO-17 left/right swap for horizontal flips
FLIP_PERM = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
KP_NAMES = ["nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_sho", "r_sho", "l_elb", "r_elb",
            "l_wri", "r_wri", "l_hip", "r_hip", "l_kne", "r_kne", "l_ank", "r_ank"]


def square_box(bbox, margin=0.25):
    """COCO bbox (x, y, w, h) -> square (cx, cy, side) enlarged by `margin` (0.25 = 25 %)."""
    x, y, w, h = bbox
    return x + w / 2.0, y + h / 2.0, max(w, h) * (1.0 + margin)


def crop_matrix(cx, cy, side, out, rot_deg=0.0, flip=False):
    """2x3 affine mapping image pixels -> crop pixels (crop is out x out).

    Pixel-centre convention: image point (cx, cy) lands on the crop centre out/2."""
    s = out / side
    a = np.deg2rad(rot_deg)
    c, si = np.cos(a) * s, np.sin(a) * s
    M = np.array([[c, si, 0.0], [-si, c, 0.0]])
    M[:, 2] = np.array([out / 2.0, out / 2.0]) - M[:, :2] @ np.array([cx, cy])
    if flip:
        F = np.array([[-1.0, 0.0, out], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        M = (F @ np.vstack([M, [0, 0, 1]]))[:2]
    return M


def letterbox_matrix(W, H, out=128):
    """2x3 affine: whole frame (W x H) -> centred letterbox out x out (the runtime's convention, exactly).

    s = out / max(W, H); ox = (out - W s) / 2; oy = (out - H s) / 2; M = [[s, 0, ox], [0, s, oy]].
    Used with cv2.warpAffine (bilinear, border 0) as in warp(): output pixel (u, v) samples the frame at
    pixel-index coordinates ((u - ox) / s, (v - oy) / s), pixel centres at integers (the same convention
    as crop_matrix). Points map as x' = s x + ox, y' = s y + oy; back with x = (x' - ox) / s."""
    s = out / max(W, H)
    return np.array([[s, 0.0, (out - W * s) / 2.0], [0.0, s, (out - H * s) / 2.0]])


def warp(img, M, out):
    return cv2.warpAffine(img, M, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def apply_affine(M, pts):
    return pts @ M[:, :2].T + M[:, 2]


def invert_affine(M):
    return cv2.invertAffineTransform(M)


def read_rgb(path):
    # labels.npz stores paths like <worktree>/training/../../shared/data/...; resolve them lexically so they
    # still work after that worktree is gone, and fall back to DATA for the part after "shared/data/"
    path = os.path.normpath(str(path))
    if not os.path.exists(path) and "shared/data/" in path:
        path = os.path.join(DATA, path.split("shared/data/", 1)[1])
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


# ---------------------------------------------------------------- teachers
class Thunder:
    size = 256
    HEATMAP = "StatefulPartitionedCall/Sigmoid:0"  # the keypoint heatmap head (Sigmoid_1 is the centre head)

    def __init__(self, threads=1, heatmap=False):
        """heatmap: a session for heatmap() only: the graph cut at the keypoint heatmap head, so the offset head
        and the decoding that only the keypoint output needs are not run (the same bits, ~8 % less time:
        training/check_heatmaps.py, training/README "One command", fifteenth session)."""
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        model = os.path.join(TEACHERS, "movenet-thunder.onnx")
        self.with_heatmap = heatmap
        if heatmap:
            import onnx
            m = onnx.shape_inference.infer_shapes(onnx.load(model))  # the Extractor needs the value infos
            model = onnx.utils.Extractor(m).extract_model(["input:0"], [self.HEATMAP])
            model = model.SerializeToString()
        self.sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        self.inp = self.sess.get_inputs()[0].name

    def __call__(self, crop_rgb):
        """crop (256,256,3) uint8 -> (17,3) x, y in crop pixels, score."""
        assert not self.with_heatmap, "Thunder(heatmap=True) has only the heatmap output"
        out = self.sess.run(None, {self.inp: crop_rgb[None].astype(np.int32)})[0][0, 0]
        return np.stack([out[:, 1] * self.size, out[:, 0] * self.size, out[:, 2]], 1)

    def heatmap(self, crop_rgb):
        """crop (256,256,3) uint8 -> (17,64,64) the keypoint heatmap's sigmoid (stride 4); needs heatmap=True."""
        assert self.with_heatmap, "Thunder(heatmap=True) exposes the heatmap output"
        h = self.sess.run([self.HEATMAP], {self.inp: crop_rgb[None].astype(np.int32)})[0][0]
        assert h.shape == (17, 64, 64), h.shape
        return h


_HEAT_THUNDER = None  # this worker process's single-threaded Thunder (thunder_heatmaps)


def thunder_heatmaps(crops):
    """Worker process: Thunder's keypoint heatmaps (N,17,64,64) of crops of any size, each resized to 256 px.
    One thread per process: two such processes made the full run's 24 512 heatmaps in 458 s against 596 s for one
    Thunder on two threads, with the same bits (training/README "One command", fourteenth session)."""
    global _HEAT_THUNDER
    if _HEAT_THUNDER is None:
        _HEAT_THUNDER = Thunder(1, heatmap=True)
    return np.stack([_HEAT_THUNDER.heatmap(cv2.resize(c, (256, 256), interpolation=cv2.INTER_LINEAR))
                     for c in crops])


class Lightning:
    size = 192

    def __init__(self, threads=1):
        from ai_edge_litert.interpreter import Interpreter
        self.it = Interpreter(os.path.join(TEACHERS, "movenet_singlepose_lightning_int8_4.tflite"), num_threads=threads)
        self.it.allocate_tensors()
        self.i = self.it.get_input_details()[0]
        self.o = self.it.get_output_details()[0]

    def __call__(self, crop_rgb):
        self.it.set_tensor(self.i["index"], crop_rgb[None].astype(self.i["dtype"]))
        self.it.invoke()
        out = self.it.get_tensor(self.o["index"])[0, 0]
        return np.stack([out[:, 1] * self.size, out[:, 0] * self.size, out[:, 2]], 1)


# ---------------------------------------------------------------- evaluation
def eval_people(split):
    """Persons scored by keypoint AP: non-crowd with >= 1 labelled keypoint (others are ignored by COCOeval)."""
    ann_file, img_dir = EVAL_SPLITS[split]
    d = json.load(open(ann_file))
    imgs = {im["id"]: im for im in d["images"]}
    people = [a for a in d["annotations"] if a.get("num_keypoints", 0) > 0 and not a.get("iscrowd", 0)]
    return ann_file, img_dir, imgs, people


def predict_split(split, predict_crop, crop_size, margin=0.25, limit=None):
    """Top-down with ground-truth boxes. predict_crop(crop uint8 HxWx3) -> (17,3) crop x, y, score.
    Returns COCO results list and seconds per crop."""
    ann_file, img_dir, imgs, people = eval_people(split)
    if limit:
        people = people[:limit]
    results, cache, t = [], {}, 0.0
    for a in people:
        im = imgs[a["image_id"]]
        if im["id"] not in cache:
            cache = {im["id"]: read_rgb(os.path.join(img_dir, im["file_name"]))}
        img = cache[im["id"]]
        cx, cy, side = square_box(a["bbox"], margin)
        M = crop_matrix(cx, cy, side, crop_size)
        crop = warp(img, M, crop_size)
        t0 = time.perf_counter()
        kp = predict_crop(crop)
        t += time.perf_counter() - t0
        xy = apply_affine(invert_affine(M), kp[:, :2])
        kps = np.concatenate([xy, np.ones((17, 1))], 1).reshape(-1)
        results.append({"image_id": im["id"], "category_id": 1, "keypoints": [float(v) for v in kps],
                        "score": float(np.mean(kp[:, 2]))})
    return results, t / max(len(people), 1)


def coco_kp_ap(split, results, verbose=False):
    """Keypoint AP (OKS) with pycocotools, restricted to the images that were predicted."""
    import contextlib
    import io
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    ann_file = EVAL_SPLITS[split][0]
    with contextlib.redirect_stdout(io.StringIO()) as buf:
        gt = COCO(ann_file)
        dt = gt.loadRes(results) if results else None
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.imgIds = sorted({r["image_id"] for r in results})
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    if verbose:
        print(buf.getvalue())
    return {"AP": float(ev.stats[0]), "AP50": float(ev.stats[1]), "AP75": float(ev.stats[2]),
            "AP_medium": float(ev.stats[3]), "AP_large": float(ev.stats[4]), "AR": float(ev.stats[5])}


def run_log(path):
    """A `say(*parts)` that prints a line and appends it to the log file at `path`."""
    log = open(path, "a")

    def say(*s):
        line = " ".join(str(x) for x in s)
        print(line, flush=True)
        log.write(line + "\n"); log.flush()
    return say


def exit_on_check_args(tag, ap, a, saved, skip):
    """`--check-args MODEL_PT`: exit 0 when the arguments `saved` with a model equal the current ones `a` (but the
    names in `skip`; arguments missing from `saved` count at their defaults), else 1, saying which differ."""
    import sys
    diff = {k: (saved.get(k, ap.get_default(k)), v) for k, v in vars(a).items()
            if k not in skip and str(saved.get(k, ap.get_default(k))) != str(v)}
    print(f"[{tag}] --check-args", a.check_args, "matches" if not diff else f"differs: {diff}")
    sys.exit(1 if diff else 0)
