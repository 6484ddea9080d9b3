//! Overlay drawing cost: 25 persons (skeleton, keypoints, boxes, ids) on a 1280x720 frame.
//!
//! `cargo bench --bench overlay`

use criterion::{Criterion, criterion_group, criterion_main};
use gstswarmpose::draw::{Canvas, PixelFormat, Plane};
use gstswarmpose::overlay::{OverlayStyle, draw_persons};
use gstswarmpose::pose::{BBox, Keypoint, NUM_KEYPOINTS, Person, Visibility};
use std::hint::black_box;

const W: u32 = 1280;
const H: u32 = 720;

/// 25 standing people of about 220 px in a 10 x 3 grid, each with its own track id.
fn crowd() -> Vec<Person> {
    const SHAPE: [(f32, f32); NUM_KEYPOINTS] = [
        (0.50, 0.08),
        (0.54, 0.06),
        (0.46, 0.06),
        (0.58, 0.08),
        (0.42, 0.08),
        (0.65, 0.22),
        (0.35, 0.22),
        (0.72, 0.38),
        (0.28, 0.38),
        (0.75, 0.52),
        (0.25, 0.52),
        (0.60, 0.55),
        (0.40, 0.55),
        (0.62, 0.75),
        (0.38, 0.75),
        (0.63, 0.95),
        (0.37, 0.95),
    ];
    (0..25u64)
        .map(|i| {
            let bbox = BBox::new(
                20.0 + (i % 10) as f32 * 125.0,
                20.0 + (i / 10) as f32 * 230.0,
                100.0,
                220.0,
            );
            Person {
                track_id: Some(i),
                bbox,
                score: 0.9,
                keypoints: SHAPE.map(|(u, v)| Keypoint {
                    x: bbox.x + u * bbox.w,
                    y: bbox.y + v * bbox.h,
                    score: 0.9,
                    visibility: Visibility::Visible,
                }),
                predicted: false,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let persons = crowd();
    let style = OverlayStyle::default();
    let mut group = c.benchmark_group("overlay_25_persons_1280x720");
    let mut nv12 = vec![16u8; (W * H * 3 / 2) as usize];
    group.bench_function("nv12", |b| {
        b.iter(|| {
            let (y, uv) = nv12.split_at_mut((W * H) as usize);
            let planes = [
                Plane {
                    data: y,
                    stride: W as usize,
                },
                Plane {
                    data: uv,
                    stride: W as usize,
                },
            ];
            let mut canvas = Canvas::new(PixelFormat::Nv12, W, H, planes).unwrap();
            draw_persons(&mut canvas, black_box(&persons), (1.0, 1.0), &style);
        })
    });
    let mut rgba = vec![0u8; (W * H * 4) as usize];
    group.bench_function("rgba", |b| {
        b.iter(|| {
            let planes = [Plane {
                data: &mut rgba,
                stride: (W * 4) as usize,
            }];
            let mut canvas = Canvas::new(PixelFormat::Rgba, W, H, planes).unwrap();
            draw_persons(&mut canvas, black_box(&persons), (1.0, 1.0), &style);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
