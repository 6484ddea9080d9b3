//! The `swarmtrack` element in a real pipeline (gst_check::Harness).

mod common;

use common::init_gst;
use gst::prelude::*;
use gst_check::Harness;
use gstswarmpose::meta::{PoseMeta, ROI_TYPE, set_pose_frame};
use gstswarmpose::pose::{BBox, Keypoint, Person, PoseFrame, Visibility};

const CAPS: &str = "video/x-raw,format=RGBA,width=640,height=480,framerate=30/1";

fn harness() -> Harness {
    init_gst();
    let mut h = Harness::new("swarmtrack");
    h.set_src_caps_str(CAPS);
    h.element().unwrap().set_property("min-hits", 1u32);
    h
}

fn person(x: f32, y: f32) -> Person {
    let mut p = Person {
        bbox: BBox::new(x, y, 60.0, 150.0),
        score: 0.9,
        ..Default::default()
    };
    for (i, k) in p.keypoints.iter_mut().enumerate() {
        *k = Keypoint {
            x: x + 10.0 + 2.5 * i as f32,
            y: y + 8.0 * i as f32,
            score: 0.8,
            visibility: Visibility::Visible,
        };
    }
    p
}

/// Two people walking apart, frame `t`.
fn scene(t: u64) -> PoseFrame {
    let mut f = PoseFrame::new(t, 640, 480);
    let d = 2.0 * t as f32;
    f.persons = vec![person(100.0 + d, 200.0), person(400.0 - d, 220.0)];
    f
}

fn buffer(t: u64, frame: Option<PoseFrame>) -> gst::Buffer {
    let mut b = gst::Buffer::with_size(16).unwrap();
    {
        let b = b.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(33 * t));
        if let Some(frame) = frame {
            set_pose_frame(b, frame);
        }
    }
    b
}

fn tracked(h: &mut Harness, t: u64, frame: Option<PoseFrame>) -> (PoseFrame, gst::Buffer) {
    let out = h.push_and_pull(buffer(t, frame)).unwrap();
    let frame = out
        .meta::<PoseMeta>()
        .expect("every output buffer has poses")
        .frame()
        .clone();
    (frame, out)
}

fn ids(f: &PoseFrame) -> Vec<Option<u64>> {
    f.persons.iter().map(|p| p.track_id).collect()
}

#[test]
fn ids_are_stable_and_mirrored_as_roi() {
    let mut h = harness();
    let (first, _) = tracked(&mut h, 0, Some(scene(0)));
    let first_ids = ids(&first);
    assert!(first_ids.iter().all(Option::is_some));
    assert_ne!(first_ids[0], first_ids[1]);
    for t in 1..40 {
        let (f, buf) = tracked(&mut h, t, Some(scene(t)));
        assert_eq!(ids(&f), first_ids, "frame {t}");
        assert!(f.persons.iter().all(|p| !p.predicted));
        let roi_ids: Vec<i32> = buf
            .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
            .filter(|r| r.roi_type() == ROI_TYPE)
            .map(|r| r.id())
            .collect();
        let expect: Vec<i32> = first_ids.iter().map(|id| id.unwrap() as i32).collect();
        assert_eq!(roi_ids, expect, "ROI metas carry the track ids");
    }
}

#[test]
fn buffers_without_meta_get_predicted_persons() {
    let mut h = harness();
    let mut last_ids = vec![];
    let mut last_x = 0.0;
    for t in 0..20 {
        let (f, _) = tracked(&mut h, t, Some(scene(t)));
        last_ids = ids(&f);
        last_x = f.persons[0].bbox.x;
    }
    for t in 20..24 {
        let (f, buf) = tracked(&mut h, t, None);
        assert_eq!(ids(&f), last_ids, "frame {t}");
        assert!(f.persons.iter().all(|p| p.predicted));
        assert_eq!((f.width, f.height), (640, 480), "frame size from the caps");
        assert_eq!(f.frame, t, "frames numbered on");
        // Person 0 walks right at 2 px/frame.
        let x = f.persons[0].bbox.x;
        assert!((x - last_x - 2.0).abs() < 0.5, "{last_x} -> {x}");
        last_x = x;
        assert_eq!(
            buf.iter_meta::<gst_video::VideoRegionOfInterestMeta>()
                .count(),
            2
        );
    }
    // Detection resumes: same ids, real detections.
    let (f, _) = tracked(&mut h, 24, Some(scene(24)));
    assert_eq!(ids(&f), last_ids);
    assert!(f.persons.iter().all(|p| !p.predicted));
}

