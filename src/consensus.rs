//! Fusing the keypoint agents' candidates into one keypoint per joint (plain Rust).
//!
//! Per (person, keypoint): the confidence-weighted coordinate-wise median of the candidates
//! is the robust centre (a minority of wild candidates cannot move it far); candidates within
//! `inlier_radius` (a fraction of the person's box size) of it are the agreeing ones; the
//! keypoint is their confidence-weighted mean, and its score is the agreeing share of the
//! weight times their mean confidence. A later stage adds agent reputations and validators.

use crate::pose::{Candidate, Keypoint, NUM_KEYPOINTS, PoseFrame, Tier, Visibility};

/// Consensus settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConsensusConfig {
    /// Agreement radius as a fraction of the person box's larger side.
    pub inlier_radius: f32,
    /// Fused keypoints scoring below this are marked hidden (position kept).
    pub min_visible_score: f32,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig {
            inlier_radius: 0.08,
            min_visible_score: 0.2,
        }
    }
}

/// Reusable scratch space: fusing allocates nothing once it has seen the largest frame.
#[derive(Default)]
pub struct Consensus {
    pub config: ConsensusConfig,
    /// Indices of keypoint candidates, sorted by (person, keypoint).
    order: Vec<u32>,
    /// (value, weight) pairs for the weighted medians.
    xs: Vec<(f32, f32)>,
    ys: Vec<(f32, f32)>,
}

impl Consensus {
    pub fn new(config: ConsensusConfig) -> Self {
        Consensus {
            config,
            ..Default::default()
        }
    }

    /// Replaces the keypoints of every person of `frame` by the fusion of its candidates.
    /// Keypoints without any valid candidate become absent. Candidates with non-finite
    /// values, non-positive confidence or out-of-range indices are ignored.
    pub fn fuse(&mut self, frame: &mut PoseFrame) {
        let n_persons = frame.persons.len();
        let candidates = &frame.candidates;
        self.order.clear();
        self.order.extend(
            candidates
                .iter()
                .enumerate()
                .filter(|(_, c)| usable(c, n_persons))
                .map(|(i, _)| i as u32),
        );
        self.order.sort_unstable_by_key(|&i| {
            (
                candidates[i as usize].person,
                candidates[i as usize].keypoint,
            )
        });

        for person in &mut frame.persons {
            person.keypoints = [Keypoint::default(); NUM_KEYPOINTS];
        }
        let mut start = 0;
        while start < self.order.len() {
            let first = &candidates[self.order[start] as usize];
            let (p, k) = (first.person, first.keypoint);
            let mut end = start + 1;
            while end < self.order.len() {
                let c = &candidates[self.order[end] as usize];
                if (c.person, c.keypoint) != (p, k) {
                    break;
                }
                end += 1;
            }
            let person = &mut frame.persons[p as usize];
            let radius = self.config.inlier_radius * person.bbox.w.max(person.bbox.h).max(1.0);
            let group = self.order[start..end]
                .iter()
                .map(|&i| &candidates[i as usize]);
            let kp = fuse_group(group, radius, &mut self.xs, &mut self.ys);
            let visibility = if kp.score >= self.config.min_visible_score {
                Visibility::Visible
            } else {
                Visibility::Hidden
            };
            person.keypoints[k as usize] = Keypoint { visibility, ..kp };
            start = end;
        }
    }
}

fn usable(c: &Candidate, n_persons: usize) -> bool {
    c.tier == Tier::Keypoint
        && (c.person as usize) < n_persons
        && (c.keypoint as usize) < NUM_KEYPOINTS
        && c.x.is_finite()
        && c.y.is_finite()
        && c.confidence.is_finite()
        && c.confidence > 0.0
}

