//! The pose meta through real GStreamer elements: queue, tee, copies, scaling, cropping,
//! conversion; its ROI mirror; its JSON form.

mod util;

use gst::prelude::*;
use gst_check::Harness;
use gstswarmpose::json::{frame_from_json, frame_to_json};
use gstswarmpose::meta::{PoseMeta, ROI_PARAM_NAME, ROI_TYPE, mirror_as_roi, set_pose_frame};
use gstswarmpose::pose::{BBox, PoseFrame, Visibility};
use util::{frame_with, init, standing_person};

fn two_person_frame(width: u32, height: u32) -> PoseFrame {
    let mut a = standing_person(BBox::new(100.0, 60.0, 120.0, 300.0), Some(4));
    a.keypoints[3].visibility = Visibility::Hidden;
    a.keypoints[4].visibility = Visibility::Absent;
    let b = standing_person(BBox::new(400.5, 100.25, 90.0, 250.0), None);
    frame_with(width, height, vec![a, b])
}

fn rgba_buffer(width: u32, height: u32, frame: PoseFrame) -> gst::Buffer {
    let mut buffer = gst::Buffer::with_size((width * height * 4) as usize).unwrap();
    {
        let b = buffer.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(40));
        set_pose_frame(b, frame);
    }
    buffer
}

fn rgba_caps(width: u32, height: u32) -> String {
    format!("video/x-raw,format=RGBA,width={width},height={height},framerate=25/1")
}

fn pose_frame(buffer: &gst::BufferRef) -> Option<PoseFrame> {
    buffer.meta::<PoseMeta>().map(|m| m.frame().clone())
}

#[test]
fn meta_survives_buffer_copies() {
    init();
    let frame = two_person_frame(640, 480);
    let buffer = rgba_buffer(640, 480, frame.clone());
    let shallow = buffer.copy();
    let deep = buffer.copy_deep().unwrap();
    assert_eq!(pose_frame(&shallow), Some(frame.clone()));
    assert_eq!(pose_frame(&deep), Some(frame.clone()));
    // Copying again must not duplicate the meta.
    assert_eq!(deep.copy().iter_meta::<PoseMeta>().count(), 1);
    // The candidates and timings travel too: consensus needs them.
    assert_eq!(pose_frame(&deep).unwrap().candidates.len(), 34);
}

#[test]
fn meta_survives_queue_and_tee() {
    init();
    let pipeline = gst::parse::launch(
        "appsrc name=src format=time caps=video/x-raw,format=RGBA,width=640,height=480,framerate=25/1 \
         ! tee name=t t. ! queue ! appsink name=a sync=false t. ! queue ! appsink name=b sync=false",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let frame = two_person_frame(640, 480);
    src.push_buffer(rgba_buffer(640, 480, frame.clone()))
        .unwrap();
    src.end_of_stream().unwrap();
    for name in ["a", "b"] {
        let sink = pipeline
            .by_name(name)
            .unwrap()
            .downcast::<gst_app::AppSink>()
            .unwrap();
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_seconds(5))
            .expect("a buffer");
        assert_eq!(
            pose_frame(sample.buffer().unwrap()),
            Some(frame.clone()),
            "branch {name}"
        );
    }
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn videoscale_rescales_meta_and_roi() {
    init();
    let mut h = Harness::new_parse("videoscale ! capsfilter caps=video/x-raw,width=320,height=120");
    h.set_src_caps_str(&rgba_caps(640, 480));
    let frame = two_person_frame(640, 480);
    let out = h
        .push_and_pull(rgba_buffer(640, 480, frame.clone()))
        .unwrap();
    let scaled = pose_frame(&out).expect("videoscale keeps the size-tagged meta");
    assert_eq!((scaled.width, scaled.height), (320, 120));
    for (s, o) in scaled.persons.iter().zip(&frame.persons) {
        assert_eq!(
            s.bbox,
            BBox::new(
                o.bbox.x * 0.5,
                o.bbox.y * 0.25,
                o.bbox.w * 0.5,
                o.bbox.h * 0.25
            )
        );
        for (ks, ko) in s.keypoints.iter().zip(&o.keypoints) {
            assert_eq!((ks.x, ks.y), (ko.x * 0.5, ko.y * 0.25));
            assert_eq!((ks.score, ks.visibility), (ko.score, ko.visibility));
        }
    }
    let c = (scaled.candidates[0], frame.candidates[0]);
    assert_eq!((c.0.x, c.0.y), (c.1.x * 0.5, c.1.y * 0.25));
    // GStreamer's own ROI meta is rescaled by its own transform.
    let rois: Vec<_> = out
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .collect();
    assert_eq!(rois.len(), 2);
    assert_eq!(rois[0].rect(), (50, 15, 60, 75));
}

#[test]
fn videoconvert_keeps_meta_unchanged() {
    init();
    let mut h = Harness::new_parse("videoconvert ! capsfilter caps=video/x-raw,format=I420");
    h.set_src_caps_str(&rgba_caps(640, 480));
    let frame = two_person_frame(640, 480);
    let out = h
        .push_and_pull(rgba_buffer(640, 480, frame.clone()))
        .unwrap();
    assert_eq!(pose_frame(&out), Some(frame));
}

#[test]
fn videocrop_drops_meta_it_cannot_follow() {
    init();
    let mut h = Harness::new_parse("videocrop left=40 top=10");
    h.set_src_caps_str(&rgba_caps(640, 480));
    let out = h
        .push_and_pull(rgba_buffer(640, 480, two_person_frame(640, 480)))
        .unwrap();
    assert_eq!(out.size(), 600 * 470 * 4, "videocrop really cropped");
    assert!(
        pose_frame(&out).is_none(),
        "cropped coordinates would be wrong: the meta must go"
    );
}

#[test]
fn persons_are_mirrored_as_standard_roi_meta() {
    init();
    let frame = two_person_frame(640, 480);
    let buffer = rgba_buffer(640, 480, frame.clone());
    let rois: Vec<_> = buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .collect();
    assert_eq!(rois.len(), 2);
    let roi = &rois[0];
    assert_eq!(roi.roi_type(), ROI_TYPE);
    assert_eq!(roi.rect(), (100, 60, 120, 300));
    assert_eq!(roi.id(), 4);
    let s = roi.param(ROI_PARAM_NAME).expect("keypoints param");
    let xs = s.get::<gst::Array>("x").unwrap();
    assert_eq!(xs.len(), 17);
    assert_eq!(
        xs.as_slice()[5].get::<f32>().unwrap(),
        frame.persons[0].keypoints[5].x
    );
    let vis = s.get::<gst::Array>("visibility").unwrap();
    assert_eq!(vis.as_slice()[3].get::<i32>().unwrap(), 1);
    assert_eq!(vis.as_slice()[4].get::<i32>().unwrap(), 0);
    assert_eq!(s.get::<u64>("track-id").unwrap(), 4);
    assert_eq!(s.get::<f32>("score").unwrap(), 0.9);
    // The untracked person has ROI id -1 and no track-id field.
    assert_eq!(rois[1].id(), -1);
    assert!(!rois[1].param(ROI_PARAM_NAME).unwrap().has_field("track-id"));

    // Re-setting the frame replaces our ROI metas and keeps foreign ones.
    let mut buffer = buffer;
    let b = buffer.make_mut();
    gst_video::VideoRegionOfInterestMeta::add(b, "face", (1, 2, 3, 4));
    let mut fewer = frame.clone();
    fewer.persons.truncate(1);
    set_pose_frame(b, fewer);
    mirror_as_roi(b);
    let types: Vec<_> = b
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|r| r.roi_type().to_string())
        .collect();
    assert_eq!(types, ["face", "person"]);
}

