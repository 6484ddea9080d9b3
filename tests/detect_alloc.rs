//! The whole detector (stem, keypoint agents, decode) with the shipped bundle allocates
//! nothing after warm-up, with and without the test-time flip. Its own binary: the counting
//! allocator sees every thread of the process, so no other test may run beside it.

#[path = "util/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{Counting, allocations};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn detector_does_not_allocate_after_warm_up_with_or_without_flip() {
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
}
