//! Unit tests of the tracking engine: Kalman filters, assignment, similarity, tracker.
// Dense 8x8 reference matrix maths reads clearest with explicit indices.
#![allow(clippy::needless_range_loop)]

use gstswarmpose::pose::{BBox, Keypoint, NUM_KEYPOINTS, Person, Visibility};
use gstswarmpose::track::assign::Assignment;
use gstswarmpose::track::kalman::{
    ASPECT_NOISE, Axis, BoxFilter, INITIAL_VELOCITY_STD, Noise, PointFilter, VELOCITY_NOISE_RATIO,
};
use gstswarmpose::track::similarity::{oks, similarity};
use gstswarmpose::track::{Config, Tracker};
use proptest::prelude::*;

const NOISE: Noise = Noise {
    process: 0.05,
    measurement: 0.05,
};

// ---------------------------------------------------------------- Kalman

#[test]
fn box_filter_predicts_constant_velocity_motion() {
    let (vx, vy) = (3.0f32, -2.0f32);
    let at = |t: f32| BBox::new(100.0 + vx * t, 300.0 + vy * t, 40.0, 100.0);
    let mut f = BoxFilter::new(&at(0.0), NOISE);
    for t in 1..=30 {
        f.predict(NOISE);
        f.update(&at(t as f32), NOISE);
    }
    let (fvx, fvy) = f.velocity();
    // Within 3% after one second.
    assert!(
        (fvx - vx).abs() < 0.1 && (fvy - vy).abs() < 0.1,
        "v ({fvx}, {fvy})"
    );
    // 20 frames on prediction alone land on the true box.
    for _ in 0..20 {
        f.predict(NOISE);
    }
    let (p, truth) = (f.bbox(), at(50.0));
    assert!(p.iou(&truth) > 0.9, "predicted {p:?}, truth {truth:?}");
    assert!((p.x - truth.x).abs() < 2.0 && (p.y - truth.y).abs() < 2.0);
}

#[test]
fn point_filter_follows_and_extrapolates_a_moving_point() {
    let mut f = PointFilter::default();
    f.init(10.0, 20.0, (0.0, 0.0), 1.0, 2.0);
    for t in 1..=20 {
        f.predict(0.1, 0.05);
        f.update(10.0 + 1.5 * t as f32, 20.0 + 0.5 * t as f32, 1.0);
    }
    for _ in 0..10 {
        f.predict(0.1, 0.05);
    }
    let (x, y) = f.position();
    assert!(
        (x - 55.0).abs() < 1.0 && (y - 35.0).abs() < 1.0,
        "({x}, {y})"
    );
}

#[test]
fn axis_update_ignores_non_finite_measurements() {
    let mut a = Axis::new(5.0, 1.0, 1.0, 1.0);
    let before = a;
    a.update(f32::NAN, 1.0);
    a.update(f32::INFINITY, 1.0);
    assert_eq!(a, before);
}

/// SORT/ByteTrack's filter written out with dense 8x8 matrices, for reference.
struct DenseKalman {
    x: [f64; 8],
    p: [[f64; 8]; 8],
}

impl DenseKalman {
    fn new(b: &BBox, n: Noise) -> Self {
        let m = measure(b);
        let h = m[3];
        let sp = 2.0 * n.process as f64 * h;
        let sv = INITIAL_VELOCITY_STD as f64 * h;
        let std = [sp, sp, 1e-2, sp, sv, sv, 1e-5, sv];
        let mut p = [[0.0; 8]; 8];
        for i in 0..8 {
            p[i][i] = std[i] * std[i];
        }
        DenseKalman {
            x: [m[0], m[1], m[2], m[3], 0.0, 0.0, 0.0, 0.0],
            p,
        }
    }

    fn predict(&mut self, n: Noise) {
        let h = self.x[3];
        let sp = n.process as f64 * h;
        let sv = sp * VELOCITY_NOISE_RATIO as f64;
        let (ap, av) = (ASPECT_NOISE.0 as f64, ASPECT_NOISE.1 as f64);
        let q = [sp, sp, ap, sp, sv, sv, av, sv];
        let mut f = [[0.0; 8]; 8];
        for i in 0..8 {
            f[i][i] = 1.0;
        }
        for i in 0..4 {
            f[i][i + 4] = 1.0;
        }
        let mut x = [0.0; 8];
        for i in 0..8 {
            x[i] = (0..8).map(|j| f[i][j] * self.x[j]).sum();
        }
        let mut fp = [[0.0; 8]; 8];
        for i in 0..8 {
            for j in 0..8 {
                fp[i][j] = (0..8).map(|k| f[i][k] * self.p[k][j]).sum();
            }
        }
        for i in 0..8 {
            for j in 0..8 {
                self.p[i][j] = (0..8).map(|k| fp[i][k] * f[j][k]).sum();
            }
            self.p[i][i] += q[i] * q[i];
        }
        self.x = x;
    }

