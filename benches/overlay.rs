//! Overlay drawing cost: 25 persons (skeleton, keypoints, boxes, ids) on a 1280x720 frame.
//!
//! `cargo bench --bench overlay`

use criterion::{Criterion, criterion_group, criterion_main};
use gstswarmpose::draw::{Canvas, PixelFormat, Plane};
use gstswarmpose::overlay::{OverlayStyle, draw_persons};
use gstswarmpose::pose::{BBox, Person};

// The tests' pose fixtures, so the bench draws the same figures the tests check.
#[path = "../tests/util/mod.rs"]
mod util;
use std::hint::black_box;
use util::standing_person;

const W: u32 = 1280;
const H: u32 = 720;

/// 25 standing people of about 220 px in a 10 x 3 grid, each with its own track id.
fn crowd() -> Vec<Person> {
    (0..25u64)
        .map(|i| {
            let bbox = BBox::new(
                20.0 + (i % 10) as f32 * 125.0,
                20.0 + (i / 10) as f32 * 230.0,
                100.0,
                220.0,
            );
            standing_person(bbox, Some(i))
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
