//! swarmdetect + swarmconsensus cost per 640x480 frame of a real clip, with the shipped bundle:
//! one person (`max-persons=1`), every person the body agents find (`max-persons=10`), one
//! person with the test-time flip (`flip=true`), and both person counts with the body tier on
//! one frame in 5 (`body-interval=5`).
//! Frames are decoded once up front (GStreamer), then the plain-Rust detector and consensus
//! are timed, CPU SIMD with rayon across person crops.
//!
//! `cargo bench --bench detect` (needs ../shared/data; skips with a message otherwise).

#[path = "../tests/util/mod.rs"]
mod util;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use gst::prelude::*;
use gstswarmpose::consensus::Consensus;
use gstswarmpose::detect::sample::RgbView;
use gstswarmpose::detect::{DetectConfig, Detector};
use gstswarmpose::engine::Backend;
use gstswarmpose::engine::bundle::Bundle;
use gstswarmpose::pose::PoseFrame;
use std::hint::black_box;
use std::path::PathBuf;

const W: usize = 640;
const H: usize = 480;

/// Up to `n` RGB frames of the clip, scaled to 640x480.
fn clip_frames(path: &std::path::Path, n: usize) -> Vec<Vec<u8>> {
    gst::init().unwrap();
    let launch = format!(
        "filesrc location={} ! decodebin ! videoconvert ! videoscale ! \
         video/x-raw,format=RGB,width={W},height={H},pixel-aspect-ratio=1/1 ! appsink name=sink sync=false",
        path.display()
    );
    let (pipeline, sink) = util::pipeline_with_appsink(&launch);
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut frames = Vec::new();
    while frames.len() < n {
        let Ok(sample) = sink.pull_sample() else {
            break;
        };
        let buffer = sample.buffer().unwrap();
        let map = buffer.map_readable().unwrap();
        // RGB rows of 640 * 3 = 1920 bytes are already 4-aligned: no padding to strip.
        frames.push(map.as_slice()[..W * H * 3].to_vec());
    }
    pipeline.set_state(gst::State::Null).unwrap();
    frames
}

fn bench(c: &mut Criterion) {
    let clip = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data/clips/street_walk_1280x720.avi");
    if !clip.is_file() {
        eprintln!("detect bench skipped: {} not found", clip.display());
        return;
    }
    let frames = clip_frames(&clip, 50);
    let bundle = Bundle::from_bytes(include_bytes!("../models/swarmpose.bundle")).unwrap();
    let mut detector = Detector::new(&bundle, Backend::Cpu).unwrap();
    let mut consensus = Consensus::default();
    let mut group = c.benchmark_group("detect_consensus_640x480");
    group.sample_size(20);
    // The element's defaults; the test-time flip (`flip=true`) at one person; and the body
    // tier on one frame in 5 (`body-interval=5`, crops following the keypoints between).
    for (max_persons, flip, body_interval) in [
        (1usize, false, 1u32),
        (10, false, 1),
        (1, true, 1),
        (1, false, 5),
        (10, false, 5),
    ] {
        let config = DetectConfig {
            max_persons,
            flip,
            body_interval,
            ..DetectConfig::default()
        };
        let mut name = format!("max_persons_{max_persons}");
        if flip {
            name += "_flip";
        }
        if body_interval > 1 {
            name += &format!("_body_interval_{body_interval}");
        }
        let mut frame = PoseFrame::new(0, W as u32, H as u32);
        let mut persons = 0usize;
        let mut runs = 0usize;
        let mut i = 0;
        group.bench_function(BenchmarkId::from_parameter(&name), |b| {
            b.iter(|| {
                let view = RgbView::packed_rgb(&frames[i % frames.len()], W, H);
                i += 1;
                detector.detect(&view, None, &config, &mut frame).unwrap();
                consensus.fuse(&mut frame);
                persons += frame.persons.len();
                runs += 1;
                black_box(&frame);
            })
        });
        // Only for a benchmark that ran (a filter skips the others without calling the closure).
        if runs > 0 {
            eprintln!(
                "{name}: {:.2} persons per frame on average",
                persons as f64 / runs as f64
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
