//! swarmdetect through gst-check's Harness and real pipelines, on a synthetic bundle (random
//! weights, the shipped bundle's structure) so the plumbing is checked independently of how
//! well the trained agents do; the trained bundle is checked on real data in detect_real.rs.

mod util;

use gst::prelude::*;
use gst_check::Harness;
use gstswarmpose::engine::synth::detector_bundle;
use gstswarmpose::meta::{PoseMeta, set_pose_frame};
use gstswarmpose::pose::{BBox, PoseFrame, Tier};
use std::path::PathBuf;
use std::sync::OnceLock;
use util::{empty_person, init};

const KEYPOINT_AGENTS: usize = 17 * 3;
const BODY_AGENTS: usize = 4;

/// A synthetic bundle file shared by the tests of this binary.
fn bundle_path() -> &'static str {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("detect_element.bundle");
        let bundle = detector_bundle(11, BODY_AGENTS).expect("synthetic bundle builds");
        std::fs::write(&path, bundle.to_bytes()).expect("bundle written");
        path
    })
    .to_str()
    .unwrap()
}

fn harness(props: &str) -> Harness {
    init();
    let mut h = Harness::new_parse(&format!(
        "swarmdetect weights={} backend=cpu {props}",
        bundle_path()
    ));
    h.set_src_caps_str("video/x-raw,format=RGBx,width=320,height=240,framerate=30/1");
    h
}

/// A frame with a gradient and a bright upright block (pixels matter only for determinism).
fn frame_buffer() -> gst::Buffer {
    let mut data = vec![0u8; 320 * 240 * 4];
    for (i, px) in data.chunks_exact_mut(4).enumerate() {
        let (x, y) = (i % 320, i / 320);
        px[0] = (x * 255 / 320) as u8;
        px[1] = (y * 255 / 240) as u8;
        px[2] = if (140..180).contains(&x) && (60..200).contains(&y) {
            250
        } else {
            30
        };
    }
    gst::Buffer::from_mut_slice(data)
}

fn frame_of(buffer: &gst::BufferRef) -> PoseFrame {
    buffer
        .meta::<PoseMeta>()
        .expect("swarmpose meta attached")
        .frame()
        .clone()
}

#[test]
fn every_person_gets_every_keypoint_agents_candidate() {
    let mut h = harness("max-persons=5 min-person-score=0");
    let out = h.push_and_pull(frame_buffer()).unwrap();
    let f = frame_of(&out);
    assert_eq!((f.width, f.height), (320, 240));
    assert!(
        !f.persons.is_empty() && f.persons.len() <= 5,
        "{} persons",
        f.persons.len()
    );
    assert_eq!(f.candidates.len(), f.persons.len() * KEYPOINT_AGENTS);
    for (p, person) in f.persons.iter().enumerate() {
        let b = person.bbox;
        assert!(
            b.x >= 0.0 && b.y >= 0.0 && b.x + b.w <= 320.0 && b.y + b.h <= 240.0,
            "{b:?}"
        );
        let mine: Vec<_> = f
            .candidates
            .iter()
            .filter(|c| usize::from(c.person) == p)
            .collect();
        assert_eq!(mine.len(), KEYPOINT_AGENTS);
        // Keypoint agents follow the body agents in the bundle: ids BODY_AGENTS.. in order.
        let mut ids: Vec<u16> = mine.iter().map(|c| c.agent).collect();
        ids.sort_unstable();
        assert_eq!(
            ids,
            (BODY_AGENTS as u16..(BODY_AGENTS + KEYPOINT_AGENTS) as u16).collect::<Vec<_>>()
        );
        // Candidates lie inside the person's square crop window.
        let side = b.w.max(b.h) * 1.25;
        let (cx, cy) = (b.x + b.w / 2.0, b.y + b.h / 2.0);
        for c in mine {
            assert_eq!(c.tier, Tier::Keypoint);
            assert!((0.0..=1.0).contains(&c.confidence));
            assert!(
                (c.x - cx).abs() <= side && (c.y - cy).abs() <= side,
                "candidate {c:?} far outside the crop of {b:?}"
            );
        }
    }
    // The ROI mirror is there for non-Rust readers.
    let rois = out
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .count();
    assert_eq!(rois, f.persons.len());
}

