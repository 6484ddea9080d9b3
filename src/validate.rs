//! Validator agents: skeleton constraints learned from training poses
//! (`training/skeleton_constraints.py` → `models/skeleton_constraints.json`, compiled in) that
//! judge whether a keypoint is plausible given the rest of its person (plain Rust).
//!
//! Four validators, each a check of one keypoint at one position against the others:
//! - **position**: box-relative position inside the learned 0.5–99.5 % range (plus slack);
//! - **limb length**: every skeleton link to a placed neighbour no longer than the learned
//!   99.5 % length (relative to the box's larger side, times a slack factor);
//! - **left/right order**: for pairs whose order follows the person's facing (shoulders and
//!   hips) in at least 95 % of training persons, the same order when they are clearly apart;
//! - **joint angle**: elbow and knee angles no sharper than the learned 0.5 % angle.
//!
//! [`SkeletonConstraints::check`] counts the violated and satisfied checks;
//! swarmconsensus vetoes the worst offender, tries the other candidates' positions (repair)
//! and otherwise marks the keypoint hidden.

use crate::pose::{BBox, Keypoint, NUM_KEYPOINTS};
use serde::Deserialize;
use std::sync::LazyLock;

/// The constraints file compiled into the plugin.
pub const BUILTIN_JSON: &str = include_str!("../models/skeleton_constraints.json");

/// Box-relative slack on the learned position range (the runtime box may be tighter than the
/// training boxes).
pub const POSITION_SLACK: f32 = 0.1;
/// Factor on the learned longest limb.
pub const LIMB_SLACK: f32 = 1.25;
/// Pairs are judged for left/right order when they are this far apart (share of box side).
pub const LR_MIN_GAP: f32 = 0.05;
/// Pairs whose learned agreement with the facing is below this are not judged.
pub const LR_MIN_AGREE: f32 = 0.95;

#[derive(Deserialize)]
struct Json {
    position: Vec<PositionJson>,
    limbs: Vec<LimbJson>,
    lr: Vec<LrJson>,
    angles: Vec<AngleJson>,
}

#[derive(Deserialize)]
struct PositionJson {
    u: [f32; 2],
    v: [f32; 2],
}

#[derive(Deserialize)]
struct LimbJson {
    a: u8,
    b: u8,
    length: [f32; 2],
}

#[derive(Deserialize)]
struct LrJson {
    left: u8,
    right: u8,
    agree: f32,
}

#[derive(Deserialize)]
struct AngleJson {
    a: u8,
    joint: u8,
    c: u8,
    degrees: [f32; 2],
}

/// The learned constraints, ready for checks.
#[derive(Clone, Debug, PartialEq)]
pub struct SkeletonConstraints {
    /// Per keypoint: u range, v range (box-relative).
    pub position: [([f32; 2], [f32; 2]); NUM_KEYPOINTS],
    /// (a, b, longest length / box side).
    pub limbs: Vec<(u8, u8, f32)>,
    /// (left, right) pairs judged for order.
    pub lr: Vec<(u8, u8)>,
    /// (a, joint, c, smallest angle in degrees).
    pub angles: Vec<(u8, u8, u8, f32)>,
}

/// What one check of a keypoint found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub violated: u32,
    pub satisfied: u32,
}

impl Verdict {
    /// How suspicious the keypoint is: violations, less half the checks it passes with
    /// placed neighbours (a joint that fits its other links is probably not the culprit).
    pub fn badness(&self) -> f32 {
        self.violated as f32 - 0.5 * self.satisfied as f32
    }
}

impl SkeletonConstraints {
    /// Parses a constraints JSON (the format `training/skeleton_constraints.py` writes).
    pub fn from_json(text: &str) -> Result<Self, String> {
        let j: Json = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if j.position.len() != NUM_KEYPOINTS {
            return Err(format!("{} positions, expected 17", j.position.len()));
        }
        let ok = |k: u8| (k as usize) < NUM_KEYPOINTS;
        Ok(SkeletonConstraints {
            position: std::array::from_fn(|k| (j.position[k].u, j.position[k].v)),
            limbs: j
                .limbs
                .iter()
                .filter(|l| ok(l.a) && ok(l.b) && l.length[1] > 0.0)
                .map(|l| (l.a, l.b, l.length[1]))
                .collect(),
            lr: j
                .lr
                .iter()
                .filter(|p| ok(p.left) && ok(p.right) && p.agree >= LR_MIN_AGREE)
                .filter(|p| !matches!((p.left, p.right), (5, 6) | (11, 12)))
                .map(|p| (p.left, p.right))
                .collect(),
            angles: j
                .angles
                .iter()
                .filter(|a| ok(a.a) && ok(a.joint) && ok(a.c))
                .map(|a| (a.a, a.joint, a.c, a.degrees[0]))
                .collect(),
        })
    }

