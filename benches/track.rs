//! Tracker update cost per frame on a synthetic walking crowd.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gstswarmpose::pose::{BBox, Keypoint, NUM_KEYPOINTS, Person, Visibility};
use gstswarmpose::track::Tracker;
use std::hint::black_box;

/// `n` people on a grid, each walking at its own velocity, at frame `t`: dense enough that
/// neighbours overlap, as in a crowd.
fn crowd(n: usize, t: usize) -> Vec<Person> {
    let cols = (n as f32).sqrt().ceil() as usize;
    (0..n)
        .map(|i| {
            let (gx, gy) = ((i % cols) as f32, (i / cols) as f32);
            let (vx, vy) = (((i * 7) % 5) as f32 - 2.0, ((i * 3) % 3) as f32 - 1.0);
            let (x, y) = (
                40.0 + 55.0 * gx + 0.5 * vx * t as f32,
                60.0 + 70.0 * gy + 0.5 * vy * t as f32,
            );
            let h = 120.0 + (i % 4) as f32 * 10.0;
            let mut keypoints = [Keypoint::default(); NUM_KEYPOINTS];
            for (k, kp) in keypoints.iter_mut().enumerate() {
                *kp = Keypoint {
                    x: x + 0.4 * h * ((k % 2) as f32),
                    y: y + h * k as f32 / NUM_KEYPOINTS as f32,
                    score: 0.9,
                    visibility: Visibility::Visible,
                };
            }
            Person {
                track_id: None,
                bbox: BBox::new(x, y, 0.4 * h, h),
                score: 0.6 + 0.3 * ((i % 3) as f32 / 2.0),
                keypoints,
                predicted: false,
            }
        })
        .collect()
}

fn bench_update(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracker_update");
    group.sample_size(10);
    for n in [25usize, 100] {
        let frames: Vec<Vec<Person>> = (0..64).map(|t| crowd(n, t)).collect();
        group.bench_with_input(BenchmarkId::from_parameter(n), &frames, |b, frames| {
            let mut tracker = Tracker::default();
            // Warm up: confirmed tracks, buffers at their working size.
            for f in frames {
                tracker.update(f);
            }
            // The bench measures tracking, not track creation: check persons are matched,
            // over the bounce at the end of the clip too.
            let tracked: usize = frames
                .iter()
                .rev()
                .chain(frames)
                .map(|f| {
                    tracker
                        .update(f)
                        .iter()
                        .filter(|p| p.track_id.is_some())
                        .count()
                })
                .sum();
            let share = tracked as f64 / (2 * n * frames.len()) as f64;
            assert!(share > 0.95, "only {share:.3} of persons tracked");
            let mut i = 0;
            b.iter(|| {
                // Loop over the clip back and forth so motion stays continuous.
                let k = i % (2 * frames.len() - 2);
                let f = if k < frames.len() {
                    k
                } else {
                    2 * frames.len() - 2 - k
                };
                i += 1;
                black_box(tracker.update(black_box(&frames[f])).len())
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_update);
criterion_main!(benches);
