//! Synthetic crowd: articulated stick figures walking across the frame in all directions
//! and speeds, crossing and occluding one another, with ground-truth ids, and a noisy
//! detector looking at them. Deterministic from a seed.
//!
//! Depth follows the feet: the lower a person's feet in the image, the closer they are.
//! A person whose box is covered by a closer person's box for at least `hide_fraction`
//! is hidden: absent from both the ground truth and the detections (ground truth is what a
//! perfect detector could see). Keypoints inside a closer person's box are marked hidden
//! (COCO v = 1). People leaving the frame are replaced by new people (new ids) entering
//! from an edge.

use gstswarmpose::pose::{BBox, Keypoint, NUM_KEYPOINTS, Person, PoseFrame, Visibility};
use std::f32::consts::TAU;

/// splitmix64: small, fast, and good enough for test data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.uniform()
    }

    pub fn chance(&mut self, p: f32) -> bool {
        self.uniform() < p
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f32 {
        let u1 = self.uniform().max(1e-7);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (TAU * u2).cos()
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// How the simulated detector errs. Jitters are standard deviations as fractions of the
/// person's height.
#[derive(Clone, Copy, Debug)]
pub struct NoiseModel {
    pub keypoint_jitter: f32,
    pub box_jitter: f32,
    /// Probability that a visible person is not detected in a frame.
    pub miss_rate: f32,
    /// Mean number of false-positive persons per frame.
    pub false_positives: f32,
    /// Probability that a true detection gets a low score (ByteTrack's second-pass bin).
    pub low_score_rate: f32,
}

impl Default for NoiseModel {
    fn default() -> Self {
        NoiseModel {
            keypoint_jitter: 0.01,
            box_jitter: 0.02,
            miss_rate: 0.03,
            false_positives: 0.5,
            low_score_rate: 0.1,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct CrowdConfig {
    /// People in the frame at any time.
    pub people: usize,
    pub frames: usize,
    pub width: u32,
    pub height: u32,
    pub seed: u64,
    /// Share of a person's box a closer person must cover to hide them.
    pub hide_fraction: f32,
    /// Walking speed range, pixels per frame.
    pub speed: (f32, f32),
    /// Person height range, pixels.
    pub person_height: (f32, f32),
    pub noise: NoiseModel,
}

impl Default for CrowdConfig {
    fn default() -> Self {
        CrowdConfig {
            people: 25,
            frames: 1000,
            width: 1280,
            height: 720,
            seed: 1,
            hide_fraction: 0.6,
            speed: (0.6, 2.5),
            person_height: (100.0, 180.0),
            noise: NoiseModel::default(),
        }
    }
}

/// Ground truth (ids in `track_id`, exact poses) and detections (no ids, noisy), one
/// `PoseFrame` of each per video frame.
#[derive(Clone, Debug)]
pub struct Crowd {
    pub truth: Vec<PoseFrame>,
    pub detections: Vec<PoseFrame>,
}

#[derive(Clone, Copy, Debug)]
struct Walker {
    id: u64,
    /// Feet position (bottom centre).
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
    h: f32,
    phase: f32,
}

impl Walker {
    fn random(rng: &mut Rng, id: u64, cfg: &CrowdConfig, at_edge: bool) -> Walker {
        let (w, hgt) = (cfg.width as f32, cfg.height as f32);
        let h = rng.range(cfg.person_height.0, cfg.person_height.1);
        let speed = rng.range(cfg.speed.0, cfg.speed.1);
        let (x, y, target) = if at_edge {
            // Enter just outside one edge, heading for a point on the far half.
            let side = rng.below(4);
            let (x, y) = match side {
                0 => (-0.2 * h, rng.range(0.3 * hgt, hgt)),
                1 => (w + 0.2 * h, rng.range(0.3 * hgt, hgt)),
                2 => (rng.range(0.0, w), 0.25 * hgt),
                _ => (rng.range(0.0, w), hgt + 0.05 * h),
            };
            let target = match side {
                0 => (rng.range(0.6 * w, w), rng.range(0.3 * hgt, hgt)),
                1 => (rng.range(0.0, 0.4 * w), rng.range(0.3 * hgt, hgt)),
                2 => (rng.range(0.0, w), hgt),
                _ => (rng.range(0.0, w), 0.3 * hgt),
            };
            (x, y, target)
        } else {
            let (x, y) = (rng.range(0.0, w), rng.range(0.3 * hgt, hgt));
            (x, y, (rng.range(0.0, w), rng.range(0.3 * hgt, hgt)))
        };
        let (dx, dy) = (target.0 - x, target.1 - y);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        Walker {
            id,
            x,
            y,
            vx: dx / len * speed,
            vy: dy / len * speed,
            h,
            phase: rng.range(0.0, TAU),
        }
    }

    fn step(&mut self) {
        self.x += self.vx;
        self.y += self.vy;
        let speed = (self.vx * self.vx + self.vy * self.vy).sqrt();
        // One gait cycle per ~0.8 body heights walked.
        self.phase = (self.phase + TAU * speed / (0.8 * self.h)) % TAU;
    }

    /// The 17 COCO keypoints of the stick figure.
    fn keypoints(&self) -> [(f32, f32); NUM_KEYPOINTS] {
        stick_figure(self.x, self.y, self.h, self.phase, self.vx.signum())
    }

    fn bbox(&self) -> BBox {
        bounds(&self.keypoints(), self.h)
    }

    fn centre_inside(&self, cfg: &CrowdConfig) -> bool {
        let b = self.bbox();
        let (cx, cy) = (b.x + b.w / 2.0, b.y + b.h / 2.0);
        cx >= 0.0 && cy >= 0.0 && cx < cfg.width as f32 && cy < cfg.height as f32
    }

    fn gone(&self, cfg: &CrowdConfig) -> bool {
        let b = self.bbox();
        b.x + b.w < -1.0
            || b.y + b.h < -1.0
            || b.x > cfg.width as f32 + 1.0
            || b.y > cfg.height as f32 + 1.0
            || self.y < 0.2 * cfg.height as f32
    }
}

/// A walking stick figure with feet at (`x`, `y`), height `h`, gait `phase`, facing
/// `facing` (+1 right, -1 left).
fn stick_figure(x: f32, y: f32, h: f32, phase: f32, facing: f32) -> [(f32, f32); NUM_KEYPOINTS] {
    let s = if facing < 0.0 { -1.0 } else { 1.0 };
    // Body frame: u to the side (facing direction), v up from the feet.
    let p = |u: f32, v: f32| (x + u * h, y - v * h);
    let limb = |from: (f32, f32), len: f32, angle: f32| {
        (
            from.0 + s * len * h * angle.sin(),
            from.1 + len * h * angle.cos(),
        )
    };
    let leg = 0.45 * phase.sin();
    let arm = -0.4 * phase.sin();
    let (ls, rs) = (p(-0.11, 0.82), p(0.11, 0.82));
    let (lh, rh) = (p(-0.08, 0.53), p(0.08, 0.53));
    let (le, re) = (limb(ls, 0.17, arm), limb(rs, 0.17, -arm));
    let (lw, rw) = (limb(le, 0.15, arm + 0.3), limb(re, 0.15, -arm + 0.3));
    let (lk, rk) = (limb(lh, 0.25, leg), limb(rh, 0.25, -leg));
    let (la, ra) = (limb(lk, 0.26, 0.6 * leg), limb(rk, 0.26, -0.6 * leg));
    [
        p(0.02 * s, 0.93),
        p(-0.025 + 0.01 * s, 0.95),
        p(0.025 + 0.01 * s, 0.95),
        p(-0.05, 0.94),
        p(0.05, 0.94),
        ls,
        rs,
        le,
        re,
        lw,
        rw,
        lh,
        rh,
        lk,
        rk,
        la,
        ra,
    ]
}

/// The box around keypoints, padded like a person box (head top, a little room).
fn bounds(kps: &[(f32, f32); NUM_KEYPOINTS], h: f32) -> BBox {
    let (mut x0, mut y0, mut x1, mut y1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
    for &(x, y) in kps {
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    let (px, top, bottom) = (0.08 * h, 0.06 * h, 0.02 * h);
    BBox::new(
        x0 - px,
        y0 - top,
        x1 - x0 + 2.0 * px,
        y1 - y0 + top + bottom,
    )
}

fn inside(b: &BBox, x: f32, y: f32) -> bool {
    x >= b.x && x <= b.x + b.w && y >= b.y && y <= b.y + b.h
}

fn covered_fraction(b: &BBox, by: &BBox) -> f32 {
    let ix = (b.x + b.w).min(by.x + by.w) - b.x.max(by.x);
    let iy = (b.y + b.h).min(by.y + by.h) - b.y.max(by.y);
    if ix <= 0.0 || iy <= 0.0 {
        0.0
    } else {
        ix * iy / (b.w * b.h)
    }
}

/// Generates the crowd.
pub fn generate(cfg: &CrowdConfig) -> Crowd {
    let mut rng = Rng::new(cfg.seed);
    let mut next_id = 1u64;
    let mut walkers: Vec<Walker> = (0..cfg.people)
        .map(|_| {
            next_id += 1;
            Walker::random(&mut rng, next_id - 1, cfg, false)
        })
        .collect();
    let mut crowd = Crowd {
        truth: Vec::with_capacity(cfg.frames),
        detections: Vec::with_capacity(cfg.frames),
    };
    for frame in 0..cfg.frames {
        let mut truth = PoseFrame::new(frame as u64, cfg.width, cfg.height);
        let mut dets = PoseFrame::new(frame as u64, cfg.width, cfg.height);
        let boxes: Vec<BBox> = walkers.iter().map(Walker::bbox).collect();
        for (i, w) in walkers.iter().enumerate() {
            if !w.centre_inside(cfg) {
                continue;
            }
            let closer = || {
                walkers
                    .iter()
                    .enumerate()
                    .filter(move |(j, o)| *j != i && o.y > w.y)
                    .map(|(j, _)| &boxes[j])
            };
            let coverage = closer()
                .map(|b| covered_fraction(&boxes[i], b))
                .fold(0.0, f32::max);
            if coverage >= cfg.hide_fraction {
                continue;
            }
            let mut person = Person {
                track_id: Some(w.id),
                bbox: boxes[i],
                score: 1.0,
                ..Default::default()
            };
            for (k, &(x, y)) in person.keypoints.iter_mut().zip(&w.keypoints()) {
                let hidden = closer().any(|b| inside(b, x, y));
                *k = Keypoint {
                    x,
                    y,
                    score: 1.0,
                    visibility: if hidden {
                        Visibility::Hidden
                    } else {
                        Visibility::Visible
                    },
                };
            }
            truth.persons.push(person);
            if !rng.chance(cfg.noise.miss_rate) {
                dets.persons
                    .push(detect(&mut rng, &person, w.h, coverage, &cfg.noise));
            }
        }
        let fps = cfg.noise.false_positives;
        let n_fp = fps.floor() as usize + usize::from(rng.chance(fps.fract()));
        for _ in 0..n_fp {
            dets.persons.push(false_positive(&mut rng, cfg));
        }
        // Detector output order carries no identity.
        for i in (1..dets.persons.len()).rev() {
            let j = rng.below(i + 1);
            dets.persons.swap(i, j);
        }
        crowd.truth.push(truth);
        crowd.detections.push(dets);

        for w in &mut walkers {
            w.step();
            if w.gone(cfg) {
                *w = Walker::random(&mut rng, next_id, cfg, true);
                next_id += 1;
            }
        }
    }
    crowd
}

/// A noisy detection of a ground-truth person of height `h`, `coverage` occluded.
fn detect(rng: &mut Rng, truth: &Person, h: f32, coverage: f32, noise: &NoiseModel) -> Person {
    let bj = noise.box_jitter * h;
    let b = truth.bbox;
    let mut det = Person {
        track_id: None,
        bbox: BBox::new(
            b.x + bj * rng.normal(),
            b.y + bj * rng.normal(),
            (b.w + bj * rng.normal()).max(2.0),
            (b.h + bj * rng.normal()).max(2.0),
        ),
        score: if rng.chance(noise.low_score_rate) {
            rng.range(0.15, 0.45)
        } else {
            rng.range(0.6, 0.95) * (1.0 - 0.3 * coverage)
        },
        ..*truth
    };
    let kj = noise.keypoint_jitter * h;
    for k in &mut det.keypoints {
        let (jitter, score) = match k.visibility {
            Visibility::Visible => (kj, rng.range(0.6, 0.95)),
            _ => (2.0 * kj, rng.range(0.2, 0.5)),
        };
        k.x += jitter * rng.normal();
        k.y += jitter * rng.normal();
        k.score = score;
    }
    det
}

/// A spurious person somewhere in the frame, mostly with a low score.
fn false_positive(rng: &mut Rng, cfg: &CrowdConfig) -> Person {
    let h = rng.range(cfg.person_height.0, cfg.person_height.1);
    let x = rng.range(0.0, cfg.width as f32);
    let y = rng.range(0.3 * cfg.height as f32, cfg.height as f32);
    let kps = stick_figure(x, y, h, rng.range(0.0, TAU), 1.0);
    let mut p = Person {
        bbox: bounds(&kps, h),
        score: rng.range(0.1, 0.6),
        ..Default::default()
    };
    for (k, &(x, y)) in p.keypoints.iter_mut().zip(&kps) {
        *k = Keypoint {
            x: x + 0.05 * h * rng.normal(),
            y: y + 0.05 * h * rng.normal(),
            score: rng.range(0.1, 0.5),
            visibility: Visibility::Visible,
        };
    }
    p
}
