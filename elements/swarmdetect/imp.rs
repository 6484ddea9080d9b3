use super::{BackendType, FaultKindType, FaultSpreadType};
use crate::detect::faults::{FaultConfig, FaultInjector, FaultKind, Spread};
use crate::detect::governor::Governor;
use crate::detect::sample::RgbView;
use crate::detect::{DetectConfig, DetectError, Detector};
use crate::engine::Backend;
use crate::engine::bundle::Bundle;
use crate::meta::{PoseMeta, mirror_as_roi, set_pose_frame};
use crate::pose::{BBox, PoseFrame};
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
        "swarmdetect",
        gst::DebugColorFlags::empty(),
        Some("swarmpose detection tiers"),
    )
});

/// The bundle trained by `training/run.sh`, compiled in so the element works with no setup.
static BUILTIN_BUNDLE: &[u8] = include_bytes!("../../models/swarmpose.bundle");

/// Packed RGB layouts read directly (others: put videoconvert in front).
const FORMATS: [gst_video::VideoFormat; 10] = [
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Bgr,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::Xrgb,
    gst_video::VideoFormat::Xbgr,
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::Argb,
    gst_video::VideoFormat::Abgr,
];

const DEFAULT_MAX_PERSONS: u32 = 10;
const DEFAULT_MIN_PERSON_SCORE: f64 = 0.3;
const DEFAULT_FLIP: bool = false;

#[derive(Clone, Debug)]
struct Settings {
    weights: Option<String>,
    backend: BackendType,
    max_persons: u32,
    min_person_score: f64,
    agents_per_keypoint: u32,
    flip: bool,
    latency_budget_ms: f64,
    interval: u32,
    body_interval: u32,
    body_side: u32,
    use_upstream_boxes: bool,
    fault_kind: FaultKindType,
    fault_fraction: f64,
    fault_seed: u64,
    fault_spread: FaultSpreadType,
}

impl Settings {
    fn fault_config(&self) -> FaultConfig {
        FaultConfig {
            kind: match self.fault_kind {
                FaultKindType::None => FaultKind::None,
                FaultKindType::Crash => FaultKind::Crash,
                FaultKindType::Silent => FaultKind::Silent,
                FaultKindType::Noise => FaultKind::Noise,
                FaultKindType::Collude => FaultKind::Collude,
                FaultKindType::Panic => FaultKind::Panic,
            },
            fraction: self.fault_fraction as f32,
            seed: self.fault_seed,
            spread: match self.fault_spread {
                FaultSpreadType::Random => Spread::Random,
                FaultSpreadType::Balanced => Spread::Balanced,
            },
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            weights: None,
            backend: BackendType::Auto,
            max_persons: DEFAULT_MAX_PERSONS,
            min_person_score: DEFAULT_MIN_PERSON_SCORE,
            agents_per_keypoint: 0,
            flip: DEFAULT_FLIP,
            latency_budget_ms: 0.0,
            interval: 1,
            body_interval: 1,
            body_side: 0,
            use_upstream_boxes: false,
            fault_kind: FaultKindType::None,
            fault_fraction: 0.0,
            fault_seed: 1,
            fault_spread: FaultSpreadType::Random,
        }
    }
}

/// Runtime state between start and stop.
struct State {
    detector: Detector,
    governor: Governor,
    info: Option<gst_video::VideoInfo>,
    frames: u64,
    faults: FaultInjector,
    /// The fault configuration the detector's injected panics were set up for.
    sabotage: FaultConfig,
}

#[derive(Default)]
pub struct SwarmDetect {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
    stats: Mutex<StatsMonitor>,
}

