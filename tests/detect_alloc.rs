//! The whole detector (stem, keypoint agents, decode) with the shipped bundle allocates
//! nothing after warm-up: with and without the test-time flip, with the body tier, and the
//! follower that moves crops between body passes (`body-interval`). Its own binary with one
//! test: the counting allocator sees every thread of the process, so no other test may run
//! beside it.

#[path = "util/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{Counting, allocations};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn detector_does_not_allocate_after_warm_up() {
    use gstswarmpose::detect::sample::RgbView;
    use gstswarmpose::detect::{DetectConfig, Detector};
    use gstswarmpose::engine::Backend;
    use gstswarmpose::engine::bundle::Bundle;
    use gstswarmpose::pose::{BBox, PoseFrame};

    let bundle = Bundle::from_bytes(include_bytes!("../models/swarmpose.bundle")).unwrap();
    let mut detector = Detector::new(&bundle, Backend::Cpu).unwrap();
    let (w, h) = (320usize, 240usize);
    let pixels: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
    let view = RgbView::packed_rgb(&pixels, w, h);
    // Two upstream persons, so both rayon workers run crops.
    let boxes = [
        (BBox::new(20.0, 10.0, 100.0, 200.0), 1.0),
        (BBox::new(180.0, 30.0, 90.0, 180.0), 1.0),
    ];
    for flip in [false, true] {
        let config = DetectConfig {
            flip,
            ..DetectConfig::default()
        };
        let mut frame = PoseFrame::new(0, w as u32, h as u32);
        detector
            .detect(&view, Some(&boxes), &config, &mut frame)
            .unwrap();
        let before = allocations();
        for _ in 0..3 {
            detector
                .detect(&view, Some(&boxes), &config, &mut frame)
                .unwrap();
        }
        let n = allocations() - before;
        assert_eq!(frame.persons.len(), 2);
        assert_eq!(n, 0, "flip={flip}: {n} allocations in 3 frames");
    }

    // The body tier (no upstream boxes), asked to follow persons between passes.
    let config = DetectConfig {
        body_interval: 3,
        min_person_score: 0.0,
        ..DetectConfig::default()
    };
    let mut frame = PoseFrame::new(0, w as u32, h as u32);
    detector.detect(&view, None, &config, &mut frame).unwrap();
    let before = allocations();
    for _ in 0..3 {
        detector.detect(&view, None, &config, &mut frame).unwrap();
    }
    let n = allocations() - before;
    assert_eq!(n, 0, "body tier: {n} allocations in 3 frames");

    // The follower itself, on persons with confident keypoints (these random pixels may give
    // the body tier none to follow).
    use gstswarmpose::detect::follow::Follower;
    use gstswarmpose::pose::{Keypoint, Person};
    let person = |x: f32, dx: f32| Person {
        bbox: BBox::new(x, 10.0, 80.0, 200.0),
        score: 0.9,
        keypoints: std::array::from_fn(|k| Keypoint {
            x: x + 40.0 + dx + k as f32,
            y: 100.0 + k as f32,
            score: 0.8,
            ..Keypoint::default()
        }),
        ..Person::default()
    };
    let mut follower = Follower::new();
    let mut boxes = Vec::with_capacity(64);
    let anchors = [person(0.0, 0.0), person(150.0, 0.0)];
    let moved = [person(0.0, 3.0), person(150.0, -2.0)];
    let before = allocations();
    for _ in 0..3 {
        follower.anchor(&anchors);
        follower.update(&moved, w as f32, h as f32);
        boxes.clear();
        follower.boxes(10, &mut boxes);
    }
    let n = allocations() - before;
    assert_eq!(boxes.len(), 2, "{boxes:?}");
    assert_eq!(n, 0, "follower: {n} allocations");
}
