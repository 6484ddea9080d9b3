//! Fusing the keypoint agents' candidates into one keypoint per joint, with agent reputations,
//! Byzantine quarantine and skeleton validators (plain Rust).
//!
//! Per frame:
//! 1. **Failures.** A candidate with a non-finite position or confidence is a failure of its
//!    agent; so is an agent on the frame's roster ([`PoseFrame::agents`], set by swarmdetect)
//!    that proposed nothing for some person. Failed agents are counted, their reputation
//!    drops, and the frame is fused from the rest.
//! 2. **Robust fusion** per (person, keypoint). Each candidate weighs
//!    `reputation × calibrated confidence` (its confidence over the agent's own running mean
//!    confidence, at most 2: an agent cannot buy influence by always claiming 0.95);
//!    quarantined agents weigh 0. The candidates cluster around the one with the most weight
//!    within `inlier_radius` (a share of the box's larger side); the keypoint is the weighted
//!    mean of the cluster re-centred once (a trimmed mean: everything outside is dropped). Its
//!    score is the cluster's share of the weight times the members' mean confidence. Below
//!    the `quorum` share (default two thirds) the keypoint is hidden: kept as a low-score
//!    guess, never shown as found.
//! 3. **Validators** ([`crate::validate`]): the keypoint that breaks the most learned
//!    skeleton constraints is vetoed; the candidates outside its cluster are tried instead
//!    (repair); if none fits, the keypoint is hidden with score 0 where it is (no invented
//!    position). Repeated until no keypoint is suspicious.
//!    Identical reports (different agents within 0.01 px) count as one voice: independent
//!    agents never agree to the pixel, copies and colluders do.
//! 4. **Reputation.** Where the outcome is evidence (a strict majority of the votes agreed and
//!    no validator vetoed it, or a repair), every agent's candidate — quarantined ones too, so
//!    they can recover — scores its agreement (1 within the radius, falling to 0 at twice
//!    it), and the reputation moves towards it by `reputation_rate` times the evidence's
//!    strength (exponential smoothing, bounded to 0.01..1): `sqrt(2 share - 1)` for a majority
//!    (2 against 1: 0.58, 3 against 0: 1), 0.5 for a repair, times the candidate's own
//!    calibrated confidence (at most 1): an agent that says it does not see the joint (a
//!    low confidence) abstains, so a confident liar that wins the frames where the honest
//!    agents see nothing (a foot outside the crop) cannot get them quarantined. Below
//!    `quarantine_below` an agent is flagged Byzantine and quarantined; it is released once
//!    back above `release_above`.

use crate::pose::{AgentHealth, Candidate, Keypoint, NUM_KEYPOINTS, PoseFrame, Tier, Visibility};
use crate::validate::SkeletonConstraints;

/// Consensus settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConsensusConfig {
    /// Agreement radius as a fraction of the person box's larger side.
    pub inlier_radius: f32,
    /// Fused keypoints scoring below this are marked hidden (position kept).
    pub min_visible_score: f32,
    /// Share of the active weight that must agree for a keypoint to be shown.
    pub quorum: f32,
    /// Exponential smoothing rate of reputations, per judged candidate.
    pub reputation_rate: f32,
    /// Agents whose reputation falls below this are quarantined.
    pub quarantine_below: f32,
    /// Quarantined agents are released once their reputation is back above this.
    pub release_above: f32,
    /// Run the skeleton validators.
    pub validate: bool,
}

impl Default for ConsensusConfig {
    fn default() -> Self {
        ConsensusConfig {
            inlier_radius: 0.08,
            min_visible_score: 0.2,
            quorum: 2.0 / 3.0,
            reputation_rate: 0.1,
            quarantine_below: 0.4,
            release_above: 0.6,
            validate: true,
        }
    }
}

/// Evidence strength of a validator repair for reputations (a repair leans on neighbours that
/// may be wrong themselves, so it counts like a 3-to-1 majority, not as proof).
const REPAIR_STRENGTH: f32 = 0.5;
/// Reputations below this are raised to it (an agent can always come back).
pub const MIN_REPUTATION: f32 = 0.01;
/// Calibrated confidence is capped at this many times the agent's mean confidence.
const MAX_CONFIDENCE_RATIO: f32 = 2.0;
/// Smoothing rate of each agent's running mean confidence (which starts at its first
/// confidence: the first frame weighs every agent alike).
const CONFIDENCE_RATE: f32 = 0.1;