#[glib::object_subclass]
impl ObjectSubclass for SwarmDetect {
    const NAME: &'static str = "GstSwarmDetect";
    type Type = super::SwarmDetect;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for SwarmDetect {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecString::builder("weights")
                    .nick("Weights")
                    .blurb("Agent bundle file (.bundle) to load at start; unset = the bundle built into the plugin")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("backend", BackendType::Auto)
                    .nick("Backend")
                    .blurb("Where the agents run")
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-persons")
                    .nick("Maximum persons")
                    .blurb("Most persons per frame, best-scoring first")
                    .minimum(1)
                    .maximum(crate::detect::MAX_PERSONS as u32)
                    .default_value(DEFAULT_MAX_PERSONS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("min-person-score")
                    .nick("Minimum person score")
                    .blurb("Body-agent proposals scoring below this are not persons")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(DEFAULT_MIN_PERSON_SCORE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("agents-per-keypoint")
                    .nick("Agents per keypoint")
                    .blurb("Quality level: keypoint agents run per keypoint (0 = all the bundle has)")
                    .minimum(0)
                    .maximum(64)
                    .default_value(0)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecBoolean::builder("flip")
                    .nick("Test-time flip")
                    .blurb("Also run every person crop mirrored left to right and average each keypoint agent's \
                            map with its mirror agent's (left and right swapped): steadier keypoints, twice the \
                            keypoint-tier cost")
                    .default_value(DEFAULT_FLIP)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("latency-budget")
                    .nick("Latency budget (ms)")
                    .blurb("Processing time per frame to stay under: above it (or when downstream QoS reports lateness) \
                            the element drops the test-time flip, then runs fewer agents per keypoint, then skips detection \
                            on some frames; 0 = no budget \
                            (QoS still applies)")
                    .minimum(0.0)
                    .maximum(10_000.0)
                    .default_value(0.0)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("interval")
                    .nick("Detection interval")
                    .blurb("Run detection on one frame in N; the others pass without meta (swarmtrack predicts them)")
                    .minimum(1)
                    .maximum(1000)
                    .default_value(1)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("body-interval")
                    .nick("Body-tier interval")
                    .blurb("Run the body agents (person detection) on one detected frame in N; on the frames \
                            between, each person's crop follows the median motion of its keypoints since that \
                            pass, and a person whose keypoints fade is dropped. Persons entering the scene are \
                            found at the next pass; a flush, a new segment, a DISCONT buffer or new caps start \
                            again with a pass. Counted in detected frames (see interval); ignored with \
                            use-upstream-boxes. 1 = every frame")
                    .minimum(1)
                    .maximum(1000)
                    .default_value(1)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("body-side")
                    .nick("Body-tier side")
                    .blurb("Long side in pixels of the letterboxed frame the body agents (person detection) run \
                            on (the short side follows the frame's aspect ratio, rounded up to the stride: \
                            192x144 for 4:3 video): larger finds smaller persons, at more compute (MACs grow \
                            with its square). A multiple of the body stem's stride (16 for the built-in \
                            bundle). 0 = the bundle's choice (the stem's input side, 192, for the built-in one)")
                    .minimum(0)
                    .maximum(1024)
                    .default_value(0)
                    .build(),
                glib::ParamSpecBoolean::builder("use-upstream-boxes")
                    .nick("Use upstream boxes")
                    .blurb("Take person boxes from the swarmpose meta already on the buffer instead of running the \
                            body agents (top-down evaluation with ground-truth boxes); buffers without it get no persons")
                    .default_value(false)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("fault-kind", FaultKindType::None)
                    .nick("Fault kind")
                    .blurb("Fault injection (tests, demos): how the faulty keypoint agents misbehave")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecDouble::builder("fault-fraction")
                    .nick("Fault fraction")
                    .blurb("Share of the keypoint agents that are faulty (chosen from fault-seed, the same every frame)")
                    .minimum(0.0)
                    .maximum(1.0)
                    .default_value(0.0)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder("fault-seed")
                    .nick("Fault seed")
                    .blurb("Seed choosing the faulty agents, the colluders' point and the noise")
                    .default_value(1)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecEnum::builder_with_default("fault-spread", FaultSpreadType::Random)
                    .nick("Fault spread")
                    .blurb("How the faulty agents spread over the keypoints")
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
        let checked = "type checked upstream";
        match pspec.name() {
            "weights" => {
                s.weights = value
                    .get::<Option<String>>()
                    .expect(checked)
                    .filter(|w| !w.is_empty())
            }
            "backend" => s.backend = value.get().expect(checked),
            "max-persons" => s.max_persons = value.get().expect(checked),
            "min-person-score" => s.min_person_score = value.get().expect(checked),
            "agents-per-keypoint" => s.agents_per_keypoint = value.get().expect(checked),
            "flip" => s.flip = value.get().expect(checked),
            "latency-budget" => s.latency_budget_ms = value.get().expect(checked),
            "interval" => s.interval = value.get().expect(checked),
            "body-interval" => s.body_interval = value.get().expect(checked),
            "body-side" => s.body_side = value.get().expect(checked),
            "use-upstream-boxes" => s.use_upstream_boxes = value.get().expect(checked),
            "fault-kind" => s.fault_kind = value.get().expect(checked),
            "fault-fraction" => s.fault_fraction = value.get().expect(checked),
            "fault-seed" => s.fault_seed = value.get().expect(checked),
            "fault-spread" => s.fault_spread = value.get().expect(checked),
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
            "weights" => s.weights.to_value(),
            "backend" => s.backend.to_value(),
            "max-persons" => s.max_persons.to_value(),
            "min-person-score" => s.min_person_score.to_value(),
            "agents-per-keypoint" => s.agents_per_keypoint.to_value(),
            "flip" => s.flip.to_value(),
            "latency-budget" => s.latency_budget_ms.to_value(),
            "interval" => s.interval.to_value(),
            "body-interval" => s.body_interval.to_value(),
            "body-side" => s.body_side.to_value(),
            "use-upstream-boxes" => s.use_upstream_boxes.to_value(),
            "fault-kind" => s.fault_kind.to_value(),
            "fault-fraction" => s.fault_fraction.to_value(),
            "fault-seed" => s.fault_seed.to_value(),
            "fault-spread" => s.fault_spread.to_value(),
            name => unimplemented!("property {name}"),
        }
    }
}

impl GstObjectImpl for SwarmDetect {}

impl ElementImpl for SwarmDetect {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "Swarm pose detection",
                "Filter/Analyzer/Video",
                "Runs the swarm's detection tiers (shared int8 stem, body agents proposing persons, redundant \
                 per-keypoint agents) and attaches every agent's candidates as swarmpose meta; pixels pass unchanged",
                "swarmpose developers",
            )
        });
        Some(&*METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst_video::VideoCapsBuilder::new()
                .format_list(FORMATS)
                .build();
            crate::pads::filter_pad_templates(&caps)
        });
        PAD_TEMPLATES.as_ref()
    }
}

