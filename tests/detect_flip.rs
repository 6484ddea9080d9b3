//! The test-time flip in the plain-Rust detector with the shipped bundle: the paired-worker
//! path (plain and mirrored crop side by side on two threads) gives exactly what one worker
//! running both crops gives, and a panicking agent fails alone: its mirror agent, whose map it
//! would have been merged with, still reports a position.

use gstswarmpose::detect::sample::RgbView;
use gstswarmpose::detect::{DetectConfig, Detector};
use gstswarmpose::engine::Backend;
use gstswarmpose::engine::bundle::Bundle;
use gstswarmpose::pose::{BBox, Candidate, MIRRORED_KEYPOINT, PoseFrame};

const W: usize = 320;
const H: usize = 240;

fn pixels() -> Vec<u8> {
    (0..W * H * 3)
        .map(|i| ((i * 7 + i / 960 * 13) % 251) as u8)
        .collect()
}

/// Three upstream persons: more than one team of two workers has, so a team runs several.
const BOXES: [(BBox, f32); 3] = [
    (
        BBox {
            x: 20.0,
            y: 10.0,
            w: 100.0,
            h: 200.0,
        },
        1.0,
    ),
    (
        BBox {
            x: 180.0,
            y: 30.0,
            w: 90.0,
            h: 180.0,
        },
        1.0,
    ),
    (
        BBox {
            x: 120.0,
            y: 60.0,
            w: 60.0,
            h: 120.0,
        },
        1.0,
    ),
];

/// Candidates of one frame on a rayon pool of `threads`, with `sabotaged` agents panicking.
fn candidates(threads: usize, flip: bool, sabotaged: &[u16]) -> Vec<Candidate> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let bundle = Bundle::from_bytes(include_bytes!("../models/swarmpose.bundle")).unwrap();
        let mut detector = Detector::new(&bundle, Backend::Cpu).unwrap();
        assert!(detector.set_sabotaged(sabotaged));
        let data = pixels();
        let view = RgbView::packed_rgb(&data, W, H);
        let config = DetectConfig {
            flip,
            ..DetectConfig::default()
        };
        let mut frame = PoseFrame::new(0, W as u32, H as u32);
        detector
            .detect(&view, Some(&BOXES), &config, &mut frame)
            .unwrap();
        let mut c = frame.candidates.clone();
        c.sort_by_key(|c| (c.person, c.agent));
        c
    })
}

fn bits(c: &[Candidate]) -> Vec<(u16, u16, u32, u32, u32)> {
    c.iter()
        .map(|c| {
            (
                c.person,
                c.agent,
                c.x.to_bits(),
                c.y.to_bits(),
                c.confidence.to_bits(),
            )
        })
        .collect()
}

#[test]
fn paired_workers_give_exactly_what_one_worker_gives() {
    let one = candidates(1, true, &[]);
    let two = candidates(2, true, &[]);
    assert_eq!(one.len(), 3 * 102);
    assert_eq!(bits(&one), bits(&two));
    // And the flip changes the answer (it is not silently off).
    assert_ne!(bits(&one), bits(&candidates(2, false, &[])));
}

#[test]
fn a_panicking_agent_fails_alone_under_the_flip() {
    let bundle = Bundle::from_bytes(include_bytes!("../models/swarmpose.bundle")).unwrap();
    let roster = Detector::new(&bundle, Backend::Cpu)
        .unwrap()
        .keypoint_roster();
    // The first left-eye agent; its mirror agent is the first right-eye agent.
    let (bad, _) = *roster.iter().find(|(_, k)| *k == 1).unwrap();
    let (mirror, _) = *roster
        .iter()
        .find(|(_, k)| *k == MIRRORED_KEYPOINT[1])
        .unwrap();
    for threads in [1, 2] {
        let c = candidates(threads, true, &[bad]);
        for cand in &c {
            let failed = cand.x.is_nan();
            assert_eq!(failed, cand.agent == bad, "{threads} threads: {cand:?}");
        }
        // The mirror agent falls back on its plain map: the same as without the flip.
        let plain = candidates(threads, false, &[bad]);
        let of = |c: &[Candidate]| {
            bits(
                &c.iter()
                    .filter(|c| c.agent == mirror)
                    .copied()
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(of(&c), of(&plain), "{threads} threads");
    }
}
