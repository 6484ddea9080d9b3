//! Fault injection for tests and demos (plain Rust): makes a chosen fraction of the keypoint
//! agents misbehave, applied to a frame's candidates after detection.
//!
//! The faulty agents are chosen deterministically from the seed among the keypoint agents of
//! the frame's roster ([`PoseFrame::agents`], set from the candidates before injecting), so
//! the same agents are faulty on every frame (at a fixed quality level). Kinds:
//!
//! - `crash`: the agent's candidates become NaN (position and confidence);
//! - `silent`: the agent's candidates are removed (it stays on the roster: it was run);
//! - `noise`: a uniform random position inside the person box, random confidence, fresh
//!   every frame;
//! - `collude`: every faulty agent of a keypoint reports the same wrong position, a fixed
//!   point of the person box chosen per keypoint from the seed (inside the central 80 % of
//!   the box), with confidence 0.95;
//! - `panic`: the agent really panics inside the CPU engine on every crop; the engine isolates
//!   it (`catch_unwind`), the detector reports a NaN candidate, and the next crop runs it
//!   afresh from its weights (`swarmdetect` sets this up; not on the GPU backend).
//!
//! [`Spread::Random`] picks the faulty agents uniformly among all keypoint agents (so a
//! keypoint can get a faulty majority: 4 or more of the shipped bundle's 6 agents);
//! [`Spread::Balanced`] deals them out one per keypoint before giving any keypoint a second.

use crate::pose::{BBox, NUM_KEYPOINTS, PoseFrame, Tier};

/// How faulty agents misbehave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FaultKind {
    #[default]
    None,
    Crash,
    Silent,
    Noise,
    Collude,
    /// The agent panics inside the CPU engine (set up by the detector,
    /// `Detector::set_sabotaged`); [`FaultInjector::apply`] leaves the candidates alone: the
    /// detector already reports the isolated agent as a NaN candidate.
    Panic,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::None => "none",
            FaultKind::Crash => "crash",
            FaultKind::Silent => "silent",
            FaultKind::Noise => "noise",
            FaultKind::Collude => "collude",
            FaultKind::Panic => "panic",
        }
    }
}

/// How the faulty agents are spread over the keypoints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Spread {
    /// Uniformly among all keypoint agents.
    #[default]
    Random,
    /// One per keypoint first, then a second per keypoint, ...
    Balanced,
}

/// Confidence colluding agents claim.
pub const COLLUDE_CONFIDENCE: f32 = 0.95;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FaultConfig {
    pub kind: FaultKind,
    /// Share of the keypoint agents that are faulty, 0..1 (rounded to the nearest agent).
    pub fraction: f32,
    pub seed: u64,
    pub spread: Spread,
}

impl FaultConfig {
    pub fn is_active(&self) -> bool {
        self.kind != FaultKind::None && self.fraction > 0.0
    }
}

/// Applies a [`FaultConfig`] to frames; caches the faulty set per roster.
#[derive(Default)]
pub struct FaultInjector {
    config: FaultConfig,
    roster: Vec<(u16, u8)>,
    faulty: Vec<u16>,
}

impl FaultInjector {
    pub fn new(config: FaultConfig) -> Self {
        FaultInjector {
            config,
            ..Default::default()
        }
    }

    pub fn config(&self) -> &FaultConfig {
        &self.config
    }

    pub fn set_config(&mut self, config: FaultConfig) {
        if config != self.config {
            self.config = config;
            self.roster.clear();
            self.faulty.clear();
        }
    }

    /// The faulty agents for the current roster (sorted ids).
    pub fn faulty_agents(&self) -> &[u16] {
        &self.faulty
    }