    fn update(&mut self, b: &BBox, n: Noise) {
        let z = measure(b);
        let sz = n.measurement as f64 * self.x[3];
        let r = [sz, sz, ASPECT_NOISE.2 as f64, sz];
        // H selects the first four states: S = P[0..4][0..4] + R, K = P[.][0..4] S^-1.
        let mut s = [[0.0; 4]; 4];
        for i in 0..4 {
            for j in 0..4 {
                s[i][j] = self.p[i][j];
            }
            s[i][i] += r[i] * r[i];
        }
        let si = invert4(s);
        let mut k = [[0.0; 4]; 8];
        for i in 0..8 {
            for j in 0..4 {
                k[i][j] = (0..4).map(|l| self.p[i][l] * si[l][j]).sum();
            }
        }
        let y: Vec<f64> = (0..4).map(|i| z[i] - self.x[i]).collect();
        for i in 0..8 {
            self.x[i] += (0..4).map(|j| k[i][j] * y[j]).sum::<f64>();
        }
        let old = self.p;
        for i in 0..8 {
            for j in 0..8 {
                self.p[i][j] = old[i][j] - (0..4).map(|l| k[i][l] * old[l][j]).sum::<f64>();
            }
        }
    }
}

fn measure(b: &BBox) -> [f64; 4] {
    let (x, y, w, h) = (b.x as f64, b.y as f64, b.w as f64, b.h as f64);
    [x + w / 2.0, y + h / 2.0, w / h, h]
}

/// Gauss-Jordan inverse of a symmetric positive-definite 4x4 matrix.
fn invert4(m: [[f64; 4]; 4]) -> [[f64; 4]; 4] {
    let mut a = m;
    let mut inv = [[0.0; 4]; 4];
    for (i, row) in inv.iter_mut().enumerate() {
        row[i] = 1.0;
    }
    for c in 0..4 {
        let d = a[c][c];
        for j in 0..4 {
            a[c][j] /= d;
            inv[c][j] /= d;
        }
        for r in 0..4 {
            if r != c {
                let f = a[r][c];
                for j in 0..4 {
                    a[r][j] -= f * a[c][j];
                    inv[r][j] -= f * inv[c][j];
                }
            }
        }
    }
    inv
}

#[test]
fn box_filter_equals_dense_8x8_bytetrack_filter() {
    let mut state = 12345u64;
    let mut rnd = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    let first = BBox::new(200.0, 100.0, 50.0, 120.0);
    let mut ours = BoxFilter::new(&first, NOISE);
    let mut dense = DenseKalman::new(&first, NOISE);
    for t in 1..60 {
        ours.predict(NOISE);
        dense.predict(NOISE);
        // Skip some measurements, like occlusions.
        if t % 7 != 0 {
            let b = BBox::new(
                200.0 + 2.0 * t as f32 + 4.0 * rnd(),
                100.0 + t as f32 + 4.0 * rnd(),
                50.0 + 3.0 * rnd(),
                120.0 + 0.3 * t as f32 + 3.0 * rnd(),
            );
            ours.update(&b, NOISE);
            dense.update(&b, NOISE);
        }
        let got = [
            ours.cx.p, ours.cy.p, ours.a.p, ours.h.p, ours.cx.v, ours.cy.v, ours.a.v, ours.h.v,
        ];
        for (i, (g, d)) in got.iter().zip(dense.x).enumerate() {
            assert!(
                (*g as f64 - d).abs() < 1e-3 * d.abs().max(1.0),
                "frame {t} state {i}: {g} vs {d}"
            );
        }
        // The covariance really is block-diagonal per coordinate.
        for i in 0..4 {
            for j in 0..4 {
                if i != j {
                    assert!(dense.p[i][j].abs() < 1e-9 && dense.p[i][j + 4].abs() < 1e-9);
                }
            }
        }
        assert!((ours.cx.pv as f64 - dense.p[0][4]).abs() < 1e-3 * dense.p[0][4].abs().max(1.0));
    }
}