fn backend_of(b: BackendType) -> Backend {
    match b {
        BackendType::Auto => Backend::Auto,
        BackendType::Cpu => Backend::Cpu,
        BackendType::Gpu => Backend::Gpu,
    }
}

impl SwarmDetect {
    /// `fault-kind=panic`: makes the chosen keypoint agents panic inside the engine (the same
    /// agents `FaultInjector` would choose), or heals them when the kind changes. Only when
    /// the configuration changed, so frames pay nothing.
    fn set_up_panics(&self, state: &mut State, config: FaultConfig) {
        let wanted = if config.kind == FaultKind::Panic && config.is_active() {
            config
        } else {
            FaultConfig::default()
        };
        if wanted == state.sabotage {
            return;
        }
        state.sabotage = wanted;
        let ids = if wanted.is_active() {
            FaultInjector::choose(&wanted, &state.detector.keypoint_roster())
        } else {
            Vec::new()
        };
        if state.detector.set_sabotaged(&ids) {
            gst::info!(CAT, imp = self, "agents that panic in the engine: {ids:?}");
        } else {
            gst::element_imp_warning!(
                self,
                gst::LibraryError::Settings,
                [
                    "fault-kind=panic needs a CPU backend; no agent panics on {}",
                    state.detector.status()
                ]
            );
        }
    }

    fn load_bundle(weights: Option<&str>) -> Result<Bundle, gst::ErrorMessage> {
        match weights {
            None => Bundle::from_bytes(BUILTIN_BUNDLE).map_err(|e| {
                gst::error_msg!(
                    gst::LibraryError::Init,
                    ["The built-in agent bundle is unusable: {}", e]
                )
            }),
            Some(path) => Bundle::load(path).map_err(|e| match e {
                crate::engine::bundle::BundleError::Io(io) => gst::error_msg!(
                    gst::ResourceError::OpenRead,
                    ["Cannot read weights {}: {}", path, io]
                ),
                other => gst::error_msg!(
                    gst::StreamError::Format,
                    [
                        "Weights {} are not a usable swarmpose bundle: {}",
                        path,
                        other
                    ]
                ),
            }),
        }
    }

