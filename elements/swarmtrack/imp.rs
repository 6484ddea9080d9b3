use crate::meta::{PoseMeta, mirror_as_roi};
use crate::pose::{PoseFrame, Stage};
use crate::stats::FrameSample;
use crate::stats_glue::{self, StatsMonitor};
use crate::track::{Config, Tracker};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "swarmtrack",
        gst::DebugColorFlags::empty(),
        Some("swarmpose multi-person tracker"),
    )
});

#[derive(Default)]
struct State {
    tracker: Tracker,
    /// Frame size from the caps, for the metas of buffers without one.
    width: u32,
    height: u32,
    /// Frame counter of the last buffer, to number frames without meta.
    last_frame: Option<u64>,
}

#[derive(Default)]
pub struct SwarmTrack {
    settings: Mutex<Config>,
    state: Mutex<State>,
    stats: Mutex<StatsMonitor>,
}

impl SwarmTrack {
    /// Pushes the current settings into the tracker.
    fn apply_settings(&self) {
        let config = *self.settings.lock().unwrap();
        self.state.lock().unwrap().tracker.set_config(config);
    }

    fn reset(&self, why: &str) {
        let mut state = self.state.lock().unwrap();
        gst::debug!(
            CAT,
            imp = self,
            "{why}: resetting tracker, next id {}",
            state.tracker.next_id()
        );
        state.tracker.reset();
        state.last_frame = None;
    }
}

#[glib::object_subclass]
impl ObjectSubclass for SwarmTrack {
    const NAME: &'static str = "GstSwarmTrack";
    type Type = super::SwarmTrack;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for SwarmTrack {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Config::default();
            let flags = glib::ParamFlags::READWRITE | gst::PARAM_FLAG_MUTABLE_PLAYING;
            let double = |name: &str, nick: &str, blurb: &str, min: f64, max: f64, def: f32| {
                glib::ParamSpecDouble::builder(name)
                    .nick(nick)
                    .blurb(blurb)
                    .minimum(min)
                    .maximum(max)
                    .default_value(def as f64)
                    .flags(flags)
                    .build()
            };
            vec![
                glib::ParamSpecUInt::builder("max-age")
                    .nick("Maximum age")
                    .blurb(
                        "Frames a track is kept on prediction alone (occluded or undetected) \
                         before it is dropped; a person reappearing within that time keeps \
                         its id",
                    )
                    .minimum(0)
                    .maximum(10_000)
                    .default_value(d.max_age)
                    .flags(flags)
                    .build(),
                glib::ParamSpecUInt::builder("min-hits")
                    .nick("Minimum hits")
                    .blurb(
                        "Consecutive detections before a new track is confirmed and gets an \
                         id (1 = at once)",
                    )
                    .minimum(1)
                    .maximum(100)
                    .default_value(d.min_hits)
                    .flags(flags)
                    .build(),
                double(
                    "iou-weight",
                    "IoU weight",
                    "Weight of box IoU in the match similarity, the rest going to keypoint \
                     OKS (0 = keypoints only, 1 = boxes only)",
                    0.0,
                    1.0,
                    d.iou_weight,
                ),
                double(
                    "match-threshold",
                    "Match threshold",
                    "Similarity below which a track and a detection are never matched",
                    0.0,
                    1.0,
                    d.match_threshold,
                ),
                double(
                    "high-score-threshold",
                    "High score threshold",
                    "Detections scoring at least this are matched first and may start tracks",
                    0.0,
                    1.0,
                    d.high_score_threshold,
                ),
                double(
                    "low-score-threshold",
                    "Low score threshold",
                    "Detections scoring between this and the high threshold only extend \
                     followed tracks; lower ones are ignored (kept without id)",
                    0.0,
                    1.0,
                    d.low_score_threshold,
                ),
                double(
                    "process-noise",
                    "Process noise",
                    "Kalman process noise: per-frame position change std as a fraction of \
                     the person's height (higher follows abrupt motion, lower smooths)",
                    0.0001,
                    10.0,
                    d.process_noise,
                ),
                double(
                    "measurement-noise",
                    "Measurement noise",
                    "Kalman measurement noise: detected box std as a fraction of the \
                     person's height (higher smooths more)",
                    0.0001,
                    10.0,
                    d.measurement_noise,
                ),
            ]
            .into_iter()
            .chain(stats_glue::properties())
            .collect()
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        if stats_glue::set_property(&self.stats, pspec.name(), value) {
            gst::debug!(CAT, imp = self, "{} set to {:?}", pspec.name(), value);
            return;
        }
        {
            let mut s = self.settings.lock().unwrap();
            let float = || value.get::<f64>().expect("type checked upstream") as f32;
            match pspec.name() {
                "max-age" => s.max_age = value.get().expect("type checked upstream"),
                "min-hits" => s.min_hits = value.get().expect("type checked upstream"),
                "iou-weight" => s.iou_weight = float(),
                "match-threshold" => s.match_threshold = float(),
                "high-score-threshold" => s.high_score_threshold = float(),
                "low-score-threshold" => s.low_score_threshold = float(),
                "process-noise" => s.process_noise = float(),
                "measurement-noise" => s.measurement_noise = float(),
                name => unimplemented!("property {name}"),
            }
        }
        gst::debug!(CAT, imp = self, "{} set to {:?}", pspec.name(), value);
        self.apply_settings();
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if let Some(v) = stats_glue::property(&*self.obj(), &self.stats, pspec.name()) {
            return v;
        }
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "max-age" => s.max_age.to_value(),
            "min-hits" => s.min_hits.to_value(),
            "iou-weight" => (s.iou_weight as f64).to_value(),
            "match-threshold" => (s.match_threshold as f64).to_value(),
            "high-score-threshold" => (s.high_score_threshold as f64).to_value(),
            "low-score-threshold" => (s.low_score_threshold as f64).to_value(),
            "process-noise" => (s.process_noise as f64).to_value(),
            "measurement-noise" => (s.measurement_noise as f64).to_value(),
            name => unimplemented!("property {name}"),
        }
    }
}

