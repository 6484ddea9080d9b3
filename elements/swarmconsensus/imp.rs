use crate::consensus::{Consensus, ConsensusConfig};
use crate::meta::{PoseMeta, mirror_as_roi};
use crate::pose::{AgentHealth, Stage};
use crate::stats::{AgentCounts, FrameSample};
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
    state_location: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            config: ConsensusConfig::default(),
            keep_candidates: true,
            state_location: None,
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
                glib::ParamSpecFloat::builder("quorum")
                    .nick("Quorum")
                    .blurb("Share of the active (reputation x confidence) weight that must agree for a keypoint to be \
                            shown; below it the keypoint is hidden")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.config.quorum)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecFloat::builder("reputation-rate")
                    .nick("Reputation rate")
                    .blurb("Exponential smoothing rate of agent reputations per judged candidate (0 freezes them)")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.config.reputation_rate)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecFloat::builder("quarantine-below")
                    .nick("Quarantine below")
                    .blurb("Agents whose reputation falls below this are flagged Byzantine and get weight 0")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.config.quarantine_below)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecFloat::builder("release-above")
                    .nick("Release above")
                    .blurb("Quarantined agents are released once their reputation is back above this")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(d.config.release_above)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("validate")
                    .nick("Validate")
                    .blurb("Run the skeleton validators (learned limb lengths, positions, left/right order, joint \
                            angles) that veto or repair implausible keypoints")
                    .default_value(d.config.validate)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecString::builder("state-location")
                    .nick("State location")
                    .blurb("JSON file of agent reputations: loaded at start when it exists, written at EOS and stop \
                            (to a temporary file renamed over it); unset = no persistence")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecBoxed::builder::<gst::Structure>("consensus-stats")
                    .nick("Statistics")
                    .blurb("Totals (frames, keypoints, below-quorum, vetoed, repaired, failures, quarantines, \
                            releases), the quarantined agents and every agent's reputation")
                    .read_only()
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
            "quorum" => s.config.quorum = value.get().expect("type checked upstream"),
            "reputation-rate" => {
                s.config.reputation_rate = value.get().expect("type checked upstream")
            }
            "quarantine-below" => {
                s.config.quarantine_below = value.get().expect("type checked upstream")
            }
            "release-above" => s.config.release_above = value.get().expect("type checked upstream"),
            "validate" => s.config.validate = value.get().expect("type checked upstream"),
            "state-location" => {
                s.state_location = value
                    .get::<Option<String>>()
                    .expect("type checked upstream")
                    .filter(|l| !l.is_empty())
            }
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
            "quorum" => s.config.quorum.to_value(),
            "reputation-rate" => s.config.reputation_rate.to_value(),
            "quarantine-below" => s.config.quarantine_below.to_value(),
            "release-above" => s.config.release_above.to_value(),
            "validate" => s.config.validate.to_value(),
            "state-location" => s.state_location.to_value(),
            "consensus-stats" => {
                drop(s);
                self.stats().to_value()
            }
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

impl SwarmConsensus {
    fn stats(&self) -> gst::Structure {
        let consensus = self.consensus.lock().unwrap();
        let t = consensus.stats();
        let health = consensus.health();
        gst::Structure::builder("application/x-swarmconsensus-stats")
            .field("frames", t.frames)
            .field("keypoints", t.keypoints)
            .field("below-quorum", t.below_quorum)
            .field("vetoed", t.vetoed)
            .field("repaired", t.repaired)
            .field("failures", t.failures)
            .field("quarantines", t.quarantines)
            .field("releases", t.releases)
            .field(
                "quarantined",
                gst::Array::new(
                    health
                        .iter()
                        .filter(|a| a.quarantined)
                        .map(|a| u32::from(a.agent)),
                ),
            )
            .field(
                "agents",
                gst::Array::new(health.iter().map(|a| u32::from(a.agent))),
            )
            .field(
                "reputations",
                gst::Array::new(health.iter().map(|a| a.reputation)),
            )
            .field("failed", gst::Array::new(health.iter().map(|a| a.failed)))
            .build()
    }