// ---------------------------------------------------------------- assignment

fn solve(m: &[&[f32]], threshold: f32) -> Vec<(usize, usize)> {
    let cols = m.first().map_or(0, |r| r.len());
    Assignment::new()
        .solve(m.len(), cols, threshold, |r, c| m[r][c])
        .to_vec()
}

#[test]
fn hungarian_finds_the_optimum_where_greedy_fails() {
    // Greedy takes (0,0) = 0.9 and leaves row 1 unmatched; the optimum is 0.8 + 0.85.
    let m: [&[f32]; 3] = [&[0.9, 0.8, 0.0], &[0.85, 0.0, 0.0], &[0.0, 0.0, 0.5]];
    assert_eq!(solve(&m, 0.3), vec![(0, 1), (1, 0), (2, 2)]);
}

#[test]
fn hungarian_handles_rectangular_matrices() {
    // More detections than tracks.
    let wide: [&[f32]; 2] = [&[0.2, 0.9, 0.8], &[0.1, 0.95, 0.4]];
    assert_eq!(solve(&wide, 0.1), vec![(0, 2), (1, 1)]);
    // More tracks than detections.
    let tall: [&[f32]; 3] = [&[0.6, 0.5], &[0.7, 0.0], &[0.9, 0.1]];
    assert_eq!(solve(&tall, 0.3), vec![(0, 1), (2, 0)]);
    assert!(solve(&[], 0.3).is_empty());
    let no_cols: [&[f32]; 2] = [&[], &[]];
    assert!(solve(&no_cols, 0.3).is_empty());
}

#[test]
fn gating_leaves_dissimilar_pairs_unmatched() {
    // The only option for row 1 is below the gate: it stays unmatched.
    let m: [&[f32]; 2] = [&[0.9, 0.0], &[0.0, 0.29]];
    assert_eq!(solve(&m, 0.3), vec![(0, 0)]);
    // Nothing passes: nothing matched, even though a complete assignment exists.
    let m: [&[f32]; 2] = [&[0.1, 0.2], &[0.2, 0.1]];
    assert!(solve(&m, 0.3).is_empty());
    // NaN and infinities are never matched.
    let m: [&[f32]; 2] = [&[f32::NAN, 0.5], &[f32::NEG_INFINITY, f32::NAN]];
    assert_eq!(solve(&m, 0.3), vec![(0, 1)]);
    // A zero threshold does not match zero-similarity pairs.
    let m: [&[f32]; 1] = [&[0.0]];
    assert!(solve(&m, 0.0).is_empty());
}

/// Best total similarity over all matchings of gated pairs, by brute force.
fn brute_force(m: &[Vec<f32>], threshold: f32, row: usize, used: &mut Vec<bool>) -> f32 {
    if row == m.len() {
        return 0.0;
    }
    let mut best = brute_force(m, threshold, row + 1, used);
    for c in 0..used.len() {
        if !used[c] && m[row][c] >= threshold {
            used[c] = true;
            best = best.max(m[row][c] + brute_force(m, threshold, row + 1, used));
            used[c] = false;
        }
    }
    best
}

proptest! {
    #[test]
    fn assignment_is_optimal_and_one_to_one(
        (rows, cols, values) in (0usize..6, 0usize..6)
            .prop_flat_map(|(r, c)| (Just(r), Just(c), prop::collection::vec(0.0f32..1.0, r * c))),
        threshold in 0.05f32..0.6,
        sparsity in 0.0f32..0.8,
    ) {
        // Zero out a share of pairs so the graph splits into components.
        let m: Vec<Vec<f32>> = (0..rows)
            .map(|r| (0..cols).map(|c| {
                let v = values[r * cols + c];
                if v < sparsity { 0.0 } else { v }
            }).collect())
            .collect();
        let mut a = Assignment::new();
        let matches = a.solve(rows, cols, threshold, |r, c| m[r][c]).to_vec();
        let mut seen_r = vec![false; rows];
        let mut seen_c = vec![false; cols];
        let mut total = 0.0;
        for &(r, c) in &matches {
            prop_assert!(!seen_r[r] && !seen_c[c], "one-to-one");
            seen_r[r] = true;
            seen_c[c] = true;
            prop_assert!(m[r][c] >= threshold, "gated");
            total += m[r][c];
        }
        let best = brute_force(&m, threshold, 0, &mut vec![false; cols]);
        prop_assert!((total - best).abs() < 1e-4, "total {} best {}", total, best);
    }
}

