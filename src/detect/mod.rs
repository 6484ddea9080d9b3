//! The detection tiers of `swarmdetect`, as plain Rust: the shared stem ("retina") over the
//! letterboxed frame feeds the body agents (person boxes), through its body neck when the
//! bundle has one (a second head trained for boxes on the same backbone); over each person's
//! square crop it feeds the keypoint agents, whose candidates go into the [`PoseFrame`] for
//! consensus.
//!
//! The letterbox keeps the frame's aspect ratio (`192x144` for 4:3 video: the stem is fully
//! convolutional, so black bands would only cost compute); the body stem and swarm of each
//! letterbox shape are built the first time a frame of that shape comes (the last few are kept).
//!
//! Everything is sized in [`Detector::new`]; [`Detector::detect`] allocates nothing except
//! when a frame has more persons than any frame before (the frame's own vectors grow once) or
//! a frame size not seen lately.
//! Person crops run in parallel with rayon, one [`CropWorker`] (stem + keypoint swarms +
//! scratch) per thread; with the test-time flip the workers pair up, one running a person's
//! plain crop while the other runs its mirror image.

pub mod decode;
pub mod faults;
pub mod follow;
pub mod governor;
pub mod sample;

use crate::engine::bundle::Bundle;
use crate::engine::{
    ActiveBackend, Backend, EngineError, MapShape, QuantNet, QuantParams, Swarm, SwarmRunner,
};
use crate::pose::{
    BBox, Candidate, KEYPOINT_NAMES, Keypoint, MIRRORED_KEYPOINT, NUM_KEYPOINTS, Person, PoseFrame,
    Stage, Tier, Visibility,
};
use decode::{BODY_CHANNELS, BoxProposal, KEYPOINT_CHANNELS, KEYPOINT_SUBCELL_CHANNELS};
use follow::Follower;
use sample::{RgbView, Sampler, Window};
use std::fmt;
use std::time::Instant;

/// Tier names in the bundle.
pub const BODY_TIER: &str = "body";
pub const KEYPOINT_TIER: &str = "keypoint";
/// Square keypoint-crop margin when the bundle does not say (the training default).
pub const DEFAULT_CROP_MARGIN: f32 = 0.25;
/// Body proposals overlapping a better one by more than this IoU are dropped.
pub const NMS_IOU: f32 = 0.5;
/// Hard cap on persons per frame (sizes the scratch).
pub const MAX_PERSONS: usize = 64;
/// Keypoints whose provisional score is below this are marked hidden.
const PROVISIONAL_VISIBLE: f32 = 0.2;

/// Why a detector could not be built or run.
#[derive(Debug, Clone, PartialEq)]
pub enum DetectError {
    /// The bundle lacks what a detector needs (a stem, a keypoint tier...).
    Bundle(String),
    Engine(EngineError),
    /// The frame's pixels do not match its declared geometry.
    BadFrame(String),
    /// A setting the bundle's nets cannot run with.
    Config(String),
}

impl fmt::Display for DetectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bundle(s) => write!(f, "unusable bundle: {s}"),
            Self::Engine(e) => write!(f, "agent engine: {e}"),
            Self::BadFrame(s) => write!(f, "bad frame: {s}"),
            Self::Config(s) => write!(f, "bad setting: {s}"),
        }
    }
}

impl std::error::Error for DetectError {}

impl From<EngineError> for DetectError {
    fn from(e: EngineError) -> Self {
        Self::Engine(e)
    }
}

/// Per-frame knobs (element properties); may change between frames.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectConfig {
    pub max_persons: usize,
    pub min_person_score: f32,
    /// Keypoint agents used per keypoint; clamped to `1..=Detector::max_agents_per_keypoint()`.
    pub agents_per_keypoint: usize,
    /// Test-time flip: every crop also runs mirrored, and each agent's map is averaged with
    /// its mirror agent's (3-channel keypoint agents; others use the plain crop only).
    pub flip: bool,
    /// The body tier runs on one frame in N; the frames between follow each person's
    /// keypoints (see [`follow`]). 1: every frame.
    pub body_interval: u32,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            max_persons: 10,
            min_person_score: 0.3,
            agents_per_keypoint: usize::MAX,
            flip: false,
            body_interval: 1,
        }
    }
}

