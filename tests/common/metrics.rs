//! MOT metrics of tracker output against ground truth, as py-motmetrics defines them.
//!
//! A hypothesis and a ground-truth person *match* in a frame when their boxes' IoU is at
//! least `iou_min`. Hypotheses without a track id are not hypotheses and are ignored.
//!
//! - Identity switches (CLEAR MOT): each frame, ground truths keep last frame's hypothesis
//!   when it still matches; the others are assigned optimally (Hungarian, max IoU). A
//!   switch is counted when a ground truth gets a hypothesis other than its last one.
//! - IDF1 (Ristani et al. 2016) = 2·IDTP / (2·IDTP + IDFP + IDFN). Ground-truth
//!   trajectories are mapped one-to-one onto hypothesis trajectories by the global mapping
//!   maximising IDTP, the number of frames in which mapped pairs match; IDFN = ground-truth
//!   boxes − IDTP and IDFP = hypothesis boxes − IDTP.

use gstswarmpose::pose::{Person, PoseFrame};
use pathfinding::prelude::{Matrix, kuhn_munkres};
use std::collections::HashMap;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MotMetrics {
    /// Ground-truth boxes over all frames ("track-frames").
    pub gt: usize,
    /// Hypothesis boxes over all frames.
    pub hyp: usize,
    /// Per-frame matches (CLEAR MOT).
    pub matches: usize,
    pub switches: usize,
    pub idtp: usize,
    pub idfp: usize,
    pub idfn: usize,
    pub idf1: f64,
}

impl MotMetrics {
    pub fn switches_per_1000(&self) -> f64 {
        1000.0 * self.switches as f64 / self.gt.max(1) as f64
    }

    /// CLEAR MOT recall: matched share of the ground truth.
    pub fn recall(&self) -> f64 {
        self.matches as f64 / self.gt.max(1) as f64
    }
}

/// Maximum-weight one-to-one matching of rows to columns; pairs of weight 0 are left out.
/// Any shape: the solver wants rows <= columns, so tall matrices are transposed.
pub fn max_weight_matching(weights: &[Vec<i64>]) -> Vec<(usize, usize)> {
    let rows = weights.len();
    let cols = weights.first().map_or(0, Vec::len);
    if rows == 0 || cols == 0 {
        return Vec::new();
    }
    let transposed = rows > cols;
    let m = if transposed {
        Matrix::from_fn(cols, rows, |(c, r)| weights[r][c])
    } else {
        Matrix::from_fn(rows, cols, |(r, c)| weights[r][c])
    };
    let (_, assigned) = kuhn_munkres(&m);
    assigned
        .into_iter()
        .enumerate()
        .map(|(i, j)| if transposed { (j, i) } else { (i, j) })
        .filter(|&(r, c)| weights[r][c] > 0)
        .collect()
}

fn tracked(frame: &PoseFrame) -> impl Iterator<Item = (u64, &Person)> {
    frame
        .persons
        .iter()
        .filter_map(|p| p.track_id.map(|id| (id, p)))
}

/// Evaluates `hyp` against `truth`, frame by frame (same length and order).
pub fn evaluate(truth: &[PoseFrame], hyp: &[PoseFrame], iou_min: f32) -> MotMetrics {
    let mut m = MotMetrics::default();
    let mut last: HashMap<u64, u64> = HashMap::new();
    let mut pair_frames: HashMap<(u64, u64), usize> = HashMap::new();
    for (t, h) in truth.iter().zip(hyp) {
        let gts: Vec<(u64, &Person)> = tracked(t).collect();
        let hyps: Vec<(u64, &Person)> = tracked(h).collect();
        m.gt += gts.len();
        m.hyp += hyps.len();
        let iou: Vec<Vec<f32>> = gts
            .iter()
            .map(|(_, g)| hyps.iter().map(|(_, p)| g.bbox.iou(&p.bbox)).collect())
            .collect();
        for (gi, (gid, _)) in gts.iter().enumerate() {
            for (hi, (hid, _)) in hyps.iter().enumerate() {
                if iou[gi][hi] >= iou_min {
                    *pair_frames.entry((*gid, *hid)).or_default() += 1;
                }
            }
        }

        // CLEAR MOT: keep last frame's correspondences that still hold.
        let mut gt_done = vec![false; gts.len()];
        let mut hyp_done = vec![false; hyps.len()];
        for (gi, (gid, _)) in gts.iter().enumerate() {
            let Some(&prev) = last.get(gid) else { continue };
            if let Some(hi) = hyps.iter().position(|(hid, _)| *hid == prev)
                && !hyp_done[hi]
                && iou[gi][hi] >= iou_min
            {
                gt_done[gi] = true;
                hyp_done[hi] = true;
                m.matches += 1;
            }
        }
        let free_g: Vec<usize> = (0..gts.len()).filter(|&g| !gt_done[g]).collect();
        let free_h: Vec<usize> = (0..hyps.len()).filter(|&h| !hyp_done[h]).collect();
        let weights: Vec<Vec<i64>> = free_g
            .iter()
            .map(|&g| {
                free_h
                    .iter()
                    .map(|&h| {
                        let v = iou[g][h];
                        if v >= iou_min { (v * 1e6) as i64 } else { 0 }
                    })
                    .collect()
            })
            .collect();
        for (r, c) in max_weight_matching(&weights) {
            let (gid, hid) = (gts[free_g[r]].0, hyps[free_h[c]].0);
            m.matches += 1;
            if last.insert(gid, hid).is_some_and(|prev| prev != hid) {
                m.switches += 1;
            }
        }
    }

    let mut gt_ids: Vec<u64> = pair_frames.keys().map(|k| k.0).collect();
    let mut hyp_ids: Vec<u64> = pair_frames.keys().map(|k| k.1).collect();
    gt_ids.sort_unstable();
    gt_ids.dedup();
    hyp_ids.sort_unstable();
    hyp_ids.dedup();
    let weights: Vec<Vec<i64>> = gt_ids
        .iter()
        .map(|g| {
            hyp_ids
                .iter()
                .map(|h| pair_frames.get(&(*g, *h)).copied().unwrap_or(0) as i64)
                .collect()
        })
        .collect();
    m.idtp = max_weight_matching(&weights)
        .into_iter()
        .map(|(r, c)| weights[r][c] as usize)
        .sum();
    m.idfn = m.gt - m.idtp;
    m.idfp = m.hyp - m.idtp;
    let denom = 2 * m.idtp + m.idfp + m.idfn;
    m.idf1 = if denom == 0 {
        1.0
    } else {
        2.0 * m.idtp as f64 / denom as f64
    };
    m
}
