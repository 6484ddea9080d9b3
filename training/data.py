"""Training set from the teacher-label cache: label filtering (two teachers must agree) and
augmented square crops whose keypoints follow every transform."""
import numpy as np

from common import FLIP_PERM, apply_affine, crop_matrix, read_rgb, square_box, warp


def filter_labels(lab, agree=0.08, conf=0.3, neg_conf=0.15):
    """Per person & keypoint: (x, y, w) in image px with w=1 trusted positive, w=-1 trusted absent, 0 ignore.

    Positive: Thunder (flip-averaged) score > conf and within agree*side of Lightning or of the lspet GT,
    and Thunder's two flip passes agree. Absent: Thunder and Lightning both under neg_conf."""
    th, li, gt, boxes = lab["thunder"], lab["lightning"], lab["gt"], lab["boxes"]
    side = np.maximum(boxes[:, 2], boxes[:, 3])[:, None] * 1.25
    d_l = np.linalg.norm(th[..., :2] - li[..., :2], axis=-1) / side
    d_g = np.where(gt[..., 2] >= 0, np.linalg.norm(th[..., :2] - gt[..., :2], axis=-1) / side, np.inf)
    ok = (th[..., 2] > conf) & ((d_l < agree) | (d_g < agree)) & (lab["thunder_flip_dis"] * 256 / 256 < agree)
    neg = (th[..., 2] < neg_conf) & (li[..., 2] < neg_conf + 0.05)
    w = np.where(ok, 1.0, np.where(neg, -1.0, 0.0)).astype(np.float32)
    return np.concatenate([th[..., :2], w[..., None]], -1)


def augment_params(rng, strength=1.0, lowres=0.0):
    """Random augmentation; lowres > 0: with that probability the crop is seen at a lower resolution (its
    draws come last, and only when enabled, so runs without it keep their crops)."""
    if strength <= 0:
        return {"scale": 1.0, "shift": np.zeros(2), "rot": 0.0, "flip": False, "bright": 0.0, "contrast": 1.0,
                "sat": 1.0, "gray": False, "blur": False, "occl": 0, "res": 1.0}
    p = {
        "scale": float(np.exp(rng.uniform(-0.25, 0.25) * strength)),
        "shift": rng.uniform(-0.12, 0.12, 2) * strength,
        "rot": float(rng.normal(0, 20) * strength) if rng.random() < 0.6 else 0.0,
        "flip": bool(rng.random() < 0.5),
        "bright": float(rng.uniform(-40, 40) * strength),
        "contrast": float(np.exp(rng.uniform(-0.35, 0.35) * strength)),
        "sat": float(np.exp(rng.uniform(-0.6, 0.4) * strength)),
        "gray": bool(rng.random() < 0.1),
        "blur": bool(rng.random() < 0.15),
        "occl": int(rng.integers(0, 3)) if rng.random() < 0.4 else 0,
        "res": 1.0,
    }
    if lowres > 0 and rng.random() < lowres:
        # Medium COCO people (32-96 px boxes) reach the stem upsampled 1-3x from their few pixels; lspet's
        # people are ~150 px tall, so the student rarely sees such crops unless we make them.
        p["res"] = float(np.exp(rng.uniform(np.log(1 / 3), 0)))
    return p


def make_crop(img, box, kps, size, p, rng, margin=0.25):
    """Augmented crop (size x size uint8) and keypoints (17,3 crop px, weight) following the transform."""
    cx, cy, side = square_box(box, margin)
    side *= p["scale"]
    cx += p["shift"][0] * side
    cy += p["shift"][1] * side
    M = crop_matrix(cx, cy, side, size, p["rot"], p["flip"])
    crop = warp(img, M, size).astype(np.float32)
    k = kps.copy()
    k[:, :2] = apply_affine(M, kps[:, :2])
    if p["flip"]:
        k = k[FLIP_PERM]
    if p["gray"]:
        crop[:] = crop.mean(-1, keepdims=True)
    else:
        g = crop.mean(-1, keepdims=True)
        crop = g + (crop - g) * p["sat"]
    crop = (crop - 128) * p["contrast"] + 128 + p["bright"]
    if p["blur"]:
        import cv2
        crop = cv2.GaussianBlur(crop, (0, 0), rng.uniform(0.6, 1.5))
    if p.get("res", 1.0) < 1.0:  # seen at r x r pixels (area average), then upsampled as the detector does
        import cv2
        r = max(8, int(round(size * p["res"])))
        crop = cv2.resize(cv2.resize(crop, (r, r), interpolation=cv2.INTER_AREA), (size, size),
                          interpolation=cv2.INTER_LINEAR)
    for _ in range(p["occl"]):  # random occluding patch (noise or flat colour)
        w, h = (rng.uniform(0.1, 0.35, 2) * size).astype(int)
        x0, y0 = rng.integers(0, size - w), rng.integers(0, size - h)
        crop[y0:y0 + h, x0:x0 + w] = rng.uniform(0, 255, 3) if rng.random() < 0.5 else rng.uniform(0, 255, (h, w, 3))
        inside = (k[:, 0] >= x0) & (k[:, 0] < x0 + w) & (k[:, 1] >= y0) & (k[:, 1] < y0 + h)
        k[inside & (k[:, 2] > 0), 2] = 0.0  # hidden by the patch: neither positive nor negative
    out = (k[:, 0] < 0) | (k[:, 1] < 0) | (k[:, 0] >= size) | (k[:, 1] >= size)
    k[out & (k[:, 2] > 0), 2] = -1.0  # outside the crop: absent
    return np.clip(crop, 0, 255).astype(np.uint8), k.astype(np.float32), M


def build_crops(lab, idx, size, n_aug, seed, strength=1.0, first_plain=True, coco_aug=0, lowres=0.0,
                matrices=False):
    """n_aug crops per person (the first one unaugmented if first_plain); coco_aug > 0: that many for the people of
    COCO photos (coco128_person: the only photos of the held-out split's kind); lowres: see augment_params.
    Returns uint8 (N,S,S,3), kps (N,17,3), person ids, and with matrices=True each crop's image -> crop affine
    (N,2,3)."""
    kps_all = filter_labels(lab)
    rng = np.random.default_rng(seed)
    crops, kps, pid, mats = [], [], [], []
    last, img = None, None
    for i in idx:
        p = str(lab["paths"][i])
        if p != last:
            img, last = read_rgb(p), p
        for a in range(coco_aug if coco_aug and "coco128_person" in p else n_aug):
            if a == 0 and first_plain:
                prm = augment_params(rng, 0.0)
            else:
                prm = augment_params(rng, strength, lowres)
            c, k, M = make_crop(img, lab["boxes"][i], kps_all[i], size, prm, rng)
            crops.append(c); kps.append(k); pid.append(i); mats.append(M)
    if matrices:  # also each crop's image -> crop affine (the region agents' box targets follow it)
        return np.stack(crops), np.stack(kps), np.array(pid), np.stack(mats)
    return np.stack(crops), np.stack(kps), np.array(pid)