/// The stem over one window: sampler, int8 input, runner, requantised output.
struct Stem {
    sampler: Sampler,
    input: Vec<i8>,
    runner: SwarmRunner,
    out_f: Vec<f32>,
    out_q: Vec<i8>,
    out_quant: QuantParams,
}

impl Stem {
    /// `net` reads an RGB image of `input` shape (the bundle's stem on square crops, or its
    /// body stem on the letterboxed frame).
    fn new(net: &QuantNet, input: MapShape, backend: Backend) -> Result<Self, DetectError> {
        if input.c != 3 {
            return Err(DetectError::Bundle(format!(
                "stem input {}x{}x{}; an RGB input is needed",
                input.h, input.w, input.c
            )));
        }
        let runner = SwarmRunner::new(&Swarm::new(vec![net.clone()])?, input, backend)?;
        let len = runner.output_len();
        Ok(Stem {
            sampler: Sampler::new(input.w, input.h, net.input_q()),
            input: vec![0; input.h * input.w * 3],
            runner,
            out_f: vec![0.0; len],
            out_q: vec![0; len],
            out_quant: net.output_q(),
        })
    }

    /// Samples `win` of `img`, mirrored left to right if `mirror`, and runs the stem; the
    /// int8 features are in `self.out_q`.
    fn run(&mut self, img: &RgbView, win: Window, mirror: bool) -> Result<(), DetectError> {
        self.sampler.sample(img, win, &mut self.input);
        if mirror {
            let width = self.sampler.width();
            for row in self.input.chunks_exact_mut(width * 3) {
                // Reversing the bytes reverses the pixels and each pixel's RGB; undo the latter.
                row.reverse();
                row.chunks_exact_mut(3).for_each(<[i8]>::reverse);
            }
        }
        self.runner.run(&self.input, &mut self.out_f)?;
        // Exact: the runner dequantised these very levels with the same parameters.
        for (q, &x) in self.out_q.iter_mut().zip(&self.out_f) {
            *q = self.out_quant.quantize(x);
        }
        Ok(())
    }
}

/// One person's keypoint result from a worker.
#[derive(Clone, Copy, Debug, Default)]
struct PersonKeypoints {
    person: usize,
    keypoints: [Keypoint; NUM_KEYPOINTS],
}

/// Everything one thread needs to process person crops.
struct CropWorker {
    stem: Stem,
    /// Keypoint swarm per quality level (level `q` runs the first `q + 1` agents of each keypoint).
    levels: Vec<SwarmRunner>,
    /// The agents' maps on the last plain crop, and on the last mirrored one (test-time flip).
    plain: AgentMaps,
    mirrored: AgentMaps,
    /// One agent's map merged with its mirror agent's (test-time flip).
    merged: Vec<f32>,
    candidates: Vec<Candidate>,
    results: Vec<PersonKeypoints>,
}

/// One run of a quality level's keypoint agents on a crop: their maps, concatenated in runner
/// order, and which agents failed (panicked and were isolated).
#[derive(Default)]
struct AgentMaps {
    out: Vec<f32>,
    failed: Vec<bool>,
}

impl AgentMaps {
    fn new(out_len: usize, agents: usize) -> Self {
        AgentMaps {
            out: vec![0.0; out_len],
            failed: vec![false; agents],
        }
    }
}

/// The body tier: the body stem and swarm for each letterbox shape seen lately, and the
/// proposals.
struct BodyStage {
    /// Stem layers up to the body neck's branch, then the body neck (see [`Bundle::body_stem`]).
    net: QuantNet,
    swarm: Swarm,
    backend: Backend,
    /// Long side of the letterboxed frame; the short one follows the frame
    /// ([`sample::letterbox_shape`]).
    side: usize,
    stride: usize,
    /// The keypoint stem's side when the body tier may read worker 0's stem output instead of
    /// running its own (no body neck: the body stem is the keypoint stem), for square frames.
    shared_side: Option<usize>,
    agents: usize,
    /// Most recently used first, at most [`BODY_SHAPES`].
    inputs: Vec<BodyInput>,
    proposals: Vec<BoxProposal>,
}

/// Letterbox shapes whose body stems are kept: a video has one, a photo set a few.
const BODY_SHAPES: usize = 4;

/// The body tier for one letterbox shape: its stem (none when it reads worker 0's), swarm
/// and maps.
struct BodyInput {
    /// Input width and height.
    shape: (usize, usize),
    stem: Option<Stem>,
    grid: MapShape,
    runner: SwarmRunner,
    out: Vec<f32>,
    mean: Vec<f32>,
}

