//! The pose data model shared by every stage: plain Rust, no GStreamer types.
//!
//! Coordinates are pixels of the frame the data describes (`PoseFrame::width` x
//! `PoseFrame::height`). The layout maps 1:1 onto upstream GStreamer analytics'
//! "pose-17-kp" keypoint groups (GStreamer 1.30): one group per person, 17 keypoints with
//! position, confidence and visibility, skeleton links (`SKELETON`) as relations.

/// Number of COCO keypoints per person.
pub const NUM_KEYPOINTS: usize = 17;

/// COCO keypoint names, in COCO order.
pub const KEYPOINT_NAMES: [&str; NUM_KEYPOINTS] = [
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
];

/// The keypoint each keypoint becomes in a mirror image (left and right swap).
pub const MIRRORED_KEYPOINT: [u8; NUM_KEYPOINTS] =
    [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15];

/// The 19 COCO skeleton links (0-based keypoint indices), as in the COCO annotation file.
pub const SKELETON: [(u8, u8); 19] = [
    (15, 13),
    (13, 11),
    (16, 14),
    (14, 12),
    (11, 12),
    (5, 11),
    (6, 12),
    (5, 6),
    (5, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (1, 2),
    (0, 1),
    (0, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
];

/// Keypoint visibility, with COCO's `v` values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Visibility {
    /// Not found (COCO v = 0): the position carries no information.
    #[default]
    Absent = 0,
    /// Placed but occluded (COCO v = 1).
    Hidden = 1,
    /// Seen (COCO v = 2).
    Visible = 2,
}

impl Visibility {
    /// COCO's `v` value.
    pub fn coco(self) -> u8 {
        self as u8
    }

    /// From COCO's `v`; values above 2 are treated as visible.
    pub fn from_coco(v: u8) -> Self {
        match v {
            0 => Visibility::Absent,
            1 => Visibility::Hidden,
            _ => Visibility::Visible,
        }
    }
}

/// One keypoint: position in pixels, confidence in 0..1 and visibility.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Keypoint {
    pub x: f32,
    pub y: f32,
    pub score: f32,
    pub visibility: Visibility,
}

/// An axis-aligned box in pixels: top-left corner, width and height.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl BBox {
    pub fn new(x: f32, y: f32, w: f32, h: f32) -> Self {
        BBox { x, y, w, h }
    }

    /// Intersection over union with another box; 0 when either is empty.
    pub fn iou(&self, other: &BBox) -> f32 {
        let ix = (self.x + self.w).min(other.x + other.w) - self.x.max(other.x);
        let iy = (self.y + self.h).min(other.y + other.h) - self.y.max(other.y);
        if ix <= 0.0 || iy <= 0.0 {
            return 0.0;
        }
        let inter = ix * iy;
        let union = self.w * self.h + other.w * other.h - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }
}

/// One person: box, score, the 17 COCO keypoints and, once tracked, a stable id.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Person {
    /// Stable id from the tracker; `None` before tracking.
    pub track_id: Option<u64>,
    pub bbox: BBox,
    pub score: f32,
    pub keypoints: [Keypoint; NUM_KEYPOINTS],
    /// True when the pose was predicted by the tracker for a frame detection skipped.
    pub predicted: bool,
}

/// The tier of the agent hierarchy that produced a candidate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Tier {
    /// Person/body agents: propose person boxes.
    #[default]
    Body = 0,
    /// Region agents (upper/lower body): refine boxes and regions.
    Region = 1,
    /// Per-keypoint agents: propose keypoint positions.
    Keypoint = 2,
    /// Validator agents: skeleton-constraint checks.
    Validator = 3,
}

/// One agent's proposal for one keypoint of one person, before consensus.
///
/// Kept small and `Copy` (20 bytes): a frame carries hundreds of them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Candidate {
    pub agent: u16,
    pub tier: Tier,
    /// Keypoint index (0..17) for keypoint agents; unused by body agents.
    pub keypoint: u8,
    /// Index into `PoseFrame::persons`.
    pub person: u16,
    pub x: f32,
    pub y: f32,
    pub confidence: f32,
}

