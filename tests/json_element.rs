//! swarmjson in real pipelines: one line per frame, flushed at EOS, clear errors.

mod util;

use gst::prelude::*;
use gstswarmpose::json::frame_from_json;
use gstswarmpose::meta::set_pose_frame;
use gstswarmpose::pose::BBox;
use util::{frame_with, init, standing_person};

fn run_to_end(pipeline: &gst::Element) -> Result<(), String> {
    // A failing start fails the state change; its error message is on the bus either way.
    let _ = pipeline.set_state(gst::State::Playing);
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(20),
            &[gst::MessageType::Error, gst::MessageType::Eos],
        )
        .expect("the pipeline ends in time");
    let result = match msg.view() {
        gst::MessageView::Error(err) => Err(format!("{} ({:?})", err.error(), err.debug())),
        _ => Ok(()),
    };
    pipeline.set_state(gst::State::Null).unwrap();
    result
}

#[test]
fn writes_one_line_per_frame_with_the_poses() {
    init();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("swarmjson-lines.jsonl");
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers=6 ! video/x-raw,format=RGBA,width=320,height=240,framerate=30/1 \
         ! identity name=tag ! swarmjson location={} ! fakesink",
        path.display()
    ))
    .unwrap();
    // Odd frames get two persons, even frames none (as when detection skips frames).
    let tag = pipeline
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .by_name("tag")
        .unwrap();
    tag.static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, |_, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() {
                let n = buffer.pts().unwrap().mseconds() / 33;
                if n % 2 == 1 {
                    let persons = vec![
                        standing_person(BBox::new(10.0, 20.0, 50.0, 120.0), Some(n)),
                        standing_person(BBox::new(150.0, 30.0, 40.0, 100.0), None),
                    ];
                    let mut frame = frame_with(320, 240, persons);
                    frame.frame = n;
                    set_pose_frame(buffer.make_mut(), frame);
                }
            }
            gst::PadProbeReturn::Ok
        });
    run_to_end(&pipeline).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 6);
    for (i, line) in lines.iter().enumerate() {
        let (pts, frame) = frame_from_json(line).unwrap();
        assert!(pts.is_some());
        assert_eq!((frame.width, frame.height), (320, 240));
        assert_eq!(
            frame.persons.len(),
            if i % 2 == 1 { 2 } else { 0 },
            "line {i}"
        );
        if i % 2 == 1 {
            assert_eq!(frame.persons[0].track_id, Some(i as u64));
            assert_eq!(frame.persons[0].bbox, BBox::new(10.0, 20.0, 50.0, 120.0));
        }
    }
}

#[test]
fn unwritable_location_is_an_error_on_the_bus() {
    init();
    let pipeline = gst::parse::launch(
        "videotestsrc num-buffers=2 ! video/x-raw,width=64,height=64 ! swarmjson location=/nonexistent-dir/x.jsonl ! fakesink",
    )
    .unwrap();
    let err = run_to_end(&pipeline).expect_err("cannot open");
    assert!(err.contains("/nonexistent-dir/x.jsonl"), "{err}");
}

#[test]
fn missing_location_is_an_error_on_the_bus() {
    init();
    let pipeline = gst::parse::launch("videotestsrc num-buffers=2 ! swarmjson ! fakesink").unwrap();
    let err = run_to_end(&pipeline).expect_err("no location");
    assert!(err.contains("location"), "{err}");
}