#[test]
fn roi_box_is_clamped_to_the_frame() {
    init();
    let mut frame = two_person_frame(640, 480);
    frame.persons[0].bbox = BBox::new(-20.0, 400.0, 100.0, 200.0);
    frame.persons[1].bbox = BBox::new(f32::NAN, 0.0, 10.0, 10.0);
    let buffer = rgba_buffer(640, 480, frame);
    let rects: Vec<_> = buffer
        .iter_meta::<gst_video::VideoRegionOfInterestMeta>()
        .map(|r| r.rect())
        .collect();
    // A non-finite edge collapses to 0: an empty ROI, never a wild one.
    assert_eq!(rects, [(0, 400, 80, 80), (0, 0, 0, 10)]);
}

#[test]
fn json_round_trip_is_lossless() {
    let frame = two_person_frame(640, 480);
    let text = frame_to_json(&frame, Some(40_000_000));
    let (pts, back) = frame_from_json(&text).unwrap();
    assert_eq!(pts, Some(40_000_000));
    assert_eq!(back.persons, frame.persons);
    assert_eq!(
        (back.frame, back.width, back.height),
        (frame.frame, frame.width, frame.height)
    );
    // And the text itself is stable through a second trip.
    assert_eq!(frame_to_json(&back, pts), text);
}

#[test]
fn json_has_the_documented_shape() {
    let frame = two_person_frame(640, 480);
    let v: serde_json::Value = serde_json::from_str(&frame_to_json(&frame, None)).unwrap();
    assert!(v["pts_ns"].is_null());
    assert_eq!(v["frame"], 3);
    assert_eq!(
        (v["width"].as_u64(), v["height"].as_u64()),
        (Some(640), Some(480))
    );
    let persons = v["persons"].as_array().unwrap();
    assert_eq!(persons.len(), 2);
    assert_eq!(persons[0]["id"], 4);
    assert!(persons[1]["id"].is_null());
    assert_eq!(persons[0]["bbox"].as_array().unwrap().len(), 4);
    let kps = persons[0]["keypoints"].as_array().unwrap();
    assert_eq!(kps.len(), 17);
    assert!(kps.iter().all(|k| k.as_array().unwrap().len() == 3));
    // Readers that only know the core fields still parse: visibility/predicted optional.
    let minimal = r#"{"pts_ns":null,"frame":0,"width":2,"height":2,"persons":[{"id":null,"bbox":[0,0,1,1],"score":1,"keypoints":[[0,0,1],[0,0,1],[0,0,1],[0,0,1],[0,0,1],[0,0,1],[0,0,1],[0,0,1],[0,0,1],[0,0,1],[0,0,1],[0,0,1],[0,0,1],[0,0,1],[0,0,1],[0,0,1],[0,0,1]]}]}"#;
    let (_, f) = frame_from_json(minimal).unwrap();
    assert_eq!(f.persons[0].keypoints[16].visibility, Visibility::Visible);
    assert!(frame_from_json(r#"{"frame":0}"#).is_err());
}