// ---------------------------------------------------------------- similarity

/// A standing stick figure with feet centre at (`x`, `y`) and height `h`.
fn figure(x: f32, y: f32, h: f32) -> [Keypoint; NUM_KEYPOINTS] {
    const BODY: [(f32, f32); NUM_KEYPOINTS] = [
        (0.0, 0.93),
        (-0.02, 0.95),
        (0.02, 0.95),
        (-0.05, 0.94),
        (0.05, 0.94),
        (-0.11, 0.82),
        (0.11, 0.82),
        (-0.14, 0.65),
        (0.14, 0.65),
        (-0.15, 0.5),
        (0.15, 0.5),
        (-0.08, 0.53),
        (0.08, 0.53),
        (-0.08, 0.28),
        (0.08, 0.28),
        (-0.08, 0.03),
        (0.08, 0.03),
    ];
    BODY.map(|(u, v)| Keypoint {
        x: x + u * h,
        y: y - v * h,
        score: 0.9,
        visibility: Visibility::Visible,
    })
}

fn person(x: f32, y: f32, h: f32, score: f32) -> Person {
    Person {
        track_id: None,
        bbox: BBox::new(x - 0.2 * h, y - h, 0.4 * h, h),
        score,
        keypoints: figure(x, y, h),
        predicted: false,
    }
}

fn expected(kps: &[Keypoint; NUM_KEYPOINTS]) -> [Option<(f32, f32)>; NUM_KEYPOINTS] {
    kps.map(|k| Some((k.x, k.y)))
}

#[test]
fn oks_is_one_for_identical_poses_and_falls_with_distance() {
    let p = person(100.0, 300.0, 150.0, 0.9);
    let area = p.bbox.w * p.bbox.h;
    let same = oks(&p.keypoints, &expected(&p.keypoints), area).unwrap();
    assert!((same - 1.0).abs() < 1e-6);
    let near = oks(&figure(105.0, 300.0, 150.0), &expected(&p.keypoints), area).unwrap();
    let far = oks(&figure(160.0, 300.0, 150.0), &expected(&p.keypoints), area).unwrap();
    assert!(
        1.0 > near && near > far && far < 0.05,
        "near {near} far {far}"
    );
    // Nothing comparable: no OKS.
    assert!(oks(&p.keypoints, &[None; NUM_KEYPOINTS], area).is_none());
    let mut absent = p.keypoints;
    absent
        .iter_mut()
        .for_each(|k| k.visibility = Visibility::Absent);
    assert!(oks(&absent, &expected(&p.keypoints), area).is_none());
    assert!(oks(&p.keypoints, &expected(&p.keypoints), 0.0).is_none());
}

#[test]
fn similarity_blends_iou_and_oks_and_ignores_far_boxes() {
    let t = person(100.0, 300.0, 150.0, 0.9);
    let d = person(104.0, 300.0, 150.0, 0.9);
    let iou = t.bbox.iou(&d.bbox);
    let o = oks(&d.keypoints, &expected(&t.keypoints), t.bbox.w * t.bbox.h).unwrap();
    let s = similarity(&t.bbox, &expected(&t.keypoints), &d.bbox, &d.keypoints, 0.3);
    assert!((s - (0.3 * iou + 0.7 * o)).abs() < 1e-6);
    let box_only = similarity(&t.bbox, &expected(&t.keypoints), &d.bbox, &d.keypoints, 1.0);
    assert!((box_only - iou).abs() < 1e-6);
    let far = person(400.0, 300.0, 150.0, 0.9);
    assert_eq!(
        similarity(
            &t.bbox,
            &expected(&t.keypoints),
            &far.bbox,
            &far.keypoints,
            0.5
        ),
        0.0
    );
}

// ---------------------------------------------------------------- tracker

fn ids(out: &[Person]) -> Vec<Option<u64>> {
    out.iter().map(|p| p.track_id).collect()
}