/// Fuses one (person, keypoint) group; see the module docs.
fn fuse_group<'a>(
    group: impl Iterator<Item = &'a Candidate> + Clone,
    radius: f32,
    xs: &mut Vec<(f32, f32)>,
    ys: &mut Vec<(f32, f32)>,
) -> Keypoint {
    xs.clear();
    ys.clear();
    for c in group.clone() {
        xs.push((c.x, c.confidence));
        ys.push((c.y, c.confidence));
    }
    let (mx, my) = (weighted_median(xs), weighted_median(ys));
    let (mut total, mut agree, mut sx, mut sy, mut n) = (0.0f32, 0.0f32, 0.0f32, 0.0f32, 0u32);
    for c in group {
        total += c.confidence;
        let (dx, dy) = (c.x - mx, c.y - my);
        if dx * dx + dy * dy <= radius * radius {
            agree += c.confidence;
            sx += c.confidence * c.x;
            sy += c.confidence * c.y;
            n += 1;
        }
    }
    if n == 0 || agree <= 0.0 {
        // No candidate near the median (a scattered group): the median itself, low score.
        return Keypoint {
            x: mx,
            y: my,
            score: 0.0,
            visibility: Visibility::Hidden,
        };
    }
    let mean_confidence = agree / n as f32;
    Keypoint {
        x: sx / agree,
        y: sy / agree,
        score: (agree / total * mean_confidence).clamp(0.0, 1.0),
        visibility: Visibility::Visible,
    }
}

/// The weighted median of (value, weight) pairs (lower median on ties); sorts in place.
fn weighted_median(values: &mut [(f32, f32)]) -> f32 {
    values.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let half = values.iter().map(|v| v.1).sum::<f32>() / 2.0;
    let mut acc = 0.0;
    for &(v, w) in values.iter() {
        acc += w;
        if acc >= half {
            return v;
        }
    }
    values.last().map_or(0.0, |v| v.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::{BBox, Person};

    fn candidate(agent: u16, x: f32, y: f32, confidence: f32) -> Candidate {
        Candidate {
            agent,
            tier: Tier::Keypoint,
            keypoint: 5,
            person: 0,
            x,
            y,
            confidence,
        }
    }

    fn frame(candidates: Vec<Candidate>) -> PoseFrame {
        let mut f = PoseFrame::new(0, 640, 480);
        f.persons.push(Person {
            bbox: BBox::new(100.0, 100.0, 100.0, 200.0),
            ..Default::default()
        });
        f.candidates = candidates;
        f
    }

    #[test]
    fn agreeing_candidates_give_their_weighted_mean() {
        let mut f = frame(vec![
            candidate(0, 150.0, 120.0, 0.5),
            candidate(1, 152.0, 122.0, 1.0),
        ]);
        Consensus::default().fuse(&mut f);
        let k = f.persons[0].keypoints[5];
        assert!((k.x - (150.0 * 0.5 + 152.0) / 1.5).abs() < 1e-4);
        assert!((k.y - (120.0 * 0.5 + 122.0) / 1.5).abs() < 1e-4);
        assert!((k.score - 0.75).abs() < 1e-6);
        assert_eq!(k.visibility, Visibility::Visible);
        assert_eq!(f.persons[0].keypoints[0].visibility, Visibility::Absent);
    }

    #[test]
    fn a_minority_of_wild_candidates_is_outvoted() {
        let mut cands: Vec<_> = (0..6)
            .map(|i| candidate(i, 150.0 + i as f32 * 0.5, 120.0, 0.8))
            .collect();
        // Three liars far away, even more confident.
        cands.extend((6..9).map(|i| candidate(i, 400.0, 400.0, 0.9)));
        let mut f = frame(cands);
        Consensus::default().fuse(&mut f);
        let k = f.persons[0].keypoints[5];
        assert!(
            (k.x - 151.25).abs() < 1e-3 && (k.y - 120.0).abs() < 1e-3,
            "{k:?}"
        );
        assert!(
            k.score < 0.8 * 0.7,
            "disagreement lowers the score: {}",
            k.score
        );
    }

    #[test]
    fn bad_candidates_are_ignored() {
        let mut f = frame(vec![
            candidate(0, f32::NAN, 1.0, 1.0),
            candidate(1, 1.0, 1.0, f32::INFINITY),
            candidate(2, 1.0, 1.0, -1.0),
            Candidate {
                person: 9,
                ..candidate(3, 1.0, 1.0, 1.0)
            },
            Candidate {
                keypoint: 40,
                ..candidate(4, 1.0, 1.0, 1.0)
            },
        ]);
        Consensus::default().fuse(&mut f);
        assert!(
            f.persons[0]
                .keypoints
                .iter()
                .all(|k| k.visibility == Visibility::Absent)
        );
    }
}