impl BodyStage {
    /// Builds the body tier's stem and swarm for a `w x h` input (a multiple of the stride).
    fn build(&self, (w, h): (usize, usize)) -> Result<BodyInput, DetectError> {
        let input = MapShape::new(h, w, 3);
        let shared = self.shared_side.is_some_and(|s| (w, h) == (s, s));
        let stem = match shared {
            true => None,
            false => Some(Stem::new(&self.net, input, self.backend)?),
        };
        let grid = self.net.out_shape(input)?;
        if grid.w * self.stride != w || grid.h * self.stride != h {
            return Err(DetectError::Bundle(format!(
                "body grid {}x{} does not divide the body input {w}x{h}",
                grid.h, grid.w
            )));
        }
        let features_q = stem.as_ref().map_or(self.net.output_q(), |s| s.out_quant);
        if self.swarm.input_q() != features_q || self.swarm.in_c() != grid.c {
            return Err(DetectError::Bundle(
                "body agents do not read the body tier's features".into(),
            ));
        }
        let runner = SwarmRunner::new(&self.swarm, grid, self.backend)?;
        Ok(BodyInput {
            shape: (w, h),
            stem,
            out: vec![0.0; runner.output_len()],
            mean: vec![0.0; grid.h * grid.w * BODY_CHANNELS],
            grid,
            runner,
        })
    }

    /// Puts the body input for a `w x h` input first in `self.inputs`: kept, or built (and
    /// the least recently used one dropped). Allocates only when the shape is new.
    fn select(&mut self, shape: (usize, usize)) -> Result<(), DetectError> {
        match self.inputs.iter().position(|i| i.shape == shape) {
            Some(i) => self.inputs[..=i].rotate_right(1),
            None => {
                let input = self.build(shape)?;
                self.inputs.truncate(BODY_SHAPES - 1);
                self.inputs.insert(0, input);
            }
        }
        Ok(())
    }
}

/// Identity of a keypoint agent inside a quality level's swarm.
#[derive(Clone, Copy, Debug)]
struct KeypointAgent {
    /// Index among all bundle agents (the id reputations and candidates use).
    bundle_index: u16,
    keypoint: u8,
}

/// The detection tiers, ready to run on frames.
pub struct Detector {
    side: usize,
    grid: MapShape,
    stride: f32,
    crop_margin: f32,
    body: Option<BodyStage>,
    workers: Vec<CropWorker>,
    /// Per quality level, the agents of its swarm in runner order.
    level_agents: Vec<Vec<KeypointAgent>>,
    /// Per quality level and agent, the runner index of its mirror agent: same rank among
    /// the agents of the left/right-swapped keypoint (test-time flip).
    level_mirrors: Vec<Vec<Option<usize>>>,
    boxes: Vec<(BBox, f32)>,
    follower: Follower,
    /// Whether the last frame ran the body tier.
    body_ran: bool,
    status: String,
}

impl Detector {
    /// Builds runners for every tier. CPU backends get one crop worker per rayon thread; a GPU
    /// runs crops one after another on one worker.
    pub fn new(bundle: &Bundle, backend: Backend) -> Result<Self, DetectError> {
        Self::with_body_side(bundle, backend, None)
    }