    /// Writes the reputations to `state-location`, if set: to a temporary file beside it,
    /// then renamed over it, so the previous file is never left half-written.
    fn save_state(&self) {
        let Some(path) = self.settings.lock().unwrap().state_location.clone() else {
            return;
        };
        let health = self.consensus.lock().unwrap().health();
        match save_health(std::path::Path::new(&path), &health) {
            Ok(()) => gst::debug!(CAT, imp = self, "saved {} agents to {path}", health.len()),
            Err(e) => gst::element_imp_warning!(
                self,
                gst::ResourceError::Write,
                ["Cannot write the agent state {}: {}", path, e]
            ),
        }
    }
}

/// The state file: `{"version":1,"agents":[{agent, keypoint, reputation, quarantined, failed}]}`.
pub(crate) fn save_health(path: &std::path::Path, health: &[AgentHealth]) -> std::io::Result<()> {
    use std::io::Write;
    let agents: Vec<serde_json::Value> = health
        .iter()
        .map(|a| {
            serde_json::json!({"agent": a.agent, "keypoint": a.keypoint, "reputation": a.reputation,
                               "quarantined": a.quarantined, "failed": a.failed})
        })
        .collect();
    let text = serde_json::to_vec_pretty(&serde_json::json!({"version": 1, "agents": agents}))
        .map_err(std::io::Error::other)?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub(crate) fn load_health(path: &std::path::Path) -> Result<Vec<AgentHealth>, String> {
    let text = std::fs::read(path).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_slice(&text).map_err(|e| e.to_string())?;
    let agents = v["agents"].as_array().ok_or("no agents list")?;
    agents
        .iter()
        .map(|a| {
            let num = |k: &str| a[k].as_f64().ok_or_else(|| format!("agent without {k}"));
            Ok(AgentHealth {
                agent: u16::try_from(num("agent")? as u64).map_err(|e| e.to_string())?,
                keypoint: num("keypoint")? as u8,
                reputation: num("reputation")? as f32,
                quarantined: a["quarantined"].as_bool().unwrap_or(false),
                failed: num("failed").unwrap_or(0.0) as u32,
            })
        })
        .collect()
}

impl BaseTransformImpl for SwarmConsensus {
    // In place without touching pixels: a non-writable buffer costs a shallow copy only.
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        // Rates and counters describe one run of the element.
        self.stats.lock().unwrap().reset();
        let location = self.settings.lock().unwrap().state_location.clone();
        let mut consensus = self.consensus.lock().unwrap();
        consensus.reset();
        if let Some(path) = location {
            let path = std::path::Path::new(&path);
            if path.exists() {
                match load_health(path) {
                    Ok(health) => {
                        consensus.restore(&health);
                        gst::info!(
                            CAT,
                            imp = self,
                            "loaded {} agents from {}",
                            health.len(),
                            path.display()
                        );
                    }
                    // A bad state file is not fatal: start from scratch (and overwrite it).
                    Err(e) => gst::element_imp_warning!(
                        self,
                        gst::ResourceError::Read,
                        [
                            "Ignoring the unreadable agent state {}: {}",
                            path.display(),
                            e
                        ]
                    ),
                }
            }
        }
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        self.save_state();
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Eos(_) = event.view() {
            self.save_state();
        }
        self.parent_sink_event(event)
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
            let quarantined = frame.agents.iter().filter(|a| a.quarantined).count() as u32;
            FrameSample {
                persons: frame.persons.len() as u32,
                // The detector's stage times ride along in the meta.
                stages: Some(frame.timings),
                agents: (!frame.agents.is_empty()).then(|| AgentCounts {
                    active: frame.agents.len() as u32 - quarantined,
                    failed: frame.agents.iter().filter(|a| a.failed > 0).count() as u32,
                    quarantined,
                }),
                ..FrameSample::default()
            }
        };
        mirror_as_roi(buffer);
        let sample = FrameSample {
            persons: sample.persons,
            stages: sample.stages,
            agents: sample.agents,
            ..stats_glue::sample_since(started)
        };
        stats_glue::record_frame(&*self.obj(), &self.stats, &sample);
        Ok(gst::FlowSuccess::Ok)
    }
}