#[test]
fn tracks_are_confirmed_after_min_hits_and_keep_their_ids() {
    let mut tracker = Tracker::new(Config {
        min_hits: 3,
        ..Default::default()
    });
    let frame = |t: f32| {
        [
            person(100.0 + 2.0 * t, 400.0, 150.0, 0.9),
            person(600.0 - 2.0 * t, 420.0, 160.0, 0.8),
        ]
    };
    assert_eq!(ids(tracker.update(&frame(0.0))), [None, None]);
    assert_eq!(ids(tracker.update(&frame(1.0))), [None, None]);
    let confirmed = ids(tracker.update(&frame(2.0)));
    assert!(confirmed.iter().all(Option::is_some));
    assert_ne!(confirmed[0], confirmed[1]);
    // Order of detections does not matter: ids follow the persons.
    for t in 3..60 {
        let mut f = frame(t as f32);
        if t % 2 == 0 {
            f.reverse();
        }
        let mut got = ids(tracker.update(&f));
        if t % 2 == 0 {
            got.reverse();
        }
        assert_eq!(got, confirmed, "frame {t}");
    }
}

#[test]
fn min_hits_one_confirms_at_once() {
    let mut tracker = Tracker::new(Config {
        min_hits: 1,
        ..Default::default()
    });
    assert_eq!(
        ids(tracker.update(&[person(100.0, 400.0, 150.0, 0.9)])),
        [Some(1)]
    );
}

#[test]
fn identity_survives_an_occlusion_and_expires_after_max_age() {
    let cfg = Config {
        max_age: 30,
        min_hits: 1,
        ..Default::default()
    };
    let at = |t: u32| person(100.0 + 3.0 * t as f32, 400.0, 150.0, 0.9);
    let mut tracker = Tracker::new(cfg);
    let mut id = None;
    for t in 0..20 {
        id = tracker.update(&[at(t)])[0].track_id;
    }
    // Hidden for 25 frames: nothing output, then found again where it walked to.
    for _ in 20..45 {
        assert!(tracker.update(&[]).is_empty());
    }
    assert_eq!(tracker.update(&[at(45)])[0].track_id, id);

    // Hidden for longer than max-age: a new, larger id.
    for _ in 46..80 {
        tracker.update(&[]);
    }
    let new = tracker.update(&[at(80)])[0].track_id;
    assert!(new.unwrap() > id.unwrap(), "{new:?} after {id:?}");
}

#[test]
fn crossing_people_keep_their_ids() {
    let mut tracker = Tracker::new(Config {
        min_hits: 1,
        ..Default::default()
    });
    let mut first = None;
    for t in 0..200 {
        let t = t as f32;
        // Walking towards each other on nearly the same line, passing through each other.
        let a = person(100.0 + 3.0 * t, 400.0, 150.0, 0.9);
        let b = person(700.0 - 3.0 * t, 410.0, 140.0, 0.9);
        let out = ids(tracker.update(&[a, b]));
        let expect = first.get_or_insert(out.clone()).clone();
        assert_eq!(out, expect, "frame {t}");
    }
}

#[test]
fn weak_detections_extend_tracks_but_never_start_them() {
    let mut tracker = Tracker::new(Config {
        min_hits: 1,
        ..Default::default()
    });
    let id = tracker.update(&[person(100.0, 400.0, 150.0, 0.9)])[0].track_id;
    assert!(id.is_some());
    // The person gets partly occluded: the detector's score drops into the low bin.
    for t in 1..10 {
        let out = tracker.update(&[person(100.0 + t as f32, 400.0, 150.0, 0.3)]);
        assert_eq!(out[0].track_id, id);
    }
    // A lone weak detection elsewhere is passed through untracked, every frame.
    for _ in 0..5 {
        let out = tracker.update(&[person(900.0, 400.0, 150.0, 0.3)]);
        assert_eq!(ids(out), [None]);
    }
    // Below the low threshold: ignored even next to a track.
    let mut fresh = Tracker::new(Config {
        min_hits: 1,
        ..Default::default()
    });
    fresh.update(&[person(100.0, 400.0, 150.0, 0.9)]);
    assert_eq!(
        ids(fresh.update(&[person(101.0, 400.0, 150.0, 0.05)])),
        [None]
    );
}