#[test]
fn flush_resets_tracks_and_never_reuses_ids() {
    let mut h = harness();
    let mut before = vec![];
    for t in 0..10 {
        before = ids(&tracked(&mut h, t, Some(scene(t))).0);
    }
    assert!(h.push_event(gst::event::FlushStart::new()));
    assert!(h.push_event(gst::event::FlushStop::new(true)));
    assert!(
        h.push_event(gst::event::Segment::new(&gst::FormattedSegment::<
            gst::ClockTime,
        >::new()))
    );
    // Right after the flush there is nothing to predict.
    let (f, _) = tracked(&mut h, 10, None);
    assert!(f.persons.is_empty(), "tracks forgotten: {:?}", ids(&f));
    // The same people at the same places get new ids.
    let (f, _) = tracked(&mut h, 11, Some(scene(9)));
    let after = ids(&f);
    let max_before = before.iter().flatten().max().copied().unwrap();
    assert!(
        after.iter().all(|id| id.is_some_and(|id| id > max_before)),
        "{after:?} after {before:?}"
    );
}

#[test]
fn unusable_persons_are_dropped_and_the_stream_goes_on() {
    let mut h = harness();
    let mut frame = scene(0);
    frame.persons[0].bbox.w = f32::NAN;
    let mut empty = person(300.0, 100.0);
    empty.bbox.h = 0.0;
    frame.persons.push(empty);
    let (f, _) = tracked(&mut h, 0, Some(frame));
    assert_eq!(f.persons.len(), 1);
    assert!(f.persons[0].track_id.is_some());
    // A meta for a zero-sized frame is tracked all the same.
    let mut zero = scene(1);
    zero.width = 0;
    zero.height = 0;
    let (f, _) = tracked(&mut h, 1, Some(zero));
    assert_eq!(f.persons.len(), 2);
}

#[test]
fn properties_are_documented_with_ranges_and_defaults() {
    init_gst();
    let element = gst::ElementFactory::make("swarmtrack").build().unwrap();
    let expect = [
        ("max-age", 90.0, 0.0, 10_000.0),
        ("min-hits", 3.0, 1.0, 100.0),
        ("iou-weight", 0.5, 0.0, 1.0),
        ("match-threshold", 0.3, 0.0, 1.0),
        ("high-score-threshold", 0.5, 0.0, 1.0),
        ("low-score-threshold", 0.1, 0.0, 1.0),
        ("process-noise", 0.05, 0.0001, 10.0),
        ("measurement-noise", 0.05, 0.0001, 10.0),
    ];
    for (name, default, min, max) in expect {
        let pspec = element.find_property(name).expect(name);
        assert!(pspec.blurb().is_some_and(|b| b.len() > 20), "{name} blurb");
        let (d, lo, hi) = if let Some(p) = pspec.downcast_ref::<glib::ParamSpecUInt>() {
            (
                p.default_value() as f64,
                p.minimum() as f64,
                p.maximum() as f64,
            )
        } else {
            let p = pspec.downcast_ref::<glib::ParamSpecDouble>().expect(name);
            (p.default_value(), p.minimum(), p.maximum())
        };
        assert!((d - default).abs() < 1e-6, "{name} default {d}");
        assert_eq!((lo, hi), (min, max), "{name} range");
    }
    element.set_property("iou-weight", 0.25f64);
    element.set_property("max-age", 12u32);
    assert_eq!(element.property::<f64>("iou-weight"), 0.25);
    assert_eq!(element.property::<u32>("max-age"), 12);
}

use gst::glib;