/// One keypoint agent's standing with swarmconsensus (reputation, Byzantine flag, failures).
///
/// swarmdetect lists every keypoint agent it ran for the frame (the roster: reputation 1,
/// nothing flagged) so an agent that stays silent can be told from one that did not run;
/// swarmconsensus replaces the list by the agents' current health.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AgentHealth {
    /// Index of the agent in the bundle (as in [`Candidate::agent`]).
    pub agent: u16,
    /// The keypoint the agent proposes (0..17).
    pub keypoint: u8,
    /// 0..1, exponentially smoothed agreement with the consensus.
    pub reputation: f32,
    /// Flagged Byzantine: its candidates have weight 0 until it agrees again.
    pub quarantined: bool,
    /// Frames in which the agent failed (non-finite or missing candidates), cumulative.
    pub failed: u32,
}

impl Default for AgentHealth {
    fn default() -> Self {
        AgentHealth {
            agent: 0,
            keypoint: 0,
            reputation: 1.0,
            quarantined: false,
            failed: 0,
        }
    }
}

/// Pipeline stages whose processing time is recorded per frame, for monitoring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Stage {
    Features = 0,
    Body = 1,
    Region = 2,
    Keypoint = 3,
    Consensus = 4,
    Track = 5,
    Overlay = 6,
}

impl Stage {
    pub const COUNT: usize = 7;
    pub const ALL: [Stage; Stage::COUNT] = [
        Stage::Features,
        Stage::Body,
        Stage::Region,
        Stage::Keypoint,
        Stage::Consensus,
        Stage::Track,
        Stage::Overlay,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Features => "features",
            Stage::Body => "body",
            Stage::Region => "region",
            Stage::Keypoint => "keypoint",
            Stage::Consensus => "consensus",
            Stage::Track => "track",
            Stage::Overlay => "overlay",
        }
    }
}

/// Per-stage processing time of one frame, in nanoseconds (0 = stage did not run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StageTimings([u64; Stage::COUNT]);

impl StageTimings {
    pub fn get(&self, stage: Stage) -> u64 {
        self.0[stage as usize]
    }

    pub fn set(&mut self, stage: Stage, nanos: u64) {
        self.0[stage as usize] = nanos;
    }
}

/// Everything swarmpose knows about one video frame.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoseFrame {
    /// Frame counter of the stream (set by the first swarmpose stage).
    pub frame: u64,
    /// Size in pixels of the frame all coordinates refer to.
    pub width: u32,
    pub height: u32,
    pub persons: Vec<Person>,
    /// Every agent's proposals, for consensus; empty after consensus if not kept.
    pub candidates: Vec<Candidate>,
    pub timings: StageTimings,
    /// Keypoint agents' health: the roster of agents run (swarmdetect), then reputations and
    /// flags (swarmconsensus). Empty when unknown.
    pub agents: Vec<AgentHealth>,
}

impl PoseFrame {
    pub fn new(frame: u64, width: u32, height: u32) -> Self {
        PoseFrame {
            frame,
            width,
            height,
            ..Default::default()
        }
    }

    /// Rescales every coordinate to a frame of `width` x `height` (what a video scaler does
    /// to the pixels). A zero-sized source or target leaves the coordinates as they are.
    /// Sets `agents` to the roster of keypoint agents that proposed candidates (one entry
    /// per agent, reputation 1, nothing flagged), sorted by agent id.
    pub fn set_roster_from_candidates(&mut self) {
        self.agents.clear();
        for c in &self.candidates {
            if c.tier == Tier::Keypoint && !self.agents.iter().any(|a| a.agent == c.agent) {
                self.agents.push(AgentHealth {
                    agent: c.agent,
                    keypoint: c.keypoint,
                    ..Default::default()
                });
            }
        }
        self.agents.sort_unstable_by_key(|a| a.agent);
    }

    pub fn rescale_to(&mut self, width: u32, height: u32) {
        if self.width == 0 || self.height == 0 || width == 0 || height == 0 {
            self.width = width;
            self.height = height;
            return;
        }
        let sx = width as f32 / self.width as f32;
        let sy = height as f32 / self.height as f32;
        for p in &mut self.persons {
            p.bbox = BBox::new(p.bbox.x * sx, p.bbox.y * sy, p.bbox.w * sx, p.bbox.h * sy);
            for k in &mut p.keypoints {
                k.x *= sx;
                k.y *= sy;
            }
        }
        for c in &mut self.candidates {
            c.x *= sx;
            c.y *= sy;
        }
        self.width = width;
        self.height = height;
    }
}
