//! swarmconsensus cost per frame: 10 persons x 102 keypoint agents (6 per keypoint, the shipped
//! bundle's layout), two colluders per keypoint (a third), reputations warmed up; fusion, validators,
//! reputation updates and the agents' health list included.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gstswarmpose::consensus::Consensus;
use gstswarmpose::detect::faults::{FaultConfig, FaultInjector, FaultKind, Spread};
use gstswarmpose::pose::{BBox, Candidate, NUM_KEYPOINTS, Person, PoseFrame, Tier};
use std::hint::black_box;

/// Keypoint agents per COCO keypoint, as in the shipped bundle.
const AGENTS_PER_KEYPOINT: u16 = 6;

/// A plausible standing pose in box-relative units, COCO order.
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

fn frame(n_persons: usize, t: u64) -> PoseFrame {
    let mut f = PoseFrame::new(t, 1280, 720);
    for p in 0..n_persons {
        let bbox = BBox::new(20.0 + 120.0 * p as f32, 100.0, 100.0, 300.0);
        f.persons.push(Person {
            bbox,
            score: 0.9,
            ..Default::default()
        });
        for (k, &(u, v)) in SHAPE.iter().enumerate() {
            for j in 0..AGENTS_PER_KEYPOINT {
                let jitter = ((p * 31 + k * 7 + j as usize * 13 + t as usize) % 9) as f32 - 4.0;
                f.candidates.push(Candidate {
                    agent: 6 + k as u16 * AGENTS_PER_KEYPOINT + j,
                    tier: Tier::Keypoint,
                    keypoint: k as u8,
                    person: p as u16,
                    x: bbox.x + u * bbox.w + jitter,
                    y: bbox.y + v * bbox.h - jitter,
                    confidence: 0.4 + 0.08 * j as f32,
                });
            }
        }
    }
    f.set_roster_from_candidates();
    let mut faults = FaultInjector::new(FaultConfig {
        kind: FaultKind::Collude,
        fraction: 0.33,
        seed: 1,
        spread: Spread::Balanced,
    });
    faults.apply(&mut f);
    f
}

fn bench(c: &mut Criterion) {
    let mut consensus = Consensus::default();
    for t in 0..50 {
        consensus.fuse(&mut frame(10, t));
    }
    let input = frame(10, 50);
    c.bench_function("consensus 10 persons x 102 agents", |b| {
        b.iter_batched_ref(
            || input.clone(),
            |f| consensus.fuse(black_box(f)),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
