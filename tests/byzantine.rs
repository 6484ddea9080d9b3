//! Byzantine tolerance through the real elements: `swarmdetect` (shipped bundle, CPU, the
//! annotation boxes of real coco_mini photos as upstream boxes) with fault injection, then
//! `swarmconsensus`, in a gst-check Harness. Each photo is one frame; the photos run as one
//! sequence (5 passes over 8 photos = 40 frames), so reputations build up.
//!
//! Tolerances (stated here, asserted below), with two faulty agents of the six per keypoint
//! (`fault-fraction=0.33 fault-spread=balanced`):
//! - over the last pass, at least 75 % of the visible-in-clean keypoints lie within 10 % of the
//!   box's larger side of the clean output, for every fault kind;
//! - half the colluding agents are flagged (quarantined) within 18 frames, all but two of them
//!   within 36 frames (default `reputation-rate` 0.1, about one person per photo; measured:
//!   median 14, 32 of 34 by 21), and the ones left unflagged keep a reputation below 0.5 and
//!   below 0.6 times the honest agents' median (measured: the two left-knee colluders, whose
//!   fixed wrong point lies near the true knee on enough photos that they settle at 0.41, just
//!   above the quarantine line of 0.4, after 40 frames and still after 80 with `PASSES` at 10;
//!   until the neighbour-vote decode of 2026-12-01 all were flagged by 31); at most 2 honest
//!   agents are ever flagged (measured: none);
//! - crashed, silent and panicking agents are counted as failed on every frame (`panic`: the
//!   agents really panic inside the CPU engine, which isolates them and runs them afresh on the
//!   next crop);
//! - with half the agents faulty anywhere (random spread), nothing panics and every frame still
//!   gets 17 finite keypoints per person.
//!
//! Skips with a printed reason without the real data.

mod util;

use gst::prelude::*;
use gst_check::Harness;
use gstswarmpose::detect::faults::{FaultConfig, FaultInjector, FaultKind, Spread};
use gstswarmpose::meta::{PoseMeta, set_pose_frame};
use gstswarmpose::pose::{BBox, NUM_KEYPOINTS, Person, PoseFrame, Visibility};
use serde_json::Value;
use std::path::Path;
use util::{data_dir, init, quiet_injected_panics};

const W: u32 = 640;
const H: u32 = 480;
const PHOTOS: usize = 8;
const PASSES: usize = 5;

