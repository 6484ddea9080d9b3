//! Track/detection similarity: a blend of box IoU and keypoint OKS.

use crate::pose::{BBox, Keypoint, NUM_KEYPOINTS, Visibility};

/// COCO's per-keypoint OKS sigmas, in COCO keypoint order.
pub const COCO_SIGMAS: [f32; NUM_KEYPOINTS] = [
    0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
    0.087, 0.087, 0.089, 0.089,
];

/// Object keypoint similarity of `detected` keypoints to `expected` positions, as COCO
/// defines it: mean over the keypoints present in both of exp(-d² / (2 s² (2σ)²)), with
/// s² the object area. `None` when no keypoint can be compared.
///
/// `expected` holds `None` for keypoints the track has never seen.
pub fn oks(
    detected: &[Keypoint; NUM_KEYPOINTS],
    expected: &[Option<(f32, f32)>; NUM_KEYPOINTS],
    area: f32,
) -> Option<f32> {
    if area.is_nan() || area <= 0.0 {
        return None;
    }
    let mut sum = 0.0f32;
    let mut n = 0u32;
    for ((k, e), sigma) in detected.iter().zip(expected).zip(COCO_SIGMAS) {
        let Some((ex, ey)) = *e else { continue };
        if k.visibility == Visibility::Absent || !k.x.is_finite() || !k.y.is_finite() {
            continue;
        }
        let (dx, dy) = (k.x - ex, k.y - ey);
        let kappa = 2.0 * sigma;
        sum += (-(dx * dx + dy * dy) / (2.0 * area * kappa * kappa)).exp();
        n += 1;
    }
    (n > 0).then(|| sum / n as f32)
}

/// Similarity in 0..=1 of a detection to a track's prediction: `iou_weight` of IoU plus the
/// rest of OKS (IoU alone when no keypoint can be compared). Boxes that do not overlap at
/// all score 0 without computing OKS: with a motion model a true match always overlaps,
/// and skipping the 17 exponentials of far pairs is what keeps crowds cheap.
pub fn similarity(
    track_box: &BBox,
    track_keypoints: &[Option<(f32, f32)>; NUM_KEYPOINTS],
    det_box: &BBox,
    det_keypoints: &[Keypoint; NUM_KEYPOINTS],
    iou_weight: f32,
) -> f32 {
    let iou = track_box.iou(det_box);
    if iou.is_nan() || iou <= 0.0 {
        return 0.0;
    }
    match oks(det_keypoints, track_keypoints, track_box.w * track_box.h) {
        Some(o) => iou_weight * iou + (1.0 - iou_weight) * o,
        None => iou,
    }
}
