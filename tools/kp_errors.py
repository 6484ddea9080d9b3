"""How far off the keypoints of a ground-truth-box run are, and what finer localisation would be
worth: per keypoint, the error in keypoint-crop pixels (the crop the plugin runs: the box's longer
side x 1.25, scaled to --crop px; a stem cell is 16 px at 192), and keypoint AP (pycocotools) after an
oracle moves the labelled keypoints that are closer than R crop px to their truth by a factor F
(R 16 = within one cell). The oracle shows where AP is lost; it is not a result.

    python tools/kp_errors.py ANNOTATIONS RESULTS.json [--crop 192] [--oracle 16:0.5 24:0.5 1000:0.5]

RESULTS.json: `swarmpose eval-coco ... --gt-boxes` output (one pose per annotated person; each
person is matched to the pose of its image nearest to its labelled keypoints).
"""
import argparse
import contextlib
import copy
import io
import json

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

NAMES = ["nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
         "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle"]
MIRROR = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


def keypoint_ap(gt, results):
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats[0], ev.stats[1]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("annotations")
    ap.add_argument("results")
    ap.add_argument("--crop", type=float, default=192.0, help="keypoint crop side in px")
    ap.add_argument("--oracle", nargs="*", default=["16:0.5", "24:0.5", "16:0.25", "1000:0.5"],
                    help="R:F pairs: move keypoints closer than R crop px to their truth by factor F")
    a = ap.parse_args()
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(a.annotations)
    results = json.load(open(a.results))
    by_image = {}
    for i, r in enumerate(results):
        by_image.setdefault(r["image_id"], []).append(i)
    matches = []  # (result index, labelled keypoints (17, 3), crop px per image px)
    for g in gt.loadAnns(gt.getAnnIds(catIds=[1])):
        if g["iscrowd"] or g["num_keypoints"] == 0 or g["image_id"] not in by_image:
            continue
        truth = np.array(g["keypoints"], float).reshape(17, 3)
        seen = truth[:, 2] > 0
        ids = by_image[g["image_id"]]
        dist = [np.linalg.norm(np.array(results[i]["keypoints"]).reshape(17, 3)[seen, :2] - truth[seen, :2], axis=1).mean()
                for i in ids]
        matches.append((ids[int(np.argmin(dist))], truth, a.crop / (max(g["bbox"][2], g["bbox"][3]) * 1.25)))

    errors, swapped, pairs, occluded, occluded_far = [], 0, 0, 0, 0
    for i, truth, scale in matches:
        pose = np.array(results[i]["keypoints"]).reshape(17, 3)
        err = np.linalg.norm(pose[:, :2] - truth[:, :2], axis=1) * scale
        for k in np.flatnonzero(truth[:, 2] > 0):
            errors.append((k, err[k]))
            j = MIRROR[k]
            if j != k and truth[j, 2] > 0:
                pairs += 1
                swapped += np.linalg.norm(pose[k, :2] - truth[j, :2]) * scale < err[k]
            if truth[k, 2] == 1:
                occluded += 1
                occluded_far += err[k] > 32
    errors = np.array(errors)
    e = errors[:, 1]
    print(f"{len(matches)} people, {len(e)} labelled keypoints; error in {a.crop:.0f} px crops: median {np.median(e):.1f}, "
          f"< 4 px {np.mean(e < 4):.2f}, < 8 px {np.mean(e < 8):.2f}, < 16 px {np.mean(e < 16):.2f}, > 32 px {np.mean(e > 32):.2f}")
    print(f"closer to the mirrored keypoint's truth: {swapped / max(pairs, 1):.2f} of {pairs}; "
          f"occluded (v=1) {occluded}, of which > 32 px off: {occluded_far}")
    for k, name in enumerate(NAMES):
        ek = errors[errors[:, 0] == k, 1]
        if len(ek):
            print(f"  {name:11s} median {np.median(ek):5.1f} px, < 8 px {np.mean(ek < 8):.2f}, > 32 px {np.mean(ek > 32):.2f}")

    base = keypoint_ap(gt, results)
    print(f"keypoint AP as is: {base[0]:.3f} (AP50 {base[1]:.3f})")
    for spec in a.oracle:
        radius, factor = (float(v) for v in spec.split(":"))
        moved = copy.deepcopy(results)
        for i, truth, scale in matches:
            pose = np.array(moved[i]["keypoints"]).reshape(17, 3)
            err = np.linalg.norm(pose[:, :2] - truth[:, :2], axis=1) * scale
            near = (truth[:, 2] > 0) & (err < radius)
            pose[near, :2] = truth[near, :2] + (pose[near, :2] - truth[near, :2]) * factor
            moved[i]["keypoints"] = pose.reshape(-1).tolist()
        ap, ap50 = keypoint_ap(gt, moved)
        print(f"oracle: errors under {radius:g} px times {factor:g}: AP {ap:.3f} (AP50 {ap50:.3f})")


if __name__ == "__main__":
    main()