    /// As [`Self::new`], with the body tier on a letterboxed frame whose long side is
    /// `body_side` pixels (a multiple of the stem's stride) instead of the bundle's
    /// `detector.body_side`.
    pub fn with_body_side(
        bundle: &Bundle,
        backend: Backend,
        body_side: Option<usize>,
    ) -> Result<Self, DetectError> {
        let stem_manifest = bundle
            .manifest
            .stem
            .as_ref()
            .ok_or_else(|| DetectError::Bundle("no stem".into()))?;
        let side = stem_manifest.input.w;
        let stem_input = stem_manifest.input;
        let stem_net = bundle.stem.as_ref().expect("manifest and nets agree");
        let grid = stem_net.out_shape(stem_manifest.input)?;
        if grid.h == 0 || grid.w == 0 || side % grid.w != 0 {
            return Err(DetectError::Bundle(format!(
                "stem output grid {}x{} does not divide its input side {side}",
                grid.h, grid.w
            )));
        }
        let stride = (side / grid.w) as f32;

        // Keypoint agents grouped by keypoint, in manifest order within a keypoint.
        let mut per_keypoint: [Vec<usize>; NUM_KEYPOINTS] = Default::default();
        for (i, a) in bundle.manifest.agents.iter().enumerate() {
            if a.tier != KEYPOINT_TIER {
                continue;
            }
            let k = KEYPOINT_NAMES
                .iter()
                .position(|n| *n == a.keypoint)
                .ok_or_else(|| {
                    DetectError::Bundle(format!(
                        "agent {}: unknown keypoint {}",
                        a.name, a.keypoint
                    ))
                })?;
            per_keypoint[k].push(i);
        }
        let max_level = per_keypoint.iter().map(Vec::len).max().unwrap_or(0);
        if max_level == 0 {
            return Err(DetectError::Bundle("no keypoint agents".into()));
        }
        if bundle.agents.len() > usize::from(u16::MAX) {
            return Err(DetectError::Bundle("more agents than candidate ids".into()));
        }
        let level_agents: Vec<Vec<KeypointAgent>> = (1..=max_level)
            .map(|q| {
                per_keypoint
                    .iter()
                    .enumerate()
                    .flat_map(|(k, ids)| {
                        ids.iter().take(q).map(move |&i| KeypointAgent {
                            bundle_index: i as u16,
                            keypoint: k as u8,
                        })
                    })
                    .collect()
            })
            .collect();
        for (i, a) in bundle.manifest.agents.iter().enumerate() {
            let out_c = bundle.agents[i].layers.last().map_or(0, |l| l.spec.out_c);
            let ok = match a.tier.as_str() {
                BODY_TIER => out_c == BODY_CHANNELS,
                KEYPOINT_TIER => out_c == KEYPOINT_CHANNELS || out_c == KEYPOINT_SUBCELL_CHANNELS,
                _ => continue,
            };
            if !ok {
                return Err(DetectError::Bundle(format!(
                    "agent {} outputs {out_c} channels, which tier {} does not decode",
                    a.name, a.tier
                )));
            }
        }

        // Probe the backend once (Auto may try a GPU), then build every runner on the result.
        let first_stem = Stem::new(stem_net, stem_input, backend)?;
        let status = first_stem.runner.status().to_string();
        let (backend, n_workers) = match first_stem.runner.active() {
            ActiveBackend::Gpu => (Backend::Gpu, 1),
            ActiveBackend::CpuScalar => (Backend::CpuScalar, rayon::current_num_threads().max(1)),
            ActiveBackend::CpuSimd => (Backend::Cpu, rayon::current_num_threads().max(1)),
        };
        let make_worker = |stem: Stem| -> Result<CropWorker, DetectError> {
            let levels = level_agents
                .iter()
                .map(|agents| {
                    let nets = agents
                        .iter()
                        .map(|a| bundle.agents[usize::from(a.bundle_index)].clone())
                        .collect();
                    SwarmRunner::new(&Swarm::new(nets)?, grid, backend)
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out_len = levels.last().map_or(0, SwarmRunner::output_len);
            let max_map = levels.last().map_or(0, |r| {
                r.offsets()
                    .windows(2)
                    .map(|o| o[1] - o[0])
                    .max()
                    .unwrap_or(0)
            });
            let n_agents = level_agents.last().map_or(0, Vec::len);
            Ok(CropWorker {
                stem,
                levels,
                plain: AgentMaps::new(out_len, n_agents),
                mirrored: AgentMaps::new(out_len, n_agents),
                merged: vec![0.0; max_map],
                candidates: Vec::with_capacity(MAX_PERSONS * NUM_KEYPOINTS * max_level),
                results: Vec::with_capacity(MAX_PERSONS),
            })
        };
        let mut workers = vec![make_worker(first_stem)?];
        for _ in 1..n_workers {
            workers.push(make_worker(Stem::new(stem_net, stem_input, backend)?)?);
        }

        let body = match bundle.swarm(BODY_TIER) {
            Ok(swarm) => {
                let agents = swarm.len();
                let body_net = bundle
                    .body_stem()
                    .ok_or_else(|| DetectError::Bundle("unusable body neck".into()))?;
                // The body stem's own stride: its neck may branch off before the stem's end.
                let body_stride: usize = body_net.layers.iter().map(|l| l.spec.stride).product();
                let (body_side, from_setting) = match body_side {
                    Some(s) => (s, true),
                    None => (
                        bundle
                            .manifest
                            .detector
                            .as_ref()
                            .and_then(|d| d.body_side)
                            .unwrap_or(side),
                        false,
                    ),
                };
                if body_side == 0 || !body_side.is_multiple_of(body_stride) {
                    let why = format!(
                        "body side {body_side} is not a positive multiple of the body stem's stride {body_stride}"
                    );
                    // A property the user set, or the bundle's own choice.
                    return Err(if from_setting {
                        DetectError::Config(why)
                    } else {
                        DetectError::Bundle(why)
                    });
                }
                let mut stage = BodyStage {
                    net: body_net,
                    swarm,
                    backend,
                    side: body_side,
                    stride: body_stride,
                    shared_side: bundle.body_neck.is_none().then_some(side),
                    agents,
                    inputs: Vec::with_capacity(BODY_SHAPES),
                    proposals: Vec::new(),
                };
                // The square input now, so that a bad bundle fails at start-up.
                let square = stage.build((body_side, body_side))?;
                stage.proposals = Vec::with_capacity(square.grid.h * square.grid.w);
                stage.inputs.push(square);
                Some(stage)
            }
            Err(_) => None,
        };
        let crop_margin = bundle
            .manifest
            .detector
            .as_ref()
            .map_or(DEFAULT_CROP_MARGIN, |d| d.crop_margin);
        Ok(Detector {
            side,
            grid,
            stride,
            crop_margin,
            body,
            workers,
            level_mirrors: level_agents.iter().map(|l| mirror_agents(l)).collect(),
            level_agents,
            boxes: Vec::with_capacity(MAX_PERSONS),
            follower: Follower::new(),
            body_ran: false,
            status,
        })
    }

    /// Every keypoint agent as (bundle index, keypoint), the roster fault injection draws from.
    pub fn keypoint_roster(&self) -> Vec<(u16, u8)> {
        self.level_agents
            .last()
            .map(|level| level.iter().map(|a| (a.bundle_index, a.keypoint)).collect())
            .unwrap_or_default()
    }

    /// Makes the keypoint agents with these bundle indices panic inside the engine on every
    /// crop (fault injection; an empty list heals them). They are isolated, reported as failed
    /// candidates and run afresh from their weights on the next crop. Returns false where the
    /// backend cannot inject panics (GPU).
    pub fn set_sabotaged(&mut self, bundle_indices: &[u16]) -> bool {
        let mut all = true;
        for worker in &mut self.workers {
            for (level, runner) in worker.levels.iter_mut().enumerate() {
                let positions: Vec<usize> = self.level_agents[level]
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| bundle_indices.contains(&a.bundle_index))
                    .map(|(j, _)| j)
                    .collect();
                all &= runner.set_sabotaged(&positions);
            }
        }
        all
    }

    /// Backend description of the runners (see [`SwarmRunner::status`]).
    pub fn status(&self) -> &str {
        &self.status
    }

    pub fn max_agents_per_keypoint(&self) -> usize {
        self.level_agents.len()
    }

    /// Keypoint agents that run per person at a given `agents_per_keypoint`.
    pub fn active_keypoint_agents(&self, agents_per_keypoint: usize) -> usize {
        self.level_agents[self.level(agents_per_keypoint)].len()
    }

    /// Body agents run on each detected frame (0 without a body tier).
    pub fn body_agents(&self) -> usize {
        self.body.as_ref().map_or(0, |b| b.agents)
    }

    pub fn has_body_tier(&self) -> bool {
        self.body.is_some()
    }

    /// Whether the last [`Self::detect`] ran the body agents (not with upstream boxes, nor on
    /// a frame that followed the persons of an earlier one).
    pub fn body_ran(&self) -> bool {
        self.body_ran
    }

    /// Forgets the persons followed between body passes (after a seek or a flush).
    pub fn reset_following(&mut self) {
        self.follower.reset();
    }

    fn level(&self, agents_per_keypoint: usize) -> usize {
        agents_per_keypoint.clamp(1, self.level_agents.len()) - 1
    }

    /// Detects persons (or takes `upstream` boxes with their scores) and fills `frame.persons`
    /// (box, score, provisional keypoints) and `frame.candidates` (every keypoint agent's
    /// proposal), in the frame's pixel coordinates.
    pub fn detect(
        &mut self,
        img: &RgbView,
        upstream: Option<&[(BBox, f32)]>,
        config: &DetectConfig,
        frame: &mut PoseFrame,
    ) -> Result<(), DetectError> {
        if !img.is_consistent() {
            return Err(DetectError::BadFrame(format!(
                "{}x{} image, stride {}, {} bytes",
                img.width,
                img.height,
                img.stride,
                img.data.len()
            )));
        }
        let max_persons = config.max_persons.clamp(1, MAX_PERSONS);
        let started = Instant::now();
        self.boxes.clear();
        // Without a body tier the whole frame is the box: nothing to save by following it.
        let follow = upstream.is_none()
            && self.body.is_some()
            && self.follower.can_follow(config.body_interval);
        match upstream {
            Some(boxes) => self.boxes.extend(boxes.iter().copied().take(max_persons)),
            None if follow => self.follower.boxes(max_persons, &mut self.boxes),
            None => self.detect_bodies(img, config.min_person_score, max_persons)?,
        }
        self.body_ran = upstream.is_none() && !follow && self.body.is_some();
        frame
            .timings
            .set(Stage::Body, started.elapsed().as_nanos() as u64);

        let started = Instant::now();
        frame.persons.clear();
        frame.candidates.clear();
        frame
            .persons
            .extend(self.boxes.iter().map(|&(bbox, score)| Person {
                bbox,
                score,
                ..Person::default()
            }));
        self.run_keypoints(img, config)?;
        for w in &mut self.workers {
            frame.candidates.extend_from_slice(&w.candidates);
            for r in &w.results {
                frame.persons[r.person].keypoints = r.keypoints;
            }
        }
        if config.body_interval <= 1 || upstream.is_some() {
            self.follower.reset();
        } else if follow {
            self.follower
                .update(&frame.persons, img.width as f32, img.height as f32);
        } else {
            self.follower.anchor(&frame.persons);
        }
        frame
            .timings
            .set(Stage::Keypoint, started.elapsed().as_nanos() as u64);
        Ok(())
    }

    /// Body tier on the letterboxed frame; fills `self.boxes`. Without a body tier the whole
    /// frame is one person box.
    fn detect_bodies(
        &mut self,
        img: &RgbView,
        min_score: f32,
        max_persons: usize,
    ) -> Result<(), DetectError> {
        let Some(body) = self.body.as_mut() else {
            self.boxes.push((
                BBox::new(0.0, 0.0, img.width as f32, img.height as f32),
                1.0,
            ));
            return Ok(());
        };
        let shape = sample::letterbox_shape(img.width, img.height, body.side, body.stride);
        let win = Window::fit(img.width, img.height, shape.0, shape.1);
        let (agents, stride) = (body.agents, body.stride as f32);
        body.select(shape)?;
        let (input, proposals) = (&mut body.inputs[0], &mut body.proposals);
        let stem = match input.stem.as_mut() {
            Some(own) => own,
            None => &mut self.workers[0].stem,
        };
        stem.runner.set_parallel(true);
        stem.run(img, win, false)?;
        input.runner.run(&stem.out_q, &mut input.out)?;
        decode::average_maps(&input.out, agents, &mut input.mean);
        // At most one proposal per cell (no allocation once the largest grid was seen).
        proposals.clear();
        proposals.reserve(input.grid.h * input.grid.w);
        decode::decode_bodies(
            &input.mean,
            input.grid.h,
            input.grid.w,
            stride,
            min_score,
            NMS_IOU,
            max_persons,
            proposals,
        );
        let (w, h) = (img.width as f32, img.height as f32);
        for p in proposals.iter() {
            let (x0, y0) = win.to_image(p.cx - p.w / 2.0, p.cy - p.h / 2.0);
            let (x1, y1) = win.to_image(p.cx + p.w / 2.0, p.cy + p.h / 2.0);
            let (x0, y0, x1, y1) = (
                x0.clamp(0.0, w),
                y0.clamp(0.0, h),
                x1.clamp(0.0, w),
                y1.clamp(0.0, h),
            );
            if x1 - x0 >= 2.0 && y1 - y0 >= 2.0 {
                self.boxes
                    .push((BBox::new(x0, y0, x1 - x0, y1 - y0), p.score));
            }
        }
        Ok(())
    }

    /// Keypoint tier over every person crop, persons spread over the workers. With the
    /// test-time flip and two or more workers, the workers go in pairs: one runs the plain
    /// crop while the other runs the mirrored one (two whole stem passes side by side scale
    /// better than one pass split layer by layer).
    fn run_keypoints(&mut self, img: &RgbView, config: &DetectConfig) -> Result<(), DetectError> {
        let (boxes, margin) = (&self.boxes, self.crop_margin);
        for w in &mut self.workers {
            w.candidates.clear();
            w.results.clear();
        }
        // Workers per team: a team takes every n-th person and runs all of its crops.
        let team = if config.flip && self.workers.len() >= 2 {
            2
        } else {
            1
        };
        let teams = self.workers.len() / team;
        let level = self.level(config.agents_per_keypoint);
        let crop = CropParams {
            // A team's two crops are equal work, so each keeps to its own thread while every
            // team is busy. With fewer persons than teams (many threads), and for single-worker
            // teams whose persons divide unevenly (3 persons on 2 threads), crops split their
            // layers and rayon lends idle threads to the busy ones.
            spread: team == 1 || boxes.len() < teams,
            level,
            agents: &self.level_agents[level],
            mirrors: config.flip.then_some(&self.level_mirrors[level][..]),
            grid: self.grid,
            stride: self.stride,
            side: self.side,
        };
        let work = |(t, workers): (usize, &mut [CropWorker])| -> Result<(), DetectError> {
            let (first, rest) = workers.split_first_mut().expect("a team has a worker");
            for (p, &(bbox, _)) in boxes.iter().enumerate().skip(t).step_by(teams) {
                let win = square_crop(&bbox, margin, crop.side);
                let keypoints = match (crop.mirrors.is_some(), rest.first_mut()) {
                    (false, _) => {
                        first.infer(img, win, &crop, false)?;
                        first.decode(win, p, &crop, None)
                    }
                    (true, Some(partner)) => {
                        let (a, b) = rayon::join(
                            || first.infer(img, win, &crop, false),
                            || partner.infer(img, win, &crop, true),
                        );
                        a?;
                        b?;
                        first.decode(win, p, &crop, Some(&partner.mirrored))
                    }
                    (true, None) => {
                        first.infer(img, win, &crop, false)?;
                        first.infer(img, win, &crop, true)?;
                        // Taken out and put back: moves, no allocation.
                        let mirrored = std::mem::take(&mut first.mirrored);
                        let keypoints = first.decode(win, p, &crop, Some(&mirrored));
                        first.mirrored = mirrored;
                        keypoints
                    }
                };
                first.results.push(PersonKeypoints {
                    person: p,
                    keypoints,
                });
            }
            Ok(())
        };
        if teams == 1 || boxes.len() <= 1 {
            work((0, &mut self.workers[..team]))
        } else {
            use rayon::prelude::*;
            self.workers
                .par_chunks_exact_mut(team)
                .enumerate()
                .try_for_each(work)
        }
    }
}

/// What every crop of one frame shares: the quality level and the stem's geometry.
struct CropParams<'a> {
    /// Whether one crop's stem and agents may split their layers over the rayon threads.
    spread: bool,
    level: usize,
    agents: &'a [KeypointAgent],
    /// Mirror agent of each agent when the crop also runs mirrored (test-time flip).
    mirrors: Option<&'a [Option<usize>]>,
    grid: MapShape,
    stride: f32,
    side: usize,
}