/// What consensus keeps about one agent.
#[derive(Clone, Copy, Debug, PartialEq)]
struct AgentState {
    known: bool,
    keypoint: u8,
    reputation: f32,
    quarantined: bool,
    failed: u32,
    mean_confidence: f32,
}

impl AgentState {
    /// A confidence over the agent's own running mean (1: as sure as it usually is), uncapped.
    fn calibrated(&self, confidence: f32) -> f32 {
        confidence / self.mean_confidence.max(1e-3)
    }
}

impl Default for AgentState {
    fn default() -> Self {
        AgentState {
            known: false,
            keypoint: 0,
            reputation: 1.0,
            quarantined: false,
            failed: 0,
            mean_confidence: 0.0,
        }
    }
}

/// Running totals since the consensus was created (or reset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsensusStats {
    pub frames: u64,
    /// Keypoints fused.
    pub keypoints: u64,
    /// Keypoints hidden because less than the quorum agreed.
    pub below_quorum: u64,
    /// Keypoints a validator vetoed and no other candidate could repair (hidden, score 0).
    pub vetoed: u64,
    /// Keypoints a validator vetoed and another candidate repaired.
    pub repaired: u64,
    /// Agent failures (agent-frames with non-finite or missing candidates).
    pub failures: u64,
    /// Times an agent was flagged Byzantine and quarantined.
    pub quarantines: u64,
    /// Times a quarantined agent was released.
    pub releases: u64,
}

/// How a keypoint was settled.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum Outcome {
    #[default]
    None,
    /// Consensus of the cluster; `strength` (0..1) is how far it is trusted for reputations.
    Fused {
        strength: f32,
    },
    Repaired,
    Vetoed,
}

/// One usable candidate of the frame, with its weight.
#[derive(Clone, Copy, Debug, Default)]
struct Item {
    agent: u16,
    x: f32,
    y: f32,
    confidence: f32,
    weight: f32,
    /// Weight in votes (identical reports share one voice).
    vote: f32,
    in_cluster: bool,
}

/// One (person, keypoint) group: a range of `items`.
#[derive(Clone, Copy, Debug, Default)]
struct Group {
    person: u16,
    keypoint: u8,
    start: u32,
    end: u32,
    outcome: Outcome,
}

/// Consensus with its agents' reputations; scratch space is reused, so fusing allocates
/// nothing once it has seen the largest frame.
pub struct Consensus {
    pub config: ConsensusConfig,
    constraints: &'static SkeletonConstraints,
    agents: Vec<AgentState>,
    stats: ConsensusStats,
    order: Vec<u32>,
    items: Vec<Item>,
    groups: Vec<Group>,
    /// Per agent: candidates seen this frame (any, failed ones included) and failure flag.
    seen: Vec<(u32, bool)>,
    /// Per person: index of its first group in `groups` (groups are sorted by person).
    person_groups: Vec<u32>,
}

impl Default for Consensus {
    fn default() -> Self {
        Self::new(ConsensusConfig::default())
    }
}

impl Consensus {
    pub fn new(config: ConsensusConfig) -> Self {
        Consensus {
            config,
            constraints: SkeletonConstraints::builtin(),
            agents: Vec::new(),
            stats: ConsensusStats::default(),
            order: Vec::new(),
            items: Vec::new(),
            groups: Vec::new(),
            seen: Vec::new(),
            person_groups: Vec::new(),
        }
    }

    pub fn stats(&self) -> ConsensusStats {
        self.stats
    }

    /// Forgets every reputation and total.
    pub fn reset(&mut self) {
        self.agents.clear();
        self.stats = ConsensusStats::default();
    }

    /// Every agent seen so far, by id.
    pub fn health(&self) -> Vec<AgentHealth> {
        let mut out = Vec::new();
        self.health_into(&mut out);
        out
    }

