//! Live monitoring on the elements: `swarmpose-stats` element messages every
//! `stats-interval` frames with the documented fields, none at the default 0, the read-only
//! `stats` property, LATENCY answered as upstream's (the filters add nothing), and under load
//! swarmdetect giving up its test-time flip before it skips any detection.

mod util;

use gst::prelude::*;
use gstswarmpose::meta::set_pose_frame;
use gstswarmpose::pose::BBox;
use util::{frame_with, init, standing_person};

/// Runs `description` (with an `identity name=tag` that gets two persons on every odd
/// frame) to EOS and returns the stats structures posted, in order, and the pipeline.
fn run_collecting(description: &str) -> (Vec<gst::Structure>, gst::Pipeline) {
    init();
    let pipeline = gst::parse::launch(description)
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
    let tag = pipeline.by_name("tag").unwrap();
    tag.static_pad("src")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, |_, info| {
            if let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() {
                let n = buffer.offset();
                if n % 2 == 1 {
                    let persons = vec![
                        standing_person(BBox::new(10.0, 20.0, 50.0, 120.0), None),
                        standing_person(BBox::new(150.0, 30.0, 40.0, 100.0), None),
                    ];
                    set_pose_frame(buffer.make_mut(), frame_with(320, 240, persons));
                }
            }
            gst::PadProbeReturn::Ok
        });
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut stats = Vec::new();
    loop {
        let msg = bus
            .timed_pop(gst::ClockTime::from_seconds(20))
            .expect("the pipeline ends in time");
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{} ({:?})", e.error(), e.debug()),
            gst::MessageView::Element(e) => {
                let s = e.structure().unwrap();
                if s.name() == "swarmpose-stats" {
                    stats.push(s.to_owned());
                }
            }
            _ => {}
        }
    }
    (stats, pipeline)
}

const SOURCE: &str = "videotestsrc num-buffers=20 \
    ! video/x-raw,format=RGBA,width=320,height=240,framerate=30/1 ! identity name=tag";