/// Up to `PHOTOS` coco_mini photos with at least one well-annotated person, decoded to
/// 640x480 RGB, with their (scaled) annotation boxes.
fn photos(data: &Path) -> Vec<(gst::Buffer, Vec<BBox>)> {
    let ann: Value = serde_json::from_slice(
        &std::fs::read(data.join("coco_mini/annotations/person_keypoints_train2017.json")).unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    for image in ann["images"].as_array().unwrap() {
        if out.len() == PHOTOS {
            break;
        }
        let id = image["id"].as_u64().unwrap();
        let (iw, ih) = (
            image["width"].as_f64().unwrap() as f32,
            image["height"].as_f64().unwrap() as f32,
        );
        let boxes: Vec<BBox> = ann["annotations"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| {
                a["image_id"] == id
                    && a["iscrowd"] == 0
                    && a["num_keypoints"].as_u64().unwrap_or(0) >= 8
            })
            .map(|a| {
                let b: Vec<f32> = a["bbox"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap() as f32)
                    .collect();
                let (sx, sy) = (W as f32 / iw, H as f32 / ih);
                BBox::new(b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy)
            })
            .filter(|b| b.w.max(b.h) >= 60.0)
            .collect();
        if boxes.is_empty() {
            continue;
        }
        let path = data
            .join("coco_mini/train2017")
            .join(image["file_name"].as_str().unwrap());
        out.push((decode(&path), boxes));
    }
    out
}

fn decode(path: &Path) -> gst::Buffer {
    let (pipeline, sink) = util::pipeline_with_appsink(&format!(
        "filesrc location=\"{}\" ! decodebin ! videoconvert ! videoscale ! \
         video/x-raw,format=RGB,width={W},height={H},pixel-aspect-ratio=1/1 ! appsink name=sink",
        path.display()
    ));
    pipeline.set_state(gst::State::Playing).unwrap();
    let sample = sink
        .try_pull_sample(gst::ClockTime::from_seconds(30))
        .expect("photo decodes");
    pipeline.set_state(gst::State::Null).unwrap();
    sample.buffer().unwrap().copy()
}

/// Runs the sequence through `swarmdetect <detect> ! swarmconsensus`; returns every output frame.
fn run(photos: &[(gst::Buffer, Vec<BBox>)], detect: &str) -> Vec<PoseFrame> {
    let mut h = Harness::new_parse(&format!(
        "swarmdetect backend=cpu use-upstream-boxes=true {detect} ! swarmconsensus"
    ));
    h.set_src_caps_str(&format!(
        "video/x-raw,format=RGB,width={W},height={H},framerate=25/1,pixel-aspect-ratio=1/1"
    ));
    let mut frames = Vec::new();
    for n in 0..PHOTOS.min(photos.len()) * PASSES {
        let (buffer, boxes) = &photos[n % photos.len()];
        let mut buffer = buffer.copy();
        {
            let b = buffer.make_mut();
            b.set_pts(gst::ClockTime::from_mseconds(n as u64 * 40));
            let mut f = PoseFrame::new(n as u64, W, H);
            f.persons = boxes
                .iter()
                .map(|&bbox| Person {
                    bbox,
                    score: 1.0,
                    ..Default::default()
                })
                .collect();
            set_pose_frame(b, f);
        }
        let out = h.push_and_pull(buffer).expect("a frame comes out");
        frames.push(out.meta::<PoseMeta>().expect("pose meta").frame().clone());
    }
    frames
}

fn faulty(frames: &[PoseFrame], kind: FaultKind, fraction: f32, spread: Spread) -> Vec<u16> {
    let roster: Vec<(u16, u8)> = frames[0]
        .agents
        .iter()
        .map(|a| (a.agent, a.keypoint))
        .collect();
    let config = FaultConfig {
        kind,
        fraction,
        seed: 1,
        spread,
    };
    FaultInjector::choose(&config, &roster)
}

/// Share of the keypoints visible in `clean` that lie within 10 % of the box side of it,
/// over the last pass.
fn agreement_with_clean(clean: &[PoseFrame], faulty: &[PoseFrame]) -> f32 {
    let last = clean.len() - clean.len() / PASSES;
    let (mut near, mut total) = (0, 0);
    for (c, f) in clean[last..].iter().zip(&faulty[last..]) {
        for (pc, pf) in c.persons.iter().zip(&f.persons) {
            let side = pc.bbox.w.max(pc.bbox.h);
            for (kc, kf) in pc.keypoints.iter().zip(&pf.keypoints) {
                if kc.visibility != Visibility::Visible {
                    continue;
                }
                total += 1;
                if (kc.x - kf.x).hypot(kc.y - kf.y) <= 0.1 * side {
                    near += 1;
                }
            }
        }
    }
    assert!(total > 20, "too few visible keypoints to judge: {total}");
    near as f32 / total as f32
}

#[test]
fn every_fault_kind_stays_near_the_clean_output_and_colluders_are_flagged() {
    init();
    quiet_injected_panics();
    let Some(data) = data_dir("every_fault_kind_stays_near_the_clean_output") else {
        return;
    };
    let photos = photos(&data);
    assert!(photos.len() >= 4, "coco_mini has usable photos");
    let clean = run(&photos, "");
    assert_eq!(
        clean[0].agents.len(),
        102,
        "the shipped bundle's keypoint agents (6 per keypoint)"
    );
    assert!(clean.iter().all(|f| f.agents.iter().all(|a| a.failed == 0)));
    for (kind, name) in [
        (FaultKind::Crash, "crash"),
        (FaultKind::Silent, "silent"),
        (FaultKind::Noise, "noise"),
        (FaultKind::Collude, "collude"),
        (FaultKind::Panic, "panic"),
    ] {
        let frames = run(
            &photos,
            &format!("fault-kind={name} fault-fraction=0.33 fault-spread=balanced"),
        );
        let bad = faulty(&frames, kind, 0.33, Spread::Balanced);
        assert_eq!(bad.len(), 34, "two of the six agents of every keypoint");
        let share = agreement_with_clean(&clean, &frames);
        println!("{name}: {:.1} % of the clean keypoints kept", share * 100.0);
        assert!(
            share >= 0.75,
            "{name}: only {:.1} % near clean",
            share * 100.0
        );
        let last = frames.last().unwrap();
        match kind {
            // Panicking agents are isolated inside the engine and reported like crashes.
            FaultKind::Crash | FaultKind::Silent | FaultKind::Panic => {
                for a in &last.agents {
                    let expected = if bad.contains(&a.agent) {
                        frames.len() as u32
                    } else {
                        0
                    };
                    assert_eq!(a.failed, expected, "{name}: agent {}", a.agent);
                }
            }
            FaultKind::Collude => {
                let mut flagged: Vec<usize> = bad
                    .iter()
                    .map(|id| {
                        frames
                            .iter()
                            .position(|f| f.agents.iter().any(|a| a.agent == *id && a.quarantined))
                            .map_or(usize::MAX, |n| n + 1)
                    })
                    .collect();
                let unflagged: Vec<_> = last
                    .agents
                    .iter()
                    .filter(|a| bad.contains(&a.agent) && !a.quarantined)
                    .map(|a| (a.agent, a.keypoint, a.reputation))
                    .collect();
                println!(
                    "collude: not flagged at the end (agent, keypoint, reputation): {unflagged:?}"
                );
                flagged.sort_unstable();
                let (median, all) = (flagged[flagged.len() / 2], flagged[flagged.len() - 1]);
                println!(
                    "collude: colluders flagged after {flagged:?} frames (median {median}, all by {all})"
                );
                assert!(
                    median <= 18,
                    "half the colluders flagged only after {median} frames"
                );
                // A colluder whose fixed point lies near the true keypoint on enough photos
                // agrees with the honest agents often enough to settle just above the
                // quarantine line (the left-knee pair since the neighbour-vote decode: 0.41
                // after 40 frames, 0.414 after 80); it must still weigh far less than the
                // honest agents.
                let late = flagged.iter().filter(|&&n| n > 36).count();
                assert!(
                    late <= 2,
                    "{late} colluders flagged only after 36 frames (or never): {flagged:?}"
                );
                let mut honest: Vec<f32> = last
                    .agents
                    .iter()
                    .filter(|a| !bad.contains(&a.agent))
                    .map(|a| a.reputation)
                    .collect();
                honest.sort_unstable_by(f32::total_cmp);
                let honest_median = honest[honest.len() / 2];
                println!("collude: honest agents' median reputation {honest_median}");
                for &(agent, keypoint, reputation) in &unflagged {
                    assert!(
                        reputation < 0.5 && reputation < 0.6 * honest_median,
                        "colluder {agent} (keypoint {keypoint}) keeps reputation {reputation} \
                         against the honest median {honest_median}"
                    );
                }
                let honest_flagged: Vec<u16> = frames
                    .iter()
                    .flat_map(|f| f.agents.iter())
                    .filter(|a| a.quarantined && !bad.contains(&a.agent))
                    .map(|a| a.agent)
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                println!("collude: honest agents ever flagged: {honest_flagged:?}");
                assert!(honest_flagged.len() <= 2, "{honest_flagged:?}");
            }
            _ => {}
        }
    }
}

#[test]
fn half_the_agents_faulty_anywhere_never_takes_the_pipeline_down() {
    init();
    let Some(data) = data_dir("half_the_agents_faulty_anywhere") else {
        return;
    };
    let photos = photos(&data);
    for name in ["crash", "silent", "noise", "collude"] {
        let frames = run(
            &photos[..3.min(photos.len())],
            &format!("fault-kind={name} fault-fraction=0.5"),
        );
        for f in &frames {
            assert!(!f.persons.is_empty());
            for p in &f.persons {
                for k in &p.keypoints {
                    assert!(
                        k.visibility == Visibility::Absent || (k.x.is_finite() && k.y.is_finite()),
                        "{name}: {k:?}"
                    );
                }
                let placed = p
                    .keypoints
                    .iter()
                    .filter(|k| k.visibility != Visibility::Absent)
                    .count();
                // Crash/silent at 50 % can take every agent of a keypoint; the rest is fused.
                assert!(placed >= NUM_KEYPOINTS / 2, "{name}: {placed} keypoints");
            }
        }
    }
}

/// A frame whose left shoulder gets two agreeing agents and one liar.
fn liar_buffer(n: u64) -> gst::Buffer {
    let mut f = PoseFrame::new(n, 320, 240);
    f.persons
        .push(util::empty_person(BBox::new(100.0, 40.0, 60.0, 150.0)));
    for (agent, x, y, confidence) in [
        (0u16, 140.0, 70.0, 0.6),
        (1, 141.0, 71.0, 0.6),
        (2, 20.0, 200.0, 0.95),
    ] {
        f.candidates.push(gstswarmpose::pose::Candidate {
            agent,
            tier: gstswarmpose::pose::Tier::Keypoint,
            keypoint: 5,
            person: 0,
            x,
            y,
            confidence,
        });
    }
    let mut buffer = gst::Buffer::with_size(320 * 240 * 4).unwrap();
    set_pose_frame(buffer.get_mut().unwrap(), f);
    buffer
}

fn consensus_harness(props: &str) -> Harness {
    let mut h = Harness::new_parse(&format!("swarmconsensus name=c {props}"));
    h.set_src_caps_str("video/x-raw,format=RGBA,width=320,height=240,framerate=30/1");
    h
}

#[test]
fn reputations_persist_across_runs_through_state_location() {
    init();
    let dir = std::env::temp_dir().join(format!("swarmpose-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("agents.json");
    let _ = std::fs::remove_file(&state);
    let props = format!("state-location=\"{}\"", state.display());
    {
        let mut h = consensus_harness(&props);
        for n in 0..30 {
            h.push_and_pull(liar_buffer(n)).unwrap();
        }
        let consensus = h
            .element()
            .unwrap()
            .downcast::<gst::Bin>()
            .unwrap()
            .by_name("c")
            .unwrap();
        let stats = consensus.property::<gst::Structure>("consensus-stats");
        let quarantined = stats.get::<gst::Array>("quarantined").unwrap();
        assert_eq!(quarantined.as_slice().len(), 1, "{stats}");
        assert_eq!(stats.get::<u64>("frames").unwrap(), 30);
    } // dropped: stop writes the state
    let text = std::fs::read_to_string(&state).expect("state written at stop");
    assert!(text.contains("\"quarantined\": true"), "{text}");
    assert!(
        std::fs::read_dir(&dir).unwrap().count() == 1,
        "no temporary file left behind"
    );
    // A new run starts with the liar already quarantined.
    {
        let mut h = consensus_harness(&props);
        let out = h.push_and_pull(liar_buffer(0)).unwrap();
        let f = out.meta::<PoseMeta>().unwrap().frame().clone();
        let liar = f.agents.iter().find(|a| a.agent == 2).unwrap();
        assert!(liar.quarantined && liar.reputation < 0.4, "{liar:?}");
        assert_eq!(f.persons[0].keypoints[5].visibility, Visibility::Visible);
    }
    // A corrupt file is ignored with a warning (and replaced), never fatal.
    std::fs::write(&state, b"{not json").unwrap();
    {
        let mut h = consensus_harness(&props);
        let out = h.push_and_pull(liar_buffer(0)).unwrap();
        let f = out.meta::<PoseMeta>().unwrap().frame().clone();
        assert!(f.agents.iter().all(|a| !a.quarantined));
    }
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(
        text.starts_with('{') && text.contains("\"version\": 1"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
