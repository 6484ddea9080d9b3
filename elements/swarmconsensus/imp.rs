use crate::consensus::{Consensus, ConsensusConfig};
use crate::meta::{PoseMeta, mirror_as_roi};
use crate::pose::Stage;
use crate::stats::FrameSample;
use crate::stats_glue::{self, StatsMonitor};
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "swarmconsensus",
        gst::DebugColorFlags::empty(),
        Some("swarmpose candidate fusion"),
    )
});

struct Settings {
    config: ConsensusConfig,
    keep_candidates: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            config: ConsensusConfig::default(),
            keep_candidates: true,
        }
    }
}

#[derive(Default)]
pub struct SwarmConsensus {
    settings: Mutex<Settings>,
    consensus: Mutex<Consensus>,
    stats: Mutex<StatsMonitor>,
}

#[glib::object_subclass]
impl ObjectSubclass for SwarmConsensus {
    const NAME: &'static str = "GstSwarmConsensus";
    type Type = super::SwarmConsensus;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for SwarmConsensus {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let d = Settings::default();
            vec![
                glib::ParamSpecFloat::builder("inlier-radius")
                    .nick("Inlier radius")
                    .blurb("Candidates within this fraction of the person box's larger side of the weighted median agree")
                    .minimum(0.001)
                    .maximum(1.0)
                    .default_value(d.config.inlier_radius)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecFloat::builder("min-visible-score")
                    .nick("Minimum visible score")
                    .blurb("Fused keypoints scoring below this are marked hidden")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.config.min_visible_score)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("keep-candidates")
                    .nick("Keep candidates")
                    .blurb("Keep every agent's candidates in the meta after fusing (for monitoring); false drops them")
                    .default_value(d.keep_candidates)
                    .mutable_playing()
                    .build(),
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
        let mut s = self.settings.lock().unwrap();
        match pspec.name() {
            "inlier-radius" => s.config.inlier_radius = value.get().expect("type checked upstream"),
            "min-visible-score" => {
                s.config.min_visible_score = value.get().expect("type checked upstream")
            }
            "keep-candidates" => s.keep_candidates = value.get().expect("type checked upstream"),
            name => unimplemented!("property {name}"),
        }
        gst::debug!(CAT, imp = self, "{} set to {:?}", pspec.name(), value);
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if let Some(v) = stats_glue::property(&*self.obj(), &self.stats, pspec.name()) {
            return v;
        }
        let s = self.settings.lock().unwrap();
        match pspec.name() {
            "inlier-radius" => s.config.inlier_radius.to_value(),
            "min-visible-score" => s.config.min_visible_score.to_value(),
            "keep-candidates" => s.keep_candidates.to_value(),
            name => unimplemented!("property {name}"),
        }
    }
}

impl GstObjectImpl for SwarmConsensus {}

impl ElementImpl for SwarmConsensus {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Swarm pose consensus",
                "Filter/Analyzer/Video",
                "Fuses the keypoint agents' candidates of each person by confidence-weighted robust \
                 voting into final poses; frames without the swarmpose meta pass untouched",
                "swarmpose developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder("video/x-raw").build();
            crate::pads::filter_pad_templates(&caps)
        });
        PAD_TEMPLATES.as_ref()
    }
}

// LATENCY: not overridden. The element is a synchronous in-place filter that holds no
// buffer, so it adds 0 to upstream's latency; BaseTransform's default query handler already
// forwards the query to the peer and returns its answer unchanged, which is exactly that
// (gst-plugins-rs does the same: only elements that hold data, e.g. audiornnoise, override it).
impl BaseTransformImpl for SwarmConsensus {
    // In place without touching pixels: a non-writable buffer costs a shallow copy only.
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        // Rates and counters describe one run of the element.
        self.stats.lock().unwrap().reset();
        Ok(())
    }

    fn transform_ip(
        &self,
        buffer: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let started = Instant::now();
        let (config, keep) = {
            let s = self.settings.lock().unwrap();
            (s.config, s.keep_candidates)
        };
        let sample = {
            let Some(mut meta) = buffer.meta_mut::<PoseMeta>() else {
                // Nothing to fuse: the frame passes untouched, counted as degraded.
                let sample = FrameSample {
                    degraded: true,
                    ..stats_glue::sample_since(started)
                };
                stats_glue::record_frame(&*self.obj(), &self.stats, &sample);
                return Ok(gst::FlowSuccess::Ok);
            };
            let frame = meta.frame_mut();
            let mut consensus = self.consensus.lock().unwrap();
            consensus.config = config;
            consensus.fuse(frame);
            if !keep {
                frame.candidates.clear();
            }
            frame
                .timings
                .set(Stage::Consensus, started.elapsed().as_nanos() as u64);
            gst::trace!(
                CAT,
                imp = self,
                "fused {} candidates into {} persons",
                frame.candidates.len(),
                frame.persons.len()
            );
            FrameSample {
                persons: frame.persons.len() as u32,
                // The detector's stage times ride along in the meta.
                stages: Some(frame.timings),
                ..FrameSample::default()
            }
        };
        mirror_as_roi(buffer);
        let sample = FrameSample {
            persons: sample.persons,
            stages: sample.stages,
            ..stats_glue::sample_since(started)
        };
        stats_glue::record_frame(&*self.obj(), &self.stats, &sample);
        Ok(gst::FlowSuccess::Ok)
    }
}
