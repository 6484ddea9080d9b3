//! swarmconsensus cost per frame: 10 persons x 102 keypoint agents (6 per keypoint, the shipped
//! bundle's layout), two colluders per keypoint (a third), reputations warmed up; fusion, validators,
//! reputation updates and the agents' health list included.

#[path = "../tests/util/mod.rs"]
mod util;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use gstswarmpose::consensus::Consensus;
use gstswarmpose::detect::faults::{FaultConfig, FaultInjector, FaultKind, Spread};
use gstswarmpose::pose::{BBox, Candidate, Person, PoseFrame, Tier};
use std::hint::black_box;

/// Keypoint agents per COCO keypoint, as in the shipped bundle.
const AGENTS_PER_KEYPOINT: u16 = 6;

fn frame(n_persons: usize, t: u64) -> PoseFrame {
    let mut f = PoseFrame::new(t, 1280, 720);
    for p in 0..n_persons {
        let bbox = BBox::new(20.0 + 120.0 * p as f32, 100.0, 100.0, 300.0);
        f.persons.push(Person {
            bbox,
            score: 0.9,
            ..Default::default()
        });
        let pose = util::standing_person(bbox, None);
        for (k, kp) in pose.keypoints.iter().enumerate() {
            for j in 0..AGENTS_PER_KEYPOINT {
                let jitter = ((p * 31 + k * 7 + j as usize * 13 + t as usize) % 9) as f32 - 4.0;
                f.candidates.push(Candidate {
                    agent: 6 + k as u16 * AGENTS_PER_KEYPOINT + j,
                    tier: Tier::Keypoint,
                    keypoint: k as u8,
                    person: p as u16,
                    x: kp.x + jitter,
                    y: kp.y - jitter,
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