#[test]
fn predict_only_outputs_predicted_poses_moving_on() {
    let mut tracker = Tracker::new(Config {
        min_hits: 1,
        ..Default::default()
    });
    let mut id = None;
    for t in 0..30 {
        id = tracker.update(&[person(100.0 + 4.0 * t as f32, 400.0, 150.0, 0.9)])[0].track_id;
    }
    let mut last_x = tracker.update(&[person(220.0, 400.0, 150.0, 0.9)])[0]
        .bbox
        .x;
    for _ in 0..5 {
        let out = tracker.predict_only();
        assert_eq!(out.len(), 1);
        assert!(out[0].predicted);
        assert_eq!(out[0].track_id, id);
        let x = out[0].bbox.x;
        assert!(
            (x - last_x - 4.0).abs() < 0.5,
            "moves on at 4 px/frame: {last_x} -> {x}"
        );
        last_x = x;
        let nose = out[0].keypoints[0];
        assert!(
            (nose.x - (x + 0.2 * 150.0)).abs() < 3.0,
            "keypoints move along"
        );
    }
    // Detection resumes: same id, not predicted.
    let out = tracker.update(&[person(244.0, 400.0, 150.0, 0.9)]);
    assert_eq!(out[0].track_id, id);
    assert!(!out[0].predicted);
}

#[test]
fn reset_forgets_tracks_but_never_reuses_ids() {
    let mut tracker = Tracker::new(Config {
        min_hits: 1,
        ..Default::default()
    });
    let before = ids(tracker.update(&[
        person(100.0, 400.0, 150.0, 0.9),
        person(500.0, 400.0, 150.0, 0.9),
    ]));
    tracker.reset();
    assert_eq!(tracker.live_tracks(), 0);
    assert!(tracker.predict_only().is_empty());
    let after = ids(tracker.update(&[person(100.0, 400.0, 150.0, 0.9)]));
    let max_before = before.iter().flatten().max().unwrap();
    assert!(
        after[0].unwrap() > *max_before,
        "{after:?} after {before:?}"
    );
}

#[test]
fn unusable_persons_are_skipped_without_panicking() {
    let mut tracker = Tracker::new(Config {
        min_hits: 1,
        ..Default::default()
    });
    let good = person(100.0, 400.0, 150.0, 0.9);
    let mut nan_box = good;
    nan_box.bbox.x = f32::NAN;
    let mut empty = good;
    empty.bbox.w = 0.0;
    let mut inf_score = good;
    inf_score.score = f32::INFINITY;
    let mut nan_kp = person(400.0, 400.0, 150.0, 0.9);
    nan_kp.keypoints[3].x = f32::NAN;
    let out = tracker.update(&[nan_box, good, empty, inf_score, nan_kp]);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|p| p.track_id.is_some()));
    assert_eq!(out[1].keypoints[3].visibility, Visibility::Absent);
    assert!(
        out.iter()
            .flat_map(|p| &p.keypoints)
            .all(|k| k.x.is_finite())
    );
}

#[test]
fn settings_out_of_range_are_sanitized() {
    let c = Config {
        iou_weight: f32::NAN,
        match_threshold: 7.0,
        high_score_threshold: 0.4,
        low_score_threshold: 0.9,
        min_hits: 0,
        ..Default::default()
    }
    .sanitized();
    assert_eq!(c.iou_weight, Config::default().iou_weight);
    assert_eq!(c.match_threshold, 1.0);
    assert!(c.low_score_threshold <= c.high_score_threshold);
    assert_eq!(c.min_hits, 1);
}

proptest! {
    #[test]
    fn tracker_never_panics_on_odd_input(
        frames in prop::collection::vec(
            prop::collection::vec(
                (any::<f32>(), any::<f32>(), any::<f32>(), any::<f32>(), any::<f32>(), any::<bool>()),
                0..6,
            ),
            1..12,
        ),
    ) {
        let mut tracker = Tracker::new(Config { min_hits: 1, ..Default::default() });
        for frame in frames {
            let persons: Vec<Person> = frame
                .iter()
                .map(|&(x, y, w, h, s, _)| Person {
                    bbox: BBox::new(x, y, w, h),
                    score: s,
                    keypoints: figure(x, y, h),
                    ..Default::default()
                })
                .collect();
            if frame.first().is_some_and(|f| f.5) {
                let out = tracker.predict_only();
                prop_assert!(out.iter().all(|p| p.predicted));
            } else {
                let out = tracker.update(&persons);
                prop_assert!(out.len() <= persons.len());
                prop_assert!(out.iter().all(|p| p.bbox.w > 0.0 && p.bbox.h > 0.0));
            }
        }
    }
}