    /// Reads the person boxes (and scores) of a swarmpose meta already on the buffer.
    fn upstream_boxes(buffer: &gst::BufferRef, out: &mut Vec<(BBox, f32)>) {
        out.clear();
        if let Some(meta) = buffer.meta::<PoseMeta>() {
            let f = meta.frame();
            out.extend(f.persons.iter().map(|p| (p.bbox, p.score)));
        }
    }
}

impl BaseTransformImpl for SwarmDetect {
    // Reads pixels, writes meta: in place, never a pixel copy.
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let bundle = Self::load_bundle(settings.weights.as_deref())?;
        let body_side = (settings.body_side > 0).then_some(settings.body_side as usize);
        let detector = Detector::with_body_side(&bundle, backend_of(settings.backend), body_side)
            .map_err(|e| match e {
            DetectError::Config(_) => gst::error_msg!(
                gst::LibraryError::Settings,
                ["Cannot set up the detection tiers: {}", e]
            ),
            _ => gst::error_msg!(
                gst::LibraryError::Init,
                ["Cannot set up the detection tiers: {}", e]
            ),
        })?;
        if detector.status().starts_with("warning") {
            gst::warning!(CAT, imp = self, "{}", detector.status());
        }
        gst::info!(
            CAT,
            imp = self,
            "loaded {} agents ({} agent parameters), backend {}, body tier {}",
            bundle.agents.len(),
            bundle.manifest.total_agent_params,
            detector.status(),
            detector.has_body_tier()
        );
        let requested = match settings.agents_per_keypoint {
            0 => detector.max_agents_per_keypoint(),
            n => (n as usize).min(detector.max_agents_per_keypoint()),
        };
        *self.state.lock().unwrap() = Some(State {
            detector,
            governor: Governor::new(requested, settings.flip),
            info: None,
            frames: 0,
            faults: FaultInjector::new(settings.fault_config()),
            sabotage: FaultConfig::default(),
        });
        self.stats.lock().unwrap().reset();
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let info = gst_video::VideoInfo::from_caps(incaps)
            .map_err(|_| gst::loggable_error!(CAT, "Cannot parse caps {}", incaps))?;
        if incaps != outcaps {
            return Err(gst::loggable_error!(
                CAT,
                "swarmdetect does not convert: {} vs {}",
                incaps,
                outcaps
            ));
        }
        let mut state = self.state.lock().unwrap();
        let state = state
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "caps before start"))?;
        state.info = Some(info);
        state.detector.reset_following();
        Ok(())
    }

    fn sink_event(&self, event: gst::Event) -> bool {
        // After a flush (a seek), a new segment or a new stream, the persons followed between
        // body passes are elsewhere.
        if matches!(
            event.view(),
            gst::EventView::FlushStop(_)
                | gst::EventView::Segment(_)
                | gst::EventView::StreamStart(_)
        ) && let Some(state) = self.state.lock().unwrap().as_mut()
        {
            state.detector.reset_following();
        }
        self.parent_sink_event(event)
    }

    fn src_event(&self, event: gst::Event) -> bool {
        if let gst::EventView::Qos(qos) = event.view() {
            let (_, proportion, _, _) = qos.get();
            if let Some(state) = self.state.lock().unwrap().as_mut() {
                let before = state.governor.clone();
                state.governor.on_qos(proportion);
                let g = &state.governor;
                if (g.flip(), g.agents_per_keypoint(), g.skip_interval())
                    != (
                        before.flip(),
                        before.agents_per_keypoint(),
                        before.skip_interval(),
                    )
                {
                    gst::info!(
                        CAT,
                        imp = self,
                        "QoS proportion {proportion:.2}: flip {}, {} agents per keypoint, detection on 1 frame in {}",
                        g.flip(),
                        g.agents_per_keypoint(),
                        g.skip_interval()
                    );
                }
            }
        }
        self.parent_src_event(event)
    }

    fn transform_ip(
        &self,
        buffer: &mut gst::BufferRef,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let settings = self.settings.lock().unwrap().clone();
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else {
            gst::element_imp_error!(self, gst::CoreError::Negotiation, ["Buffer before start"]);
            return Err(gst::FlowError::Error);
        };
        let Some(info) = state.info.clone() else {
            gst::element_imp_error!(
                self,
                gst::CoreError::Negotiation,
                ["No caps set before the first buffer"]
            );
            return Err(gst::FlowError::NotNegotiated);
        };
        let frame_no = state.frames;
        state.frames += 1;
        if buffer.flags().contains(gst::BufferFlags::DISCONT) {
            // A gap in the stream (checked before any skip, so a skipped DISCONT buffer counts
            // too): the persons followed between body passes may have moved.
            state.detector.reset_following();
        }
        let started = Instant::now();
        let requested = match settings.agents_per_keypoint {
            0 => state.detector.max_agents_per_keypoint(),
            n => (n as usize).min(state.detector.max_agents_per_keypoint()),
        };
        state.governor.set_requested(requested, settings.flip);
        let by_interval = !frame_no.is_multiple_of(u64::from(settings.interval.max(1)));
        if by_interval || state.governor.should_skip(frame_no) {
            gst::trace!(CAT, imp = self, "frame {frame_no}: detection skipped");
            drop(guard);
            // A skip asked for by `interval` is normal; one forced by the load is a dropped detection.
            let sample = FrameSample {
                dropped: !by_interval,
                ..stats_glue::sample_since(started)
            };
            stats_glue::record_frame(&*self.obj(), &self.stats, &sample);
            return Ok(gst::FlowSuccess::Ok);
        }

        let mut upstream = Vec::new();
        if settings.use_upstream_boxes {
            Self::upstream_boxes(buffer, &mut upstream);
        }
        let config = DetectConfig {
            max_persons: settings.max_persons as usize,
            min_person_score: settings.min_person_score as f32,
            agents_per_keypoint: state.governor.agents_per_keypoint(),
            flip: state.governor.flip(),
            body_interval: settings.body_interval,
        };
        self.set_up_panics(state, settings.fault_config());
        let mut pose = PoseFrame::new(frame_no, info.width(), info.height());
        {
            let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).map_err(
                |_| {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Failed,
                        ["Cannot map the video frame for reading"]
                    );
                    gst::FlowError::Error
                },
            )?;
            let finfo = info.format_info();
            let offsets =
                [finfo.poffset()[0], finfo.poffset()[1], finfo.poffset()[2]].map(|o| o as usize);
            let view = RgbView {
                data: frame.plane_data(0).map_err(|_| gst::FlowError::Error)?,
                width: info.width() as usize,
                height: info.height() as usize,
                stride: info.stride()[0].max(0) as usize,
                pixel_stride: finfo.pixel_stride()[0].max(0) as usize,
                offsets,
            };
            let boxes = settings.use_upstream_boxes.then_some(upstream.as_slice());
            if let Err(e) = state.detector.detect(&view, boxes, &config, &mut pose) {
                gst::element_imp_error!(
                    self,
                    gst::StreamError::Failed,
                    ["Detection failed: {}", e]
                );
                return Err(gst::FlowError::Error);
            }
        }
        // The roster lets swarmconsensus tell a silent agent from one that did not run.
        pose.set_roster_from_candidates();
        state.faults.set_config(settings.fault_config());
        let before = state.faults.faulty_agents().len();
        state.faults.apply(&mut pose);
        if state.faults.faulty_agents().len() != before {
            gst::info!(
                CAT,
                imp = self,
                "fault injection {:?}: faulty agents {:?}",
                state.faults.config(),
                state.faults.faulty_agents()
            );
        }
        let ms = started.elapsed().as_secs_f64() * 1e3;
        state.governor.on_frame(ms, settings.latency_budget_ms);
        gst::trace!(
            CAT,
            imp = self,
            "frame {frame_no}: {} persons, {} candidates in {ms:.2} ms",
            pose.persons.len(),
            pose.candidates.len()
        );
        let body_agents = if state.detector.body_ran() {
            state.detector.body_agents()
        } else {
            0
        };
        let agents = AgentCounts {
            active: (body_agents
                + state
                    .detector
                    .active_keypoint_agents(config.agents_per_keypoint)) as u32,
            failed: 0,
            quarantined: 0,
        };
        let sample = FrameSample {
            persons: pose.persons.len() as u32,
            degraded: state.governor.is_degraded(),
            stages: Some(pose.timings),
            agents: Some(agents),
            ..stats_glue::sample_since(started)
        };
        drop(guard);
        set_pose_frame(buffer, pose);
        mirror_as_roi(buffer);
        stats_glue::record_frame(&*self.obj(), &self.stats, &sample);
        Ok(gst::FlowSuccess::Ok)
    }
}