    /// The constraints compiled into the plugin.
    pub fn builtin() -> &'static SkeletonConstraints {
        static C: LazyLock<SkeletonConstraints> = LazyLock::new(|| {
            SkeletonConstraints::from_json(BUILTIN_JSON).expect("built-in constraints parse")
        });
        &C
    }

    /// Checks keypoint `k` placed at (`x`, `y`) against the box and the keypoints marked
    /// `placed` (k's own entry is ignored).
    pub fn check(
        &self,
        k: usize,
        x: f32,
        y: f32,
        bbox: &BBox,
        kps: &[Keypoint; NUM_KEYPOINTS],
        placed: &[bool; NUM_KEYPOINTS],
    ) -> Verdict {
        let mut v = Verdict::default();
        let (bw, bh) = (bbox.w.max(1.0), bbox.h.max(1.0));
        let side = bw.max(bh);
        let (u, vv) = ((x - bbox.x) / bw, (y - bbox.y) / bh);
        let (ur, vr) = self.position[k];
        if u < ur[0] - POSITION_SLACK
            || u > ur[1] + POSITION_SLACK
            || vv < vr[0] - POSITION_SLACK
            || vv > vr[1] + POSITION_SLACK
        {
            v.violated += 1;
        }
        let other = |j: usize| (j != k && placed[j]).then(|| (kps[j].x, kps[j].y));
        let at = |j: usize| if j == k { Some((x, y)) } else { other(j) };
        for &(a, b, max) in &self.limbs {
            let (a, b) = (a as usize, b as usize);
            let j = if a == k {
                b
            } else if b == k {
                a
            } else {
                continue;
            };
            if let Some((jx, jy)) = other(j) {
                if (jx - x).hypot(jy - y) > max * LIMB_SLACK * side {
                    v.violated += 1;
                } else {
                    v.satisfied += 1;
                }
            }
        }
        if !self.lr.is_empty() {
            // Facing: order of shoulders and hips (k itself excluded).
            let mut facing = 0.0f32;
            for (l, r) in [(5, 6), (11, 12)] {
                if let (Some(pl), Some(pr)) = (other(l), other(r)) {
                    facing += (pl.0 - pr.0).signum();
                }
            }
            if facing != 0.0 {
                for &(l, r) in &self.lr {
                    let (l, r) = (l as usize, r as usize);
                    if l != k && r != k {
                        continue;
                    }
                    if let (Some(pl), Some(pr)) = (at(l), at(r)) {
                        let dx = pl.0 - pr.0;
                        if dx.abs() > LR_MIN_GAP * side && dx.signum() != facing.signum() {
                            v.violated += 1;
                        }
                    }
                }
            }
        }
        for &(a, j, c, min_deg) in &self.angles {
            let (a, j, c) = (a as usize, j as usize, c as usize);
            if a != k && j != k && c != k {
                continue;
            }
            if let (Some(pa), Some(pj), Some(pc)) = (at(a), at(j), at(c)) {
                let (v1, v2) = ((pa.0 - pj.0, pa.1 - pj.1), (pc.0 - pj.0, pc.1 - pj.1));
                let n = (v1.0.hypot(v1.1) * v2.0.hypot(v2.1)).max(1e-6);
                let cos = ((v1.0 * v2.0 + v1.1 * v2.1) / n).clamp(-1.0, 1.0);
                if cos.acos().to_degrees() < min_deg {
                    v.violated += 1;
                }
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::Visibility;

    /// A plausible standing person in a 100 x 300 box at (100, 50).
    fn person() -> (BBox, [Keypoint; NUM_KEYPOINTS]) {
        const SHAPE: [(f32, f32); NUM_KEYPOINTS] = [
            (0.50, 0.08),
            (0.46, 0.06),
            (0.54, 0.06),
            (0.42, 0.08),
            (0.58, 0.08),
            (0.35, 0.22),
            (0.65, 0.22),
            (0.28, 0.38),
            (0.72, 0.38),
            (0.25, 0.52),
            (0.75, 0.52),
            (0.40, 0.55),
            (0.60, 0.55),
            (0.38, 0.75),
            (0.62, 0.75),
            (0.37, 0.95),
            (0.63, 0.95),
        ];
        let b = BBox::new(100.0, 50.0, 100.0, 300.0);
        let kps = SHAPE.map(|(u, v)| Keypoint {
            x: b.x + u * b.w,
            y: b.y + v * b.h,
            score: 0.9,
            visibility: Visibility::Visible,
        });
        (b, kps)
    }

    #[test]
    fn the_builtin_constraints_parse_and_pass_a_plausible_person() {
        let c = SkeletonConstraints::builtin();
        assert_eq!(c.limbs.len(), 19);
        let (b, kps) = person();
        let placed = [true; NUM_KEYPOINTS];
        for k in 0..NUM_KEYPOINTS {
            let v = c.check(k, kps[k].x, kps[k].y, &b, &kps, &placed);
            assert_eq!(v.violated, 0, "keypoint {k}: {v:?}");
        }
    }

    #[test]
    fn a_wild_wrist_and_a_swapped_ear_are_caught() {
        let c = SkeletonConstraints::builtin();
        let (b, kps) = person();
        let placed = [true; NUM_KEYPOINTS];
        // Left wrist at the far bottom corner of the box: forearm far too long.
        let wrist = c.check(9, 195.0, 345.0, &b, &kps, &placed);
        assert!(wrist.violated >= 1 && wrist.badness() > 0.0, "{wrist:?}");
        // Its elbow, judged in place, fits its other links better.
        let elbow = c.check(7, kps[7].x, kps[7].y, &b, &kps, &placed);
        assert!(elbow.badness() < wrist.badness());
        // Left ear on the right side of the head (the person faces the camera).
        let ear = c.check(3, kps[4].x + 20.0, kps[3].y, &b, &kps, &placed);
        assert!(ear.violated >= 1, "{ear:?}");
    }
}
