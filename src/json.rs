//! The per-frame JSON format (one object per frame, one line per object in JSON-lines files):
//!
//! ```json
//! {"pts_ns":123,"frame":4,"width":640,"height":480,
//!  "persons":[{"id":7,"bbox":[x,y,w,h],"score":0.9,"keypoints":[[x,y,score],...17],
//!              "visibility":[2,2,1,...17],"predicted":false}]}
//! ```
//!
//! `id` is null before tracking, `pts_ns` null for buffers without a timestamp.
//! `visibility` (COCO's v: 0 absent, 1 hidden, 2 visible) and `predicted` are optional on
//! input. Floats are written with the shortest representation that reads back to the same
//! `f32`, so a round trip is lossless. Candidates and timings are not part of this format.
//!
//! When swarmconsensus has judged the keypoint agents, the object also has an optional
//! `"agents"` list (`[{"agent":6,"keypoint":0,"reputation":0.97,"quarantined":false,
//! "failed":0},...]`); it is left out when empty and optional on input, so older readers and
//! files keep working.

use crate::pose::{AgentHealth, BBox, Keypoint, NUM_KEYPOINTS, Person, PoseFrame, Visibility};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct FrameJson {
    pts_ns: Option<u64>,
    frame: u64,
    width: u32,
    height: u32,
    persons: Vec<PersonJson>,
    #[serde(default)]
    agents: Vec<AgentJson>,
}

#[derive(Serialize, Deserialize)]
struct AgentJson {
    agent: u16,
    keypoint: u8,
    reputation: f32,
    quarantined: bool,
    failed: u32,
}

impl From<&AgentHealth> for AgentJson {
    fn from(a: &AgentHealth) -> Self {
        AgentJson {
            agent: a.agent,
            keypoint: a.keypoint,
            reputation: a.reputation,
            quarantined: a.quarantined,
            failed: a.failed,
        }
    }
}

impl From<&AgentJson> for AgentHealth {
    fn from(a: &AgentJson) -> Self {
        AgentHealth {
            agent: a.agent,
            keypoint: a.keypoint,
            reputation: a.reputation,
            quarantined: a.quarantined,
            failed: a.failed,
        }
    }
}

struct AgentsOut<'a>(&'a [AgentHealth]);

impl Serialize for AgentsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(AgentJson::from))
    }
}

#[derive(Serialize, Deserialize)]
struct PersonJson {
    id: Option<u64>,
    bbox: [f32; 4],
    score: f32,
    keypoints: [[f32; 3]; NUM_KEYPOINTS],
    #[serde(default = "all_visible")]
    visibility: [u8; NUM_KEYPOINTS],
    #[serde(default)]
    predicted: bool,
}

fn all_visible() -> [u8; NUM_KEYPOINTS] {
    [Visibility::Visible.coco(); NUM_KEYPOINTS]
}

impl From<&Person> for PersonJson {
    fn from(p: &Person) -> Self {
        PersonJson {
            id: p.track_id,
            bbox: [p.bbox.x, p.bbox.y, p.bbox.w, p.bbox.h],
            score: p.score,
            keypoints: p.keypoints.map(|k| [k.x, k.y, k.score]),
            visibility: p.keypoints.map(|k| k.visibility.coco()),
            predicted: p.predicted,
        }
    }
}

impl From<&PersonJson> for Person {
    fn from(p: &PersonJson) -> Self {
        let keypoints = std::array::from_fn(|i| {
            let [x, y, score] = p.keypoints[i];
            Keypoint {
                x,
                y,
                score,
                visibility: Visibility::from_coco(p.visibility[i]),
            }
        });
        Person {
            track_id: p.id,
            bbox: BBox::new(p.bbox[0], p.bbox[1], p.bbox[2], p.bbox[3]),
            score: p.score,
            keypoints,
            predicted: p.predicted,
        }
    }
}

/// Serialises a frame's persons as one JSON object (no trailing newline).
pub fn frame_to_json(frame: &PoseFrame, pts_ns: Option<u64>) -> String {
    serde_json::to_string(&frame_json(frame, pts_ns)).expect("plain data always serialises")
}

/// Writes a frame's persons as one JSON line (with its newline) to `w`.
pub fn write_frame_json(
    w: &mut impl std::io::Write,
    frame: &PoseFrame,
    pts_ns: Option<u64>,
) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, &frame_json(frame, pts_ns))?;
    w.write_all(b"\n")
}

fn frame_json(frame: &PoseFrame, pts_ns: Option<u64>) -> FrameJsonOut<'_> {
    FrameJsonOut {
        pts_ns,
        frame: frame.frame,
        width: frame.width,
        height: frame.height,
        persons: PersonsOut(&frame.persons),
        agents: AgentsOut(&frame.agents),
    }
}

/// The writing side of `FrameJson`: borrows the persons, so writing allocates nothing.
#[derive(Serialize)]
struct FrameJsonOut<'a> {
    pts_ns: Option<u64>,
    frame: u64,
    width: u32,
    height: u32,
    persons: PersonsOut<'a>,
    #[serde(skip_serializing_if = "AgentsOut::is_empty")]
    agents: AgentsOut<'a>,
}

impl AgentsOut<'_> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

struct PersonsOut<'a>(&'a [Person]);

impl Serialize for PersonsOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(PersonJson::from))
    }
}

/// Parses one JSON object written by [`frame_to_json`]; returns the timestamp and the frame.
pub fn frame_from_json(text: &str) -> Result<(Option<u64>, PoseFrame), serde_json::Error> {
    let json: FrameJson = serde_json::from_str(text)?;
    let mut frame = PoseFrame::new(json.frame, json.width, json.height);
    frame.persons = json.persons.iter().map(Person::from).collect();
    frame.agents = json.agents.iter().map(AgentHealth::from).collect();
    Ok((json.pts_ns, frame))
}