    /// Chooses the faulty agents among `roster` ((agent, keypoint) pairs).
    pub fn choose(config: &FaultConfig, roster: &[(u16, u8)]) -> Vec<u16> {
        let n = roster.len();
        let count = ((config.fraction.clamp(0.0, 1.0) * n as f32).round() as usize).min(n);
        // Each agent's random rank, from the seed and its id only. The seed is hashed on its own
        // first: seeds that differ in one bit must not just swap neighbouring agents.
        let seed = mix(config.seed ^ 0x5eed_0000_0000_0000);
        let key = |agent: u16| mix(seed ^ u64::from(agent));
        let mut order: Vec<(u64, u64, u16)> = match config.spread {
            Spread::Random => roster.iter().map(|&(a, _)| (0, key(a), a)).collect(),
            Spread::Balanced => {
                // Rank within its keypoint (by random key) first, so keypoints fill evenly.
                let mut per_kp: Vec<Vec<(u64, u16)>> = vec![Vec::new(); NUM_KEYPOINTS + 1];
                for &(a, k) in roster {
                    per_kp[usize::from(k).min(NUM_KEYPOINTS)].push((key(a), a));
                }
                per_kp
                    .iter_mut()
                    .flat_map(|v| {
                        v.sort_unstable();
                        v.iter()
                            .enumerate()
                            .map(|(rank, &(h, a))| (rank as u64, h, a))
                            .collect::<Vec<_>>()
                    })
                    .collect()
            }
        };
        order.sort_unstable();
        let mut faulty: Vec<u16> = order.iter().take(count).map(|o| o.2).collect();
        faulty.sort_unstable();
        faulty
    }

    /// Injects the faults into `frame.candidates`. `frame.agents` must hold the roster (see
    /// [`PoseFrame::set_roster_from_candidates`]); frames without one are left alone.
    pub fn apply(&mut self, frame: &mut PoseFrame) {
        if !self.config.is_active() || frame.agents.is_empty() {
            return;
        }
        let same_roster = self.roster.len() == frame.agents.len()
            && self
                .roster
                .iter()
                .zip(&frame.agents)
                .all(|(r, a)| r.0 == a.agent);
        if !same_roster {
            self.roster = frame.agents.iter().map(|a| (a.agent, a.keypoint)).collect();
            self.faulty = Self::choose(&self.config, &self.roster);
        }
        if self.faulty.is_empty() {
            return;
        }
        let config = self.config;
        let faulty = &self.faulty;
        let persons = &frame.persons;
        let frame_no = frame.frame;
        let is_faulty = |c: &crate::pose::Candidate| {
            c.tier == Tier::Keypoint && faulty.binary_search(&c.agent).is_ok()
        };
        match config.kind {
            FaultKind::None | FaultKind::Panic => {}
            FaultKind::Silent => frame.candidates.retain(|c| !is_faulty(c)),
            FaultKind::Crash => {
                for c in frame.candidates.iter_mut().filter(|c| is_faulty(c)) {
                    c.x = f32::NAN;
                    c.y = f32::NAN;
                    c.confidence = f32::NAN;
                }
            }
            FaultKind::Noise => {
                for c in frame.candidates.iter_mut() {
                    if !is_faulty(c) {
                        continue;
                    }
                    let b = person_box(persons, c.person);
                    let h = mix(mix(config.seed)
                        ^ frame_no.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        ^ (u64::from(c.agent) << 32)
                        ^ (u64::from(c.person) << 16));
                    let (u, v, w) = (unit(h), unit(mix(h)), unit(mix(mix(h))));
                    c.x = b.x + u * b.w;
                    c.y = b.y + v * b.h;
                    c.confidence = w;
                }
            }
            FaultKind::Collude => {
                for c in frame.candidates.iter_mut() {
                    if !is_faulty(c) {
                        continue;
                    }
                    let b = person_box(persons, c.person);
                    let (u, v) = collude_point(config.seed, c.keypoint);
                    c.x = b.x + u * b.w;
                    c.y = b.y + v * b.h;
                    c.confidence = COLLUDE_CONFIDENCE;
                }
            }
        }
    }
}

/// The box-relative point colluding agents of `keypoint` agree on (in 0.1..0.9).
pub fn collude_point(seed: u64, keypoint: u8) -> (f32, f32) {
    let h = mix(mix(seed ^ 0xc011_de00) ^ (u64::from(keypoint) << 40));
    (0.1 + 0.8 * unit(h), 0.1 + 0.8 * unit(mix(h)))
}

fn person_box(persons: &[crate::pose::Person], p: u16) -> BBox {
    persons
        .get(usize::from(p))
        .map_or(BBox::new(0.0, 0.0, 1.0, 1.0), |p| p.bbox)
}