/// For each agent of a swarm, the index of the agent of the mirrored keypoint with the same
/// rank among its keypoint's agents, if the swarm has one.
fn mirror_agents(agents: &[KeypointAgent]) -> Vec<Option<usize>> {
    let rank = |j: usize| {
        agents[..j]
            .iter()
            .filter(|a| a.keypoint == agents[j].keypoint)
            .count()
    };
    (0..agents.len())
        .map(|j| {
            let (want, r) = (MIRRORED_KEYPOINT[usize::from(agents[j].keypoint)], rank(j));
            (0..agents.len()).find(|&i| agents[i].keypoint == want && rank(i) == r)
        })
        .collect()
}

/// The square window the keypoint tier sees for a person box (the training crops' rule:
/// the longer side plus `margin`, centred on the box).
fn square_crop(bbox: &BBox, margin: f32, side: usize) -> Window {
    Window::square(
        bbox.x + bbox.w / 2.0,
        bbox.y + bbox.h / 2.0,
        bbox.w.max(bbox.h) * (1.0 + margin),
        side,
    )
}

impl CropWorker {
    /// Runs the stem and the level's keypoint agents on one window of `img`, mirrored left to
    /// right if `mirror`; the maps land in `self.mirrored` if so, else in `self.plain`.
    fn infer(
        &mut self,
        img: &RgbView,
        win: Window,
        crop: &CropParams,
        mirror: bool,
    ) -> Result<(), DetectError> {
        self.stem.runner.set_parallel(crop.spread);
        self.stem.run(img, win, mirror)?;
        let runner = &mut self.levels[crop.level];
        runner.set_parallel(crop.spread);
        let maps = if mirror {
            &mut self.mirrored
        } else {
            &mut self.plain
        };
        let len = runner.output_len();
        runner.run(&self.stem.out_q, &mut maps.out[..len])?;
        let agents = runner.offsets().len() - 1;
        for (j, f) in maps.failed[..agents].iter_mut().enumerate() {
            *f = runner.agent_failed(j);
        }
        Ok(())
    }

