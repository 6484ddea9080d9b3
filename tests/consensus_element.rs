//! swarmconsensus through gst-check's Harness: candidates in, fused poses out.

mod util;

use gst_check::Harness;
use gstswarmpose::meta::{PoseMeta, ROI_PARAM_NAME, set_pose_frame};
use gstswarmpose::pose::{BBox, Candidate, Tier, Visibility};
use util::{empty_person, init};

/// One person whose left shoulder gets 6 agreeing candidates and 2 liars.
fn buffer_with_candidates() -> gst::Buffer {
    let mut frame = gstswarmpose::pose::PoseFrame::new(7, 320, 240);
    frame
        .persons
        .push(empty_person(BBox::new(100.0, 40.0, 60.0, 150.0)));
    for agent in 0..8u16 {
        let liar = agent >= 6;
        frame.candidates.push(Candidate {
            agent,
            tier: Tier::Keypoint,
            keypoint: 5,
            person: 0,
            x: if liar {
                10.0
            } else {
                140.0 + agent as f32 * 0.2
            },
            y: if liar { 10.0 } else { 70.0 },
            confidence: 0.9,
        });
    }
    let mut buffer = gst::Buffer::with_size(320 * 240 * 4).unwrap();
    set_pose_frame(buffer.get_mut().unwrap(), frame);
    buffer
}

fn harness(props: &str) -> Harness {
    let mut h = Harness::new_parse(&format!("swarmconsensus {props}"));
    h.set_src_caps_str("video/x-raw,format=RGBA,width=320,height=240,framerate=30/1");
    h
}

#[test]
fn candidates_are_fused_into_the_person_keypoints() {
    init();
    let mut h = harness("");
    let out = h.push_and_pull(buffer_with_candidates()).unwrap();
    let meta = out.meta::<PoseMeta>().unwrap();
    let k = meta.frame().persons[0].keypoints[5];
    assert!(
        (k.x - 140.5).abs() < 1e-3 && (k.y - 70.0).abs() < 1e-3,
        "{k:?}"
    );
    assert_eq!(k.visibility, Visibility::Visible);
    assert!(k.score > 0.6 && k.score < 0.9, "{}", k.score);
    assert_eq!(
        meta.frame().persons[0].keypoints[0].visibility,
        Visibility::Absent
    );
    assert_eq!(meta.frame().candidates.len(), 8, "kept by default");
    assert!(
        meta.frame()
            .timings
            .get(gstswarmpose::pose::Stage::Consensus)
            > 0
    );
    // The ROI mirror shows the fused keypoint.
    let roi = out
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .next()
        .unwrap();
    let xs = roi
        .param(ROI_PARAM_NAME)
        .unwrap()
        .get::<gst::Array>("x")
        .unwrap();
    assert_eq!(xs.as_slice()[5].get::<f32>().unwrap(), k.x);
}

#[test]
fn keep_candidates_false_drops_them() {
    init();
    let mut h = harness("keep-candidates=false");
    let out = h.push_and_pull(buffer_with_candidates()).unwrap();
    assert!(
        out.meta::<PoseMeta>()
            .unwrap()
            .frame()
            .candidates
            .is_empty()
    );
}

#[test]
fn buffers_without_meta_pass_through() {
    init();
    let mut h = harness("");
    let out = h
        .push_and_pull(gst::Buffer::from_mut_slice(vec![9u8; 320 * 240 * 4]))
        .unwrap();
    assert!(out.meta::<PoseMeta>().is_none());
    assert!(out.map_readable().unwrap().iter().all(|&b| b == 9));
}