    fn health_into(&self, out: &mut Vec<AgentHealth>) {
        out.clear();
        out.extend(
            self.agents
                .iter()
                .enumerate()
                .filter(|(_, a)| a.known)
                .map(|(i, a)| AgentHealth {
                    agent: i as u16,
                    keypoint: a.keypoint,
                    reputation: a.reputation,
                    quarantined: a.quarantined,
                    failed: a.failed,
                }),
        );
    }

    /// Sets reputations, flags and failure counts (e.g. loaded from a previous run).
    pub fn restore(&mut self, health: &[AgentHealth]) {
        for h in health {
            let a = self.agent_mut(h.agent);
            a.known = true;
            a.keypoint = h.keypoint;
            a.reputation = h.reputation.clamp(MIN_REPUTATION, 1.0);
            a.quarantined = h.quarantined;
            a.failed = h.failed;
        }
    }

    fn agent_mut(&mut self, agent: u16) -> &mut AgentState {
        let i = usize::from(agent);
        if i >= self.agents.len() {
            self.agents.resize(i + 1, AgentState::default());
        }
        &mut self.agents[i]
    }

    /// Replaces the keypoints of every person of `frame` by the fusion of its candidates and
    /// `frame.agents` by the agents' health. Keypoints without any usable candidate become
    /// absent.
    pub fn fuse(&mut self, frame: &mut PoseFrame) {
        let n_persons = frame.persons.len();
        self.stats.frames += 1;
        for s in &mut self.seen {
            *s = (0, false);
        }
        // Failures: non-finite candidates; register every agent.
        for c in &frame.candidates {
            if c.tier != Tier::Keypoint
                || (c.person as usize) >= n_persons
                || (c.keypoint as usize) >= NUM_KEYPOINTS
            {
                continue;
            }
            let i = usize::from(c.agent);
            if i >= self.seen.len() {
                self.seen.resize(i + 1, (0, false));
            }
            self.seen[i].0 += 1;
            if !(c.x.is_finite() && c.y.is_finite() && c.confidence.is_finite()) {
                self.seen[i].1 = true;
            }
            let a = self.agent_mut(c.agent);
            a.known = true;
            a.keypoint = c.keypoint;
        }
        // Missing: on the roster but silent for some person.
        if n_persons > 0 {
            for r in &frame.agents {
                let i = usize::from(r.agent);
                if i >= self.seen.len() {
                    self.seen.resize(i + 1, (0, false));
                }
                if (self.seen[i].0 as usize) < n_persons {
                    self.seen[i].1 = true;
                }
                let a = self.agent_mut(r.agent);
                a.known = true;
                a.keypoint = r.keypoint;
            }
        }
        let rate = self.config.reputation_rate;
        for (i, &(_, failed)) in self.seen.iter().enumerate() {
            if failed {
                let a = &mut self.agents[i];
                a.failed += 1;
                a.reputation = (a.reputation * (1.0 - rate)).max(MIN_REPUTATION);
                self.stats.failures += 1;
            }
        }

        self.collect(frame);
        for person in &mut frame.persons {
            person.keypoints = [Keypoint::default(); NUM_KEYPOINTS];
        }
        // Fuse every group.
        let radius_of =
            |p: &crate::pose::Person| self.config.inlier_radius * p.bbox.w.max(p.bbox.h).max(1.0);
        for g in 0..self.groups.len() {
            let group = self.groups[g];
            let person = &mut frame.persons[group.person as usize];
            let radius = radius_of(person);
            let items = &mut self.items[group.start as usize..group.end as usize];
            let (kp, outcome) = fuse_group(items, radius, &self.config);
            person.keypoints[group.keypoint as usize] = kp;
            self.groups[g].outcome = outcome;
            self.stats.keypoints += 1;
            if kp.visibility == Visibility::Hidden {
                self.stats.below_quorum += 1;
            }
        }
        if self.config.validate {
            self.validate(frame);
        }
        self.update_reputations(frame);
        self.health_into(&mut frame.agents);
    }