/// splitmix64's finaliser: a well-mixed 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hash as a float in 0..1.
fn unit(h: u64) -> f32 {
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// A reproducible pseudo-random float in 0..1 from any key (for tests and fault injection).
pub fn random_unit(key: u64) -> f32 {
    unit(mix(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::{Candidate, Person};

    fn frame() -> PoseFrame {
        let mut f = PoseFrame::new(3, 640, 480);
        f.persons.push(Person {
            bbox: BBox::new(100.0, 50.0, 100.0, 300.0),
            ..Default::default()
        });
        for k in 0..NUM_KEYPOINTS as u16 {
            for j in 0..3 {
                f.candidates.push(Candidate {
                    agent: 6 + k * 3 + j,
                    tier: Tier::Keypoint,
                    keypoint: k as u8,
                    person: 0,
                    x: 150.0,
                    y: 100.0,
                    confidence: 0.5,
                });
            }
        }
        f.set_roster_from_candidates();
        f
    }

    fn config(kind: FaultKind, fraction: f32, spread: Spread) -> FaultConfig {
        FaultConfig {
            kind,
            fraction,
            seed: 1,
            spread,
        }
    }

    #[test]
    fn the_same_agents_are_chosen_every_time() {
        let f = frame();
        let roster: Vec<_> = f.agents.iter().map(|a| (a.agent, a.keypoint)).collect();
        let c = config(FaultKind::Collude, 0.33, Spread::Random);
        let a = FaultInjector::choose(&c, &roster);
        assert_eq!(a.len(), 17);
        assert_eq!(a, FaultInjector::choose(&c, &roster));
        let other = FaultInjector::choose(&FaultConfig { seed: 2, ..c }, &roster);
        assert_ne!(a, other);
        // Balanced: exactly one per keypoint at a third.
        let b = FaultInjector::choose(&config(FaultKind::Collude, 0.33, Spread::Balanced), &roster);
        let mut per_kp = [0; NUM_KEYPOINTS];
        for id in &b {
            per_kp[usize::from((id - 6) / 3)] += 1;
        }
        assert!(per_kp.iter().all(|&n| n == 1), "{per_kp:?}");
    }

    #[test]
    fn each_kind_does_what_it_says() {
        for kind in [
            FaultKind::Crash,
            FaultKind::Silent,
            FaultKind::Noise,
            FaultKind::Collude,
            FaultKind::Panic,
        ] {
            let mut f = frame();
            let mut inj = FaultInjector::new(config(kind, 0.2, Spread::Random));
            inj.apply(&mut f);
            let faulty = inj.faulty_agents().to_vec();
            assert_eq!(faulty.len(), 10);
            let bad: Vec<_> = f
                .candidates
                .iter()
                .filter(|c| faulty.contains(&c.agent))
                .collect();
            let good = f
                .candidates
                .iter()
                .filter(|c| !faulty.contains(&c.agent))
                .all(|c| c.x == 150.0 && c.confidence == 0.5);
            assert!(good, "{kind:?} touched a healthy agent");
            match kind {
                FaultKind::Silent => assert!(bad.is_empty()),
                FaultKind::Crash => assert!(bad.iter().all(|c| c.x.is_nan())),
                FaultKind::Noise | FaultKind::Collude => {
                    assert_eq!(bad.len(), 10);
                    assert!(bad.iter().all(|c| {
                        (100.0..=200.0).contains(&c.x) && (50.0..=350.0).contains(&c.y)
                    }));
                }
                // The engine makes these agents panic; their candidates pass through here.
                FaultKind::Panic => assert!(bad.iter().all(|c| c.x == 150.0)),
                FaultKind::None => unreachable!(),
            }
            if kind == FaultKind::Collude {
                for c in &bad {
                    let (u, v) = collude_point(1, c.keypoint);
                    assert_eq!((c.x, c.y), (100.0 + u * 100.0, 50.0 + v * 300.0));
                    assert_eq!(c.confidence, COLLUDE_CONFIDENCE);
                }
            }
            assert_eq!(f.agents.len(), 51, "the roster keeps every agent");
        }
    }
}