impl GstObjectImpl for SwarmTrack {}

impl ElementImpl for SwarmTrack {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Swarm pose tracker",
                "Filter/Analyzer/Video",
                "Tracks the persons of the swarmpose meta across frames: stable ids, Kalman \
                 smoothed poses, and predicted poses for frames without detections",
                "swarmpose developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            // Pixels are never touched, so any raw video in any memory will do.
            let caps = gst::Caps::builder("video/x-raw").any_features().build();
            crate::pads::filter_pad_templates(&caps)
        });
        PAD_TEMPLATES.as_ref()
    }
}

// LATENCY: not overridden. Tracking runs synchronously on each buffer and holds none back
// (prediction fills gaps, it never delays), so the element adds 0 to upstream's latency;
// BaseTransform's default handler forwards the query to the peer and returns its answer
// unchanged, which is exactly that (the gst-plugins-rs practice for non-buffering filters).
impl BaseTransformImpl for SwarmTrack {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.reset("start");
        self.apply_settings();
        self.stats.lock().unwrap().reset();
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let (width, height) = match gst_video::VideoInfo::from_caps(incaps) {
            Ok(info) => (info.width(), info.height()),
            // Not fully specified raw video: take what size there is, 0 when none.
            Err(_) => {
                let s = incaps.structure(0);
                let dim = |f: &str| {
                    s.and_then(|s| s.get::<i32>(f).ok())
                        .map_or(0, |v| v.max(0) as u32)
                };
                (dim("width"), dim("height"))
            }
        };
        gst::debug!(CAT, imp = self, "frame size {width}x{height}");
        let mut state = self.state.lock().unwrap();
        state.width = width;
        state.height = height;
        drop(state);
        self.parent_set_caps(incaps, outcaps)
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::FlushStop(_) => self.reset("flush-stop"),
            // A new segment means a seek or a new stream: motion does not carry over.
            gst::EventView::Segment(_) => self.reset("segment"),
            gst::EventView::StreamStart(_) => self.reset("stream-start"),
            _ => {}
        }
        self.parent_sink_event(event)
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let started = Instant::now();
        let mut state = self.state.lock().unwrap();
        let state = &mut *state;
        // (persons out, frame had no detections, stage times) for the stats.
        let (persons, degraded, stages) = match buf.meta_mut::<PoseMeta>() {
            Some(mut meta) => {
                let frame = meta.frame_mut();
                let before = frame.persons.len();
                let out = state.tracker.update(&frame.persons);
                frame.persons.clear();
                frame.persons.extend_from_slice(out);
                if frame.persons.len() != before {
                    gst::debug!(
                        CAT,
                        imp = self,
                        "frame {}: skipped {} persons with unusable boxes",
                        frame.frame,
                        before - frame.persons.len()
                    );
                }
                state.last_frame = Some(frame.frame);
                gst::trace!(
                    CAT,
                    imp = self,
                    "frame {}: {} persons, {} live tracks",
                    frame.frame,
                    frame.persons.len(),
                    state.tracker.live_tracks()
                );
                frame
                    .timings
                    .set(Stage::Track, started.elapsed().as_nanos() as u64);
                (frame.persons.len(), false, Some(frame.timings))
            }
            None => {
                let number = state.last_frame.map_or(0, |f| f.saturating_add(1));
                state.last_frame = Some(number);
                let mut frame = PoseFrame::new(number, state.width, state.height);
                frame
                    .persons
                    .extend_from_slice(state.tracker.predict_only());
                gst::trace!(
                    CAT,
                    imp = self,
                    "frame {number} without detections: {} predicted persons",
                    frame.persons.len()
                );
                frame
                    .timings
                    .set(Stage::Track, started.elapsed().as_nanos() as u64);
                let out = (frame.persons.len(), true, Some(frame.timings));
                PoseMeta::add(buf, frame);
                out
            }
        };
        mirror_as_roi(buf);
        let sample = FrameSample {
            persons: persons as u32,
            // A frame without detections got predicted poses only.
            degraded,
            stages,
            ..stats_glue::sample_since(started)
        };
        stats_glue::record_frame(&*self.obj(), &self.stats, &sample);
        Ok(gst::FlowSuccess::Ok)
    }
}