    /// Fills `items` and `groups` from the usable candidates, sorted by (person, keypoint).
    fn collect(&mut self, frame: &PoseFrame) {
        let n_persons = frame.persons.len();
        let candidates = &frame.candidates;
        self.order.clear();
        self.order.extend(
            candidates
                .iter()
                .enumerate()
                .filter(|(_, c)| usable(c, n_persons))
                .map(|(i, _)| i as u32),
        );
        self.order.sort_unstable_by_key(|&i| {
            let c = &candidates[i as usize];
            (c.person, c.keypoint, c.agent)
        });
        self.items.clear();
        self.groups.clear();
        for &i in &self.order {
            let c = &candidates[i as usize];
            let a = &mut self.agents[usize::from(c.agent)];
            if a.mean_confidence <= 0.0 {
                a.mean_confidence = c.confidence;
            }
            let calibrated = a.calibrated(c.confidence).min(MAX_CONFIDENCE_RATIO);
            let weight = if a.quarantined {
                0.0
            } else {
                a.reputation * calibrated
            };
            let new_group = self
                .groups
                .last()
                .is_none_or(|g| (g.person, g.keypoint) != (c.person, c.keypoint));
            if new_group {
                let start = self.items.len() as u32;
                self.groups.push(Group {
                    person: c.person,
                    keypoint: c.keypoint,
                    start,
                    end: start,
                    outcome: Outcome::None,
                });
            }
            self.items.push(Item {
                agent: c.agent,
                x: c.x,
                y: c.y,
                confidence: c.confidence,
                weight,
                vote: weight,
                in_cluster: false,
            });
            self.groups.last_mut().expect("pushed").end += 1;
        }
        self.person_groups.clear();
        self.person_groups.resize(n_persons + 1, 0);
        let mut g = 0;
        for p in 0..=n_persons {
            while g < self.groups.len() && (self.groups[g].person as usize) < p {
                g += 1;
            }
            self.person_groups[p] = g as u32;
        }
    }

    /// The validator loop over each person (see the module docs).
    fn validate(&mut self, frame: &mut PoseFrame) {
        let c = self.constraints;
        for p in 0..frame.persons.len() {
            let (g0, g1) = (
                self.person_groups[p] as usize,
                self.person_groups[p + 1] as usize,
            );
            if g1 - g0 < 2 {
                continue;
            }
            let person = &mut frame.persons[p];
            let bbox = person.bbox;
            let mut placed = [false; NUM_KEYPOINTS];
            let mut group_of = [usize::MAX; NUM_KEYPOINTS];
            for g in g0..g1 {
                let k = self.groups[g].keypoint as usize;
                placed[k] = true;
                group_of[k] = g;
            }
            for _ in 0..NUM_KEYPOINTS {
                // The most suspicious placed keypoint.
                let mut worst: Option<(usize, f32, f32)> = None;
                for k in 0..NUM_KEYPOINTS {
                    if !placed[k] {
                        continue;
                    }
                    let kp = &person.keypoints[k];
                    let v = c.check(k, kp.x, kp.y, &bbox, &person.keypoints, &placed);
                    if v.violated == 0 || v.badness() <= 0.0 {
                        continue;
                    }
                    let b = v.badness();
                    if worst.is_none_or(|(_, wb, ws)| b > wb || (b == wb && kp.score < ws)) {
                        worst = Some((k, b, kp.score));
                    }
                }
                let Some((k, _, _)) = worst else { break };
                let g = group_of[k];
                let group = self.groups[g];
                let items = &self.items[group.start as usize..group.end as usize];
                // Repair: the best-weighted candidate outside the cluster that fits.
                let total: f32 = items.iter().map(|i| i.vote).sum();
                let mut best: Option<&Item> = None;
                for it in items.iter().filter(|i| !i.in_cluster && i.weight > 0.0) {
                    let v = c.check(k, it.x, it.y, &bbox, &person.keypoints, &placed);
                    if v.violated == 0 && best.is_none_or(|b| it.weight > b.weight) {
                        best = Some(it);
                    }
                }
                placed[k] = false;
                if let Some(it) = best {
                    let share = if total > 0.0 { it.vote / total } else { 0.0 };
                    person.keypoints[k] = Keypoint {
                        x: it.x,
                        y: it.y,
                        score: (share * it.confidence).clamp(0.0, 1.0),
                        visibility: Visibility::Hidden,
                    };
                    self.groups[g].outcome = Outcome::Repaired;
                    self.stats.repaired += 1;
                    // Its checks now pass: it stays placed.
                    placed[k] = true;
                } else {
                    // Hidden where it is, score 0: no wild guess, no invented position.
                    let kp = &mut person.keypoints[k];
                    kp.score = 0.0;
                    kp.visibility = Visibility::Hidden;
                    self.groups[g].outcome = Outcome::Vetoed;
                    self.stats.vetoed += 1;
                }
            }
        }
    }