#[test]
fn upstream_boxes_replace_the_body_tier() {
    let mut h = harness("use-upstream-boxes=true");
    let mut buffer = frame_buffer();
    let mut given = PoseFrame::new(0, 320, 240);
    given
        .persons
        .push(empty_person(BBox::new(150.0, 60.0, 30.0, 140.0)));
    given
        .persons
        .push(empty_person(BBox::new(20.0, 30.0, 60.0, 60.0)));
    set_pose_frame(buffer.get_mut().unwrap(), given.clone());
    let f = frame_of(&h.push_and_pull(buffer).unwrap());
    assert_eq!(f.persons.len(), 2);
    for (got, want) in f.persons.iter().zip(&given.persons) {
        assert_eq!(got.bbox, want.bbox);
        assert_eq!(got.score, want.score);
    }
    assert_eq!(f.candidates.len(), 2 * KEYPOINT_AGENTS);
    // No upstream meta: no persons at all (never a guess).
    let f = frame_of(&h.push_and_pull(frame_buffer()).unwrap());
    assert!(f.persons.is_empty() && f.candidates.is_empty());
}

#[test]
fn agents_per_keypoint_selects_the_quality_level() {
    for (level, per_person) in [(1, 17), (2, 34), (0, 51), (9, 51)] {
        let mut h = harness(&format!(
            "use-upstream-boxes=true agents-per-keypoint={level}"
        ));
        let mut buffer = frame_buffer();
        let mut given = PoseFrame::new(0, 320, 240);
        given
            .persons
            .push(empty_person(BBox::new(150.0, 60.0, 30.0, 140.0)));
        set_pose_frame(buffer.get_mut().unwrap(), given);
        let f = frame_of(&h.push_and_pull(buffer).unwrap());
        assert_eq!(
            f.candidates.len(),
            per_person,
            "agents-per-keypoint={level}"
        );
        let mut kps: Vec<u8> = f.candidates.iter().map(|c| c.keypoint).collect();
        kps.dedup();
        assert_eq!(kps.len(), 17, "every keypoint keeps at least one agent");
    }
}

#[test]
fn interval_detects_one_frame_in_n() {
    let mut h = harness("interval=3 min-person-score=0");
    let with_meta: Vec<bool> = (0..7)
        .map(|_| {
            h.push_and_pull(frame_buffer())
                .unwrap()
                .meta::<PoseMeta>()
                .is_some()
        })
        .collect();
    assert_eq!(with_meta, [true, false, false, true, false, false, true]);
}

#[test]
fn same_input_same_output_and_pixels_untouched() {
    let mut h = harness("min-person-score=0");
    let a = h.push_and_pull(frame_buffer()).unwrap();
    let b = h.push_and_pull(frame_buffer()).unwrap();
    let (fa, fb) = (frame_of(&a), frame_of(&b));
    assert_eq!(fa.persons, fb.persons);
    assert_eq!(fa.candidates, fb.candidates);
    assert_eq!(fb.frame, 1, "frame counter advances");
    let original = frame_buffer();
    assert_eq!(
        a.map_readable().unwrap().as_slice(),
        original.map_readable().unwrap().as_slice()
    );
}

/// Runs a pipeline to EOS or error; the error text on failure.
fn run(launch: &str) -> Result<(), String> {
    init();
    let pipeline = gst::parse::launch(launch).map_err(|e| e.to_string())?;
    let _ = pipeline.set_state(gst::State::Playing);
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(60),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS or error within 60 s");
    pipeline.set_state(gst::State::Null).unwrap();
    match msg.view() {
        gst::MessageView::Error(err) => Err(format!("{} ({:?})", err.error(), err.debug())),
        _ => Ok(()),
    }
}

#[test]
fn missing_weights_is_a_clear_error_on_the_bus() {
    let err =
        run("videotestsrc num-buffers=2 ! swarmdetect weights=/nonexistent/x.bundle ! fakesink")
            .unwrap_err();
    assert!(err.contains("/nonexistent/x.bundle"), "{err}");
}