#[test]
fn elements_post_stats_every_interval_frames() {
    let (stats, pipeline) = run_collecting(&format!(
        "{SOURCE} ! swarmconsensus name=c stats-interval=5 ! swarmtrack name=t stats-interval=5 \
         min-hits=1 ! swarmoverlay name=o stats-interval=10 ! fakesink"
    ));
    let of = |name: &str| -> Vec<&gst::Structure> {
        stats
            .iter()
            .filter(|s| s.get::<&str>("element").unwrap() == name)
            .collect()
    };
    let (c, t, o) = (of("c"), of("t"), of("o"));
    assert_eq!((c.len(), t.len(), o.len()), (4, 4, 2), "{stats:?}");
    for (i, s) in c.iter().enumerate() {
        assert_eq!(s.get::<u64>("frames").unwrap(), 5 * (i as u64 + 1));
        assert!(s.get::<f64>("fps").unwrap() > 0.0, "{s}");
        let (p50, p95) = (
            s.get::<f64>("p50-ms").unwrap(),
            s.get::<f64>("p95-ms").unwrap(),
        );
        assert!(p50 > 0.0 && p95 >= p50, "{s}");
        assert_eq!(s.get::<u64>("dropped").unwrap(), 0);
        // Even frames carry no meta: nothing to fuse.
        let frames = s.get::<u64>("frames").unwrap();
        assert_eq!(s.get::<u64>("degraded").unwrap(), frames.div_ceil(2), "{s}");
        assert!(s.get::<f64>("consensus-ms").unwrap() > 0.0, "{s}");
        // Reputations (issue 5): every agent that voted is active, none quarantined here.
        assert!(s.get::<u32>("agents-active").unwrap() > 0, "{s}");
        assert_eq!(s.get::<u32>("agents-quarantined").unwrap(), 0, "{s}");
    }
    // Frames 4, 9, 14, 19 (0-based) end each interval: odd ones have 2 persons.
    let persons: Vec<u32> = c.iter().map(|s| s.get("persons").unwrap()).collect();
    assert_eq!(persons, [0, 2, 0, 2]);
    assert_eq!(c[3].get::<u64>("persons-total").unwrap(), 20);
    // The tracker keeps persons between detections (predicted) and times itself.
    assert!(t[3].get::<f64>("track-ms").unwrap() > 0.0);
    assert!(t[3].get::<u32>("persons").unwrap() >= 2, "{}", t[3]);
    // The overlay sees the upstream stage times and its own.
    assert!(
        o[1].has_field("consensus-ms") && o[1].has_field("overlay-ms"),
        "{}",
        o[1]
    );

    // The property: the same structure, read at any time.
    let c_elem = pipeline.by_name("c").unwrap();
    let s = c_elem.property::<gst::Structure>("stats");
    assert_eq!(s.name(), "swarmpose-stats");
    assert_eq!(s.get::<u64>("frames").unwrap(), 20);
    assert_eq!(c_elem.property::<u32>("stats-interval"), 5);
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn no_messages_by_default_and_stats_restart_with_the_element() {
    let (stats, pipeline) = run_collecting(&format!(
        "{SOURCE} ! swarmconsensus name=c ! swarmtrack ! fakesink"
    ));
    assert!(stats.is_empty(), "{stats:?}");
    let c = pipeline.by_name("c").unwrap();
    assert_eq!(c.property::<u32>("stats-interval"), 0);
    // Still measured: the property works without messages.
    assert_eq!(
        c.property::<gst::Structure>("stats")
            .get::<u64>("frames")
            .unwrap(),
        20
    );
    pipeline.set_state(gst::State::Null).unwrap();
    pipeline.set_state(gst::State::Paused).unwrap();
    // Wait for preroll: exactly the one prerolled buffer has passed the restarted element
    // (the sink blocks on it), so without a reset the count would be 21.
    let (done, state, _) = pipeline.state(gst::ClockTime::from_seconds(10));
    assert!(
        done.is_ok() && state == gst::State::Paused,
        "{done:?} {state:?}"
    );
    assert_eq!(
        c.property::<gst::Structure>("stats")
            .get::<u64>("frames")
            .unwrap(),
        1,
        "a restarted element starts counting again"
    );
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn latency_is_upstreams_the_filters_add_nothing() {
    init();
    // A live source with a known latency: one frame at 25 fps (40 ms).
    let pipeline = gst::parse::launch(
        "videotestsrc is-live=true name=src ! video/x-raw,format=RGBA,width=160,height=120,framerate=25/1 \
         ! swarmconsensus ! swarmtrack ! swarmoverlay name=last ! fakesink",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let (res, state, _) = pipeline.state(gst::ClockTime::from_seconds(10));
    assert_eq!(
        (res, state),
        (Ok(gst::StateChangeSuccess::Success), gst::State::Playing)
    );
    let query_on = |name: &str| {
        let pad = pipeline.by_name(name).unwrap().static_pad("src").unwrap();
        let mut q = gst::query::Latency::new();
        assert!(pad.query(&mut q), "{name} answers LATENCY");
        q.result()
    };
    let (src, last) = (query_on("src"), query_on("last"));
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(src.0, "the source is live");
    assert!(
        src.1 > gst::ClockTime::ZERO,
        "the source has latency: {src:?}"
    );
    assert_eq!(src, last, "three filters added latency");
}

#[test]
fn under_load_swarmdetect_drops_the_flip_before_any_frame() {
    // A budget no frame can meet: every detected frame degrades one step (after the cooldown).
    // At one agent per keypoint the only steps are the flip, then skipped detections.
    let detect = |flip: bool| {
        let (stats, pipeline) = run_collecting(&format!(
            "{SOURCE} ! swarmdetect name=d backend=cpu agents-per-keypoint=1 flip={flip} \
             latency-budget=0.001 stats-interval=10 ! fakesink"
        ));
        pipeline.set_state(gst::State::Null).unwrap();
        let first = stats
            .into_iter()
            .find(|s| s.get::<&str>("element").unwrap() == "d")
            .expect("swarmdetect posts stats");
        (
            first.get::<u64>("dropped").unwrap(),
            first.get::<u64>("degraded").unwrap(),
        )
    };
    // With the flip: frame 0 loses it, frames 1-8 are the cooldown, frame 9 starts skipping
    // from frame 10 on; so 10 detected frames, all below the requested quality, none dropped.
    assert_eq!(detect(true), (0, 10));
    // Without it the first step already skips every other frame.
    let (dropped, _) = detect(false);
    assert!(dropped >= 4, "dropped {dropped}");
}