    /// Moves each judged agent's reputation towards its agreement with the outcome; flags
    /// and releases agents.
    fn update_reputations(&mut self, frame: &PoseFrame) {
        let rate = self.config.reputation_rate;
        for g in &self.groups {
            let strength = match g.outcome {
                Outcome::Fused { strength } => strength,
                Outcome::Repaired => REPAIR_STRENGTH,
                Outcome::None | Outcome::Vetoed => 0.0,
            };
            if strength <= 0.0 {
                continue;
            }
            let rate = rate * strength;
            let person = &frame.persons[g.person as usize];
            let kp = person.keypoints[g.keypoint as usize];
            let radius = self.config.inlier_radius * person.bbox.w.max(person.bbox.h).max(1.0);
            for it in &self.items[g.start as usize..g.end as usize] {
                let d = (it.x - kp.x).hypot(it.y - kp.y);
                let agreement = (2.0 - d / radius).clamp(0.0, 1.0);
                let a = &mut self.agents[usize::from(it.agent)];
                // Abstention: the mean confidence is still the one this frame was weighed with.
                let claim = a.calibrated(it.confidence).min(1.0);
                a.reputation = (a.reputation + rate * claim * (agreement - a.reputation))
                    .clamp(MIN_REPUTATION, 1.0);
            }
        }
        // Running mean confidences (after weighting, so this frame used the old ones).
        for it in &self.items {
            let a = &mut self.agents[usize::from(it.agent)];
            a.mean_confidence += CONFIDENCE_RATE * (it.confidence - a.mean_confidence);
        }
        let (below, above) = (self.config.quarantine_below, self.config.release_above);
        for a in self.agents.iter_mut().filter(|a| a.known) {
            if !a.quarantined && a.reputation < below {
                a.quarantined = true;
                self.stats.quarantines += 1;
            } else if a.quarantined && a.reputation >= above {
                a.quarantined = false;
                self.stats.releases += 1;
            }
        }
    }
}

fn usable(c: &Candidate, n_persons: usize) -> bool {
    c.tier == Tier::Keypoint
        && (c.person as usize) < n_persons
        && (c.keypoint as usize) < NUM_KEYPOINTS
        && c.x.is_finite()
        && c.y.is_finite()
        && c.confidence.is_finite()
        && c.confidence > 0.0
}

/// Candidates of different agents closer than this (pixels) are the same report: independent
/// agents never agree to the pixel, copies and colluders do.
pub const IDENTICAL_PX: f32 = 0.01;

