//! Shared helpers for the integration tests.
#![allow(dead_code)]

use gstswarmpose::pose::{BBox, Keypoint, NUM_KEYPOINTS, Person, PoseFrame, Visibility};
use std::path::PathBuf;
use std::sync::Once;

/// Initialises GStreamer and registers the plugin statically, once per test binary.
pub fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer initialises");
        gstswarmpose::plugin_register_static().expect("swarmpose plugin registers");
    });
}

/// The shared real data folder (`../shared/data` beside the repo, or `$SWARMPOSE_DATA`);
/// `None`, with the reason printed, when it is absent (a user's fresh clone).
pub fn data_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("SWARMPOSE_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    if dir.join("README.md").is_file() {
        Some(dir)
    } else {
        skipped(
            test,
            &format!(
                "real data not found at {} (set SWARMPOSE_DATA)",
                dir.display()
            ),
        );
        None
    }
}

/// A person whose keypoints are all absent, to be filled in by the test.
pub fn empty_person(bbox: BBox) -> Person {
    Person {
        track_id: None,
        bbox,
        score: 0.9,
        keypoints: [Keypoint::default(); NUM_KEYPOINTS],
        predicted: false,
    }
}

/// A plausible standing person inside `bbox`, every keypoint visible with score 0.9.
pub fn standing_person(bbox: BBox, track_id: Option<u64>) -> Person {
    // (x, y) in box-relative units, COCO order.
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
    let mut p = empty_person(bbox);
    p.track_id = track_id;
    for (k, (u, v)) in p.keypoints.iter_mut().zip(SHAPE) {
        *k = Keypoint {
            x: bbox.x + u * bbox.w,
            y: bbox.y + v * bbox.h,
            score: 0.9,
            visibility: Visibility::Visible,
        };
    }
    p
}

/// A frame of `width` x `height` with the given persons and a few candidates.
pub fn frame_with(width: u32, height: u32, persons: Vec<Person>) -> PoseFrame {
    let mut f = PoseFrame::new(3, width, height);
    for (i, p) in persons.iter().enumerate() {
        for (k, kp) in p.keypoints.iter().enumerate() {
            f.candidates.push(gstswarmpose::pose::Candidate {
                agent: k as u16,
                tier: gstswarmpose::pose::Tier::Keypoint,
                keypoint: k as u8,
                person: i as u16,
                x: kp.x + 0.25,
                y: kp.y - 0.5,
                confidence: 0.7,
            });
        }
    }
    f.persons = persons;
    f.timings.set(gstswarmpose::pose::Stage::Consensus, 12_345);
    f
}

/// Reports a skipped test: printed, and logged where `tests/run.sh` lists it at the end.
pub fn skipped(test: &str, reason: &str) {
    use std::io::Write;
    println!("SKIPPED {test}: {reason}");
    let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("skipped.log");
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(f, "SKIPPED {test}: {reason}");
    }
}

/// Silences the default panic message of injected agent faults (`fault-kind=panic` and
/// `set_sabotaged` make agents panic on purpose); other panics still print.
pub fn quiet_injected_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let injected = info
            .payload()
            .downcast_ref::<String>()
            .is_some_and(|m| m.contains("injected fault"));
        if !injected {
            default(info);
        }
    }));
}

/// Parses a gst-launch line ending in `appsink name=sink` and returns the pipeline (still in
/// NULL) with its sink.
pub fn pipeline_with_appsink(launch: &str) -> (gst::Pipeline, gst_app::AppSink) {
    use gst::prelude::*;
    let pipeline = gst::parse::launch(launch)
        .unwrap_or_else(|e| panic!("{launch}: {e}"))
        .downcast::<gst::Pipeline>()
        .unwrap();
    let sink = pipeline
        .by_name("sink")
        .expect("an appsink named sink")
        .downcast::<gst_app::AppSink>()
        .unwrap();
    (pipeline, sink)
}