    /// Decodes the plain maps of the last [`Self::infer`] (each merged with its mirror agent's
    /// map in `mirrored`, if given); pushes every agent's candidate for person `person` and
    /// returns the provisional pose (confidence-weighted mean per keypoint, as trained;
    /// consensus refines it).
    fn decode(
        &mut self,
        win: Window,
        person: usize,
        crop: &CropParams,
        mirrored: Option<&AgentMaps>,
    ) -> [Keypoint; NUM_KEYPOINTS] {
        let (out, offsets) = (&self.plain.out, self.levels[crop.level].offsets());
        let cells = crop.grid.w * crop.grid.h;
        let mut sums = [(0.0f32, 0.0f32, 0.0f32, 0u32); NUM_KEYPOINTS];
        for (j, agent) in crop.agents.iter().enumerate() {
            let mirror = crop.mirrors.and_then(|m| m[j]).zip(mirrored);
            if self.plain.failed[j] {
                // The agent panicked and was isolated (see engine::cpu): report the failure
                // as consensus knows it, a NaN candidate.
                self.candidates.push(Candidate {
                    agent: agent.bundle_index,
                    tier: Tier::Keypoint,
                    keypoint: agent.keypoint,
                    person: person as u16,
                    x: f32::NAN,
                    y: f32::NAN,
                    confidence: f32::NAN,
                });
                continue;
            }
            let mut map = &out[offsets[j]..offsets[j + 1]];
            let channels = map.len() / cells;
            // A mirror agent that failed leaves this agent its plain map: the failure is
            // the mirror agent's own (reported by its own plain run), not this agent's.
            if let Some((i, m)) = mirror
                && !m.failed[i]
                && channels == KEYPOINT_CHANNELS
                && offsets[i + 1] - offsets[i] == map.len()
            {
                let merged = &mut self.merged[..map.len()];
                let mirrored = &m.out[offsets[i]..offsets[i + 1]];
                decode::merge_mirrored_map(
                    map,
                    mirrored,
                    crop.grid.w,
                    channels,
                    crop.stride,
                    merged,
                );
                map = merged;
            }
            let (u, v, confidence) =
                decode::decode_keypoint_any(map, channels, crop.grid.w, crop.stride);
            let (x, y) = win.to_image(u, v);
            self.candidates.push(Candidate {
                agent: agent.bundle_index,
                tier: Tier::Keypoint,
                keypoint: agent.keypoint,
                person: person as u16,
                x,
                y,
                confidence,
            });
            let s = &mut sums[usize::from(agent.keypoint)];
            *s = (
                s.0 + x * confidence,
                s.1 + y * confidence,
                s.2 + confidence,
                s.3 + 1,
            );
        }
        std::array::from_fn(|k| {
            let (sx, sy, sc, n) = sums[k];
            if n == 0 || sc <= 0.0 {
                return Keypoint::default();
            }
            let score = sc / n as f32;
            Keypoint {
                x: sx / sc,
                y: sy / sc,
                score,
                visibility: if score >= PROVISIONAL_VISIBLE {
                    Visibility::Visible
                } else {
                    Visibility::Hidden
                },
            }
        })
    }
}