/// Fuses one (person, keypoint) group; marks the cluster members. See the module docs.
fn fuse_group(items: &mut [Item], radius: f32, config: &ConsensusConfig) -> (Keypoint, Outcome) {
    let r2 = radius * radius;
    // Nobody trusted: fall back on the quarantined agents, shown as hidden with score 0.
    let fallback = items.iter().all(|i| i.weight <= 0.0);
    if fallback {
        for it in items.iter_mut() {
            it.weight = it.confidence;
        }
    }
    // One voice per report: identical positions count once, with their largest weight.
    for i in 0..items.len() {
        items[i].vote = items[i].weight;
        for j in 0..i {
            let same = (items[i].x - items[j].x).abs() <= IDENTICAL_PX
                && (items[i].y - items[j].y).abs() <= IDENTICAL_PX;
            if same && items[j].vote > 0.0 {
                items[j].vote = items[j].vote.max(items[i].vote);
                items[i].vote = 0.0;
                break;
            }
        }
    }
    let total: f32 = items.iter().map(|i| i.vote).sum();
    // Seed: the candidate with the most votes within the radius (ties: the heavier seed).
    let (mut seed, mut support) = (0, (-1.0f32, -1.0f32));
    for (i, a) in items.iter().enumerate() {
        if a.weight <= 0.0 {
            continue;
        }
        let s: f32 = items
            .iter()
            .filter(|b| (a.x - b.x).powi(2) + (a.y - b.y).powi(2) <= r2)
            .map(|b| b.vote)
            .sum();
        if (s, a.weight) > support {
            (seed, support) = (i, (s, a.weight));
        }
    }
    // Trimmed mean: members around the seed, re-centred once.
    let (mut cx, mut cy) = (items[seed].x, items[seed].y);
    let (mut agree, mut conf_sum, mut n) = (0.0f32, 0.0f32, 0u32);
    for _ in 0..2 {
        let (mut sx, mut sy, mut sw) = (0.0f32, 0.0f32, 0.0f32);
        (agree, conf_sum, n) = (0.0, 0.0, 0);
        for it in items.iter_mut() {
            it.in_cluster = (it.x - cx).powi(2) + (it.y - cy).powi(2) <= r2 && it.weight > 0.0;
            if it.in_cluster {
                agree += it.vote;
                sw += it.weight;
                sx += it.weight * it.x;
                sy += it.weight * it.y;
                conf_sum += it.confidence;
                n += 1;
            }
        }
        if n == 0 || sw <= 0.0 {
            // Cannot happen (the seed is its own member), but never divide by zero.
            items[seed].in_cluster = true;
            (agree, conf_sum, n) = (items[seed].vote, items[seed].confidence, 1);
            (cx, cy) = (items[seed].x, items[seed].y);
            break;
        }
        (cx, cy) = (sx / sw, sy / sw);
    }
    let share = if total > 0.0 { agree / total } else { 0.0 };
    let score = if fallback {
        0.0
    } else {
        (share * conf_sum / n as f32).clamp(0.0, 1.0)
    };
    let visible = !fallback && share >= config.quorum - 1e-6 && score >= config.min_visible_score;
    let kp = Keypoint {
        x: cx,
        y: cy,
        score,
        visibility: if visible {
            Visibility::Visible
        } else {
            Visibility::Hidden
        },
    };
    // Evidence for reputations: from the majority's margin (2 against 1: 0.58, 3 against 0: 1).
    let outcome = if !fallback && share > 0.5 {
        Outcome::Fused {
            strength: (2.0 * share - 1.0).sqrt(),
        }
    } else {
        Outcome::Fused { strength: 0.0 }
    };
    (kp, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pose::{BBox, Person};

    fn candidate(agent: u16, x: f32, y: f32, confidence: f32) -> Candidate {
        Candidate {
            agent,
            tier: Tier::Keypoint,
            keypoint: 5,
            person: 0,
            x,
            y,
            confidence,
        }
    }

    fn frame(candidates: Vec<Candidate>) -> PoseFrame {
        let mut f = PoseFrame::new(0, 640, 480);
        f.persons.push(Person {
            bbox: BBox::new(100.0, 100.0, 100.0, 200.0),
            ..Default::default()
        });
        f.candidates = candidates;
        f
    }

    #[test]
    fn agreeing_candidates_give_their_weighted_mean() {
        let mut f = frame(vec![
            candidate(0, 150.0, 120.0, 0.5),
            candidate(1, 152.0, 122.0, 1.0),
        ]);
        let mut c = Consensus::default();
        c.fuse(&mut f);
        let k = f.persons[0].keypoints[5];
        // First frame: each confidence is its agent's own mean, so both weigh alike.
        assert!(
            (k.x - 151.0).abs() < 1e-4 && (k.y - 121.0).abs() < 1e-4,
            "{k:?}"
        );
        assert!((k.score - 0.75).abs() < 1e-6);
        assert_eq!(k.visibility, Visibility::Visible);
        assert_eq!(f.persons[0].keypoints[0].visibility, Visibility::Absent);
        assert_eq!(f.agents.len(), 2);
        assert!(
            f.agents
                .iter()
                .all(|a| a.reputation == 1.0 && !a.quarantined)
        );
        // Later frames: confidence above an agent's usual counts more.
        let mut f = frame(vec![
            candidate(0, 150.0, 120.0, 0.25),
            candidate(1, 152.0, 122.0, 1.0),
        ]);
        c.fuse(&mut f);
        assert!(f.persons[0].keypoints[5].x > 151.0);
    }

    #[test]
    fn identical_reports_count_as_one_voice() {
        // Two colluders at the very same point against two independent agents.
        let mut f = frame(vec![
            candidate(0, 150.0, 120.0, 0.5),
            candidate(1, 151.0, 121.0, 0.5),
            candidate(2, 180.0, 250.0, 0.95),
            candidate(3, 180.0, 250.0, 0.95),
        ]);
        Consensus::default().fuse(&mut f);
        let k = f.persons[0].keypoints[5];
        assert!((k.x - 150.5).abs() < 1e-3, "{k:?}");
    }

    #[test]
    fn a_minority_of_wild_candidates_is_outvoted() {
        let mut cands: Vec<_> = (0..6)
            .map(|i| candidate(i, 150.0 + i as f32 * 0.5, 120.0, 0.8))
            .collect();
        // Four independent liars far away (each on its own), even more confident.
        cands.extend((6..10).map(|i| candidate(i, 400.0 + 30.0 * i as f32, 400.0, 0.9)));
        let mut f = frame(cands);
        Consensus::default().fuse(&mut f);
        let k = f.persons[0].keypoints[5];
        assert!(
            (k.x - 151.25).abs() < 1e-3 && (k.y - 120.0).abs() < 1e-3,
            "{k:?}"
        );
        assert!(
            k.score < 0.8 * 0.7,
            "disagreement lowers the score: {}",
            k.score
        );
        assert_eq!(k.visibility, Visibility::Hidden, "below the 2/3 quorum");
    }

    #[test]
    fn bad_candidates_are_ignored_and_counted_as_failures() {
        let mut f = frame(vec![
            candidate(0, f32::NAN, 1.0, 1.0),
            candidate(1, 1.0, 1.0, f32::INFINITY),
            candidate(2, 1.0, 1.0, -1.0),
            Candidate {
                person: 9,
                ..candidate(3, 1.0, 1.0, 1.0)
            },
            Candidate {
                keypoint: 40,
                ..candidate(4, 1.0, 1.0, 1.0)
            },
        ]);
        let mut c = Consensus::default();
        c.fuse(&mut f);
        assert!(
            f.persons[0]
                .keypoints
                .iter()
                .all(|k| k.visibility == Visibility::Absent)
        );
        assert_eq!(c.stats().failures, 2);
        let failed: Vec<_> = f
            .agents
            .iter()
            .filter(|a| a.failed > 0)
            .map(|a| a.agent)
            .collect();
        assert_eq!(failed, [0, 1]);
    }

    #[test]
    fn a_silent_agent_on_the_roster_is_a_failure() {
        let mut f = frame(vec![candidate(0, 150.0, 120.0, 0.5)]);
        f.agents = vec![
            AgentHealth {
                agent: 0,
                keypoint: 5,
                ..Default::default()
            },
            AgentHealth {
                agent: 1,
                keypoint: 5,
                ..Default::default()
            },
        ];
        let mut c = Consensus::default();
        c.fuse(&mut f);
        assert_eq!(f.agents[1].failed, 1);
        assert_eq!(f.agents[0].failed, 0);
        assert_eq!(f.persons[0].keypoints[5].x, 150.0);
    }

    #[test]
    fn a_persistent_liar_is_quarantined_then_released_when_it_agrees() {
        let mut c = Consensus::default();
        let truth = |i: u16| candidate(i, 150.0 + i as f32, 120.0, 0.6);
        let mut flagged_at = None;
        for n in 0..40 {
            let mut f = frame(vec![truth(0), truth(1), candidate(2, 190.0, 280.0, 0.95)]);
            c.fuse(&mut f);
            let k = f.persons[0].keypoints[5];
            assert!((k.x - 150.5).abs() < 1e-3, "frame {n}: {k:?}");
            if f.agents[2].quarantined && flagged_at.is_none() {
                flagged_at = Some(n);
            }
            assert!(!f.agents[0].quarantined && !f.agents[1].quarantined);
        }
        let flagged_at = flagged_at.expect("the liar is flagged");
        assert!(flagged_at <= 30, "flagged after {flagged_at} frames");
        // Quarantined: the keypoint is now unanimous among the active agents.
        let mut f = frame(vec![truth(0), truth(1), candidate(2, 190.0, 280.0, 0.95)]);
        c.fuse(&mut f);
        assert_eq!(f.persons[0].keypoints[5].visibility, Visibility::Visible);
        // It comes back once it agrees again.
        let mut released = None;
        for n in 0..40 {
            let mut f = frame(vec![truth(0), truth(1), truth(2)]);
            c.fuse(&mut f);
            if !f.agents[2].quarantined {
                released = Some(n);
                break;
            }
        }
        assert!(released.is_some_and(|n| n <= 15), "{released:?}");
    }

    /// Agents that see nothing (low confidence, scattered guesses: a foot outside the crop)
    /// abstain: a confident liar that wins those frames cannot get them quarantined.
    #[test]
    fn unsure_honest_agents_abstain_against_a_confident_liar() {
        let mut c = Consensus::default();
        let seen = |i: u16| candidate(i, 150.0 + i as f32, 120.0, 0.6);
        for _ in 0..5 {
            let mut f = frame((0..6).map(seen).collect());
            c.fuse(&mut f);
        }
        for n in 0..20 {
            // Five honest guesses far apart and far from the liar's point (the box is
            // 100 x 200, the inlier radius 16 px).
            let mut cands: Vec<Candidate> = (0..5)
                .map(|i| candidate(i, 100.0 + 25.0 * i as f32, 100.0 + 45.0 * i as f32, 0.03))
                .collect();
            cands.push(candidate(5, 110.0, 280.0, 0.95));
            let mut f = frame(cands);
            c.fuse(&mut f);
            let k = f.persons[0].keypoints[5];
            assert!(
                (k.x - 110.0).abs() < 1e-3,
                "frame {n}: the liar wins: {k:?}"
            );
            let flagged: Vec<usize> = (0..5).filter(|&i| f.agents[i].quarantined).collect();
            assert!(
                flagged.is_empty(),
                "frame {n}: honest agents {flagged:?} quarantined"
            );
        }
    }

    /// Abstention slows the flagging of an agent whose confidence varies (its claim is below 1
    /// on half its frames), but a noisy agent is still quarantined quickly: at frame 12 here
    /// (10 with every candidate at full rate, before the abstention).
    #[test]
    fn a_noisy_agent_with_varying_confidence_is_still_quarantined() {
        let mut c = Consensus::default();
        let draw = |n: u64, k: u64| crate::detect::faults::random_unit(n * 3 + k);
        let mut flagged_at = None;
        for n in 0..40 {
            let mut cands: Vec<Candidate> = (0..5)
                .map(|i| candidate(i, 150.0 + i as f32, 120.0, 0.6))
                .collect();
            let (x, y, conf) = (
                100.0 + 100.0 * draw(n, 0),
                100.0 + 200.0 * draw(n, 1),
                draw(n, 2),
            );
            cands.push(candidate(5, x, y, conf.max(0.01)));
            let mut f = frame(cands);
            c.fuse(&mut f);
            if f.agents[5].quarantined && flagged_at.is_none() {
                flagged_at = Some(n);
            }
            assert!((0..5).all(|i| !f.agents[i].quarantined), "frame {n}");
        }
        let flagged_at = flagged_at.expect("the noisy agent is flagged");
        assert!(flagged_at <= 20, "flagged after {flagged_at} frames");
    }

    #[test]
    fn health_round_trips_through_restore() {
        let mut c = Consensus::default();
        let mut f = frame(vec![candidate(3, 150.0, 120.0, 0.5)]);
        c.fuse(&mut f);
        let mut h = c.health();
        h[0].reputation = 0.2;
        h[0].quarantined = true;
        let mut d = Consensus::default();
        d.restore(&h);
        assert_eq!(d.health(), h);
    }
}