#[test]
fn corrupt_weights_is_a_clear_error_on_the_bus() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("corrupt.bundle");
    let mut bytes = std::fs::read(bundle_path()).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    let err = run(&format!(
        "videotestsrc num-buffers=2 ! swarmdetect weights={} ! fakesink",
        path.display()
    ))
    .unwrap_err();
    assert!(err.contains("not a usable swarmpose bundle"), "{err}");
    assert!(err.contains("CRC32"), "{err}");
}

#[test]
fn body_side_off_the_stride_is_a_clear_error_on_the_bus() {
    let err = run(
        "videotestsrc num-buffers=2 ! videoconvert ! swarmdetect backend=cpu body-side=200 ! fakesink",
    )
    .unwrap_err();
    assert!(err.contains("body side 200"), "{err}");
    assert!(err.contains("stride 16"), "{err}");
    assert!(err.contains("bad setting"), "{err}");
    run("videotestsrc num-buffers=2 ! videoconvert ! swarmdetect backend=cpu body-side=320 ! fakesink")
        .unwrap();
}

#[test]
fn unsupported_format_does_not_link() {
    init();
    let err = gst::parse::launch(
        "videotestsrc num-buffers=1 ! video/x-raw,format=I420 ! swarmdetect ! fakesink",
    )
    .unwrap_err();
    assert!(err.to_string().contains("link"), "{err}");
}

#[test]
fn full_chain_runs_to_eos_with_the_built_in_bundle() {
    run("videotestsrc num-buffers=5 ! video/x-raw,width=320,height=240 ! videoconvert ! swarmdetect backend=cpu \
         ! swarmconsensus ! swarmtrack ! swarmoverlay ! videoconvert ! fakesink")
        .unwrap();
}

/// The same frame through `backend=cpu` and `backend=gpu` (lavapipe in CI) gives identical
/// candidates: the engine's integer contract is bit-exact across backends.
#[test]
fn gpu_backend_matches_cpu_exactly() {
    // SAFETY: set before any wgpu call in this process; constant across tests.
    unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    let bundle = gstswarmpose::engine::bundle::Bundle::load(bundle_path()).unwrap();
    let gpu = match gstswarmpose::detect::Detector::new(&bundle, gstswarmpose::engine::Backend::Gpu)
    {
        Ok(d) => d,
        Err(e) if std::env::var_os("SWARMPOSE_REQUIRE_GPU").is_none() => {
            util::skipped(
                "detect_element::gpu_backend_matches_cpu_exactly",
                &format!("no GPU adapter: {e}"),
            );
            return;
        }
        Err(e) => panic!("GPU required but unavailable: {e}"),
    };
    drop(gpu);
    let run = |backend: &str| {
        let mut h = Harness::new_parse(&format!(
            "swarmdetect weights={} backend={backend} min-person-score=0 max-persons=2",
            bundle_path()
        ));
        h.set_src_caps_str("video/x-raw,format=RGBx,width=320,height=240,framerate=30/1");
        frame_of(&h.push_and_pull(frame_buffer()).unwrap())
    };
    let (cpu, gpu) = (run("cpu"), run("gpu"));
    assert!(!cpu.candidates.is_empty());
    assert_eq!(cpu.persons, gpu.persons);
    assert_eq!(cpu.candidates, gpu.candidates);
}

#[test]
fn stats_property_counts_frames_persons_and_agents() {
    let mut h = harness("name=d min-person-score=0 max-persons=2 agents-per-keypoint=2 interval=2");
    for _ in 0..4 {
        h.push_and_pull(frame_buffer()).unwrap();
    }
    let bin = h.element().unwrap().downcast::<gst::Bin>().unwrap();
    let stats = bin
        .by_name("d")
        .unwrap()
        .property::<gst::Structure>("stats");
    assert_eq!(stats.name(), "swarmpose-stats");
    assert_eq!(stats.get::<u64>("frames").unwrap(), 4);
    assert_eq!(
        stats.get::<u64>("dropped").unwrap(),
        0,
        "interval skips are not drops"
    );
    // 4 body agents + 17 keypoints x 2 agents.
    assert_eq!(stats.get::<u32>("agents-active").unwrap(), 4 + 34);
    assert!(stats.get::<u64>("persons-total").unwrap() >= 2);
    assert!(stats.get::<f64>("keypoint-ms").unwrap() > 0.0);
}
