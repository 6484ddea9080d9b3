//! Multi-person tracker: ByteTrack-style association of detections to Kalman-predicted
//! tracks, with keypoint-aware similarity and keypoint smoothing.
//!
//! Life cycle: an unmatched high-score detection starts a *tentative* track; after
//! `min_hits` consecutive matches it is *confirmed* and gets the next id of the stream.
//! A confirmed track that misses a detection goes *lost* and lives on prediction for up to
//! `max_age` frames, keeping its id if a detection matches it again. Tentative tracks die
//! on their first miss. Ids are never reused, not even across [`Tracker::reset`].

use super::assign::Assignment;
use super::config::Config;
use super::kalman::{
    BoxFilter, INITIAL_VELOCITY_STD, KEYPOINT_MEASUREMENT_RATIO, KEYPOINT_POSITION_NOISE_RATIO,
    KEYPOINT_VELOCITY_NOISE_RATIO, Noise, PointFilter,
};
use super::similarity::similarity;
use crate::pose::{BBox, Keypoint, NUM_KEYPOINTS, Person, Visibility};

/// How much of a keypoint's own velocity (relative to the body) survives each frame
/// without measurement: a limb's swing reverses within a few frames, the body's walk
/// does not, so occluded poses drift with the body instead of flying apart.
const KEYPOINT_VELOCITY_KEEP: f32 = 0.5;
/// Confidence floor when weighting keypoint measurements, so a 0-confidence keypoint does
/// not get infinite noise.
const MIN_KEYPOINT_CONFIDENCE: f32 = 0.05;
/// Occluded keypoints (COCO v = 1) are guesses: their measurement noise is this much larger.
const HIDDEN_KEYPOINT_NOISE: f32 = 2.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Tentative,
    Tracked,
    Lost,
}

#[derive(Clone, Copy)]
struct Track {
    /// Set on confirmation.
    id: Option<u64>,
    state: State,
    bbox: BoxFilter,
    points: [PointFilter; NUM_KEYPOINTS],
    /// Consecutive matched detections (while tentative) or total matches.
    hits: u32,
    /// Frames since the last matched detection.
    since_update: u32,
    /// Score, visibility and keypoint confidences of the last matched detection.
    score: f32,
    visibility: [Visibility; NUM_KEYPOINTS],
    confidence: [f32; NUM_KEYPOINTS],
    /// Prediction of this frame, for matching.
    predicted_box: BBox,
    expected: [Option<(f32, f32)>; NUM_KEYPOINTS],
    /// Matched in this frame's association.
    matched: bool,
}

impl Track {
    fn new(det: &Person, noise: Noise) -> Self {
        let mut track = Track {
            id: None,
            state: State::Tentative,
            bbox: BoxFilter::new(&det.bbox, noise),
            points: [PointFilter::default(); NUM_KEYPOINTS],
            hits: 1,
            since_update: 0,
            score: det.score,
            visibility: [Visibility::Absent; NUM_KEYPOINTS],
            confidence: [0.0; NUM_KEYPOINTS],
            predicted_box: det.bbox,
            expected: [None; NUM_KEYPOINTS],
            matched: true,
        };
        track.update_points(det, noise);
        track
    }

    /// Advances the filters one frame and caches the prediction for matching.
    fn predict(&mut self, noise: Noise) {
        self.since_update = self.since_update.saturating_add(1);
        if self.state != State::Tracked {
            // As ByteTrack: a track not being followed does not keep growing or shrinking.
            self.bbox.h.v = 0.0;
        }
        let body = self.bbox.velocity();
        self.bbox.predict(noise);
        let h = self.bbox.height();
        let (sp, sv) = (
            noise.process * h * KEYPOINT_POSITION_NOISE_RATIO,
            noise.process * h * KEYPOINT_VELOCITY_NOISE_RATIO,
        );
        let damp = self.since_update > 1;
        for p in self.points.iter_mut().filter(|p| p.initialized) {
            if damp {
                p.damp_towards(body, KEYPOINT_VELOCITY_KEEP);
            }
            p.predict(sp, sv);
        }
        self.cache_prediction();
        self.matched = false;
    }

    fn cache_prediction(&mut self) {
        self.predicted_box = self.bbox.bbox();
        for (e, p) in self.expected.iter_mut().zip(&self.points) {
            *e = p.initialized.then(|| p.position());
        }
    }

    /// Corrects the filters with a matched detection.
    fn update(&mut self, det: &Person, noise: Noise) {
        self.bbox.update(&det.bbox, noise);
        self.update_points(det, noise);
        self.score = det.score;
        self.hits = self.hits.saturating_add(1);
        self.since_update = 0;
        self.matched = true;
    }

    fn update_points(&mut self, det: &Person, noise: Noise) {
        let h = self.bbox.height();
        let body = self.bbox.velocity();
        let base = noise.measurement * h * KEYPOINT_MEASUREMENT_RATIO;
        for (i, k) in det.keypoints.iter().enumerate() {
            self.visibility[i] = k.visibility;
            self.confidence[i] = k.score;
            if k.visibility == Visibility::Absent {
                continue;
            }
            let mut std_z = base / k.score.max(MIN_KEYPOINT_CONFIDENCE).sqrt();
            if k.visibility == Visibility::Hidden {
                std_z *= HIDDEN_KEYPOINT_NOISE;
            }
            let p = &mut self.points[i];
            if p.initialized {
                p.update(k.x, k.y, std_z);
            } else {
                p.init(k.x, k.y, body, std_z, INITIAL_VELOCITY_STD * h);
            }
        }
    }

    /// The track's current estimate as a person; keypoints never seen are left absent.
    fn person(&self, predicted: bool) -> Person {
        let mut keypoints = [Keypoint::default(); NUM_KEYPOINTS];
        for (i, (k, p)) in keypoints.iter_mut().zip(&self.points).enumerate() {
            if p.initialized {
                (k.x, k.y) = p.position();
                k.score = self.confidence[i];
                k.visibility = self.visibility[i];
            }
        }
        Person {
            track_id: self.id,
            bbox: self.bbox.bbox(),
            score: self.score,
            keypoints,
            predicted,
        }
    }

    fn confirmed(&self) -> bool {
        self.id.is_some()
    }
}

/// The tracker of one stream. See the module docs for the track life cycle.
#[derive(Debug)]
pub struct Tracker {
    config: Config,
    tracks: Vec<Track>,
    next_id: u64,
    assignment: Assignment,
    /// This frame's valid detections (sanitised copies of the input).
    dets: Vec<Person>,
    /// Track matched to each detection.
    det_track: Vec<Option<usize>>,
    pool: Vec<usize>,
    candidates: Vec<usize>,
    output: Vec<Person>,
}

impl std::fmt::Debug for Track {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Track")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("since_update", &self.since_update)
            .finish_non_exhaustive()
    }
}

impl Default for Tracker {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl Tracker {
    pub fn new(config: Config) -> Self {
        Tracker {
            config: config.sanitized(),
            tracks: Vec::new(),
            next_id: 1,
            assignment: Assignment::new(),
            dets: Vec::new(),
            det_track: Vec::new(),
            pool: Vec::new(),
            candidates: Vec::new(),
            output: Vec::new(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Changes the settings; live tracks keep going under the new ones.
    pub fn set_config(&mut self, config: Config) {
        self.config = config.sanitized();
    }

    /// Forgets every track (flush, seek). Ids keep counting up: none is ever reused.
    pub fn reset(&mut self) {
        self.tracks.clear();
    }

    /// The id the next confirmed track will get.
    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Number of live tracks, tentative and lost included.
    pub fn live_tracks(&self) -> usize {
        self.tracks.len()
    }

    fn noise(&self) -> Noise {
        Noise {
            process: self.config.process_noise,
            measurement: self.config.measurement_noise,
        }
    }

    /// Tracks one frame of detections. Returns every valid detection, in input order:
    /// those matched to a confirmed track carry its id and the filtered (smoothed) box and
    /// keypoints; the others are returned as detected with no id. Persons with a
    /// non-finite or empty box or a non-finite score are dropped; non-finite keypoints are
    /// made absent.
    pub fn update(&mut self, persons: &[Person]) -> &[Person] {
        let cfg = self.config;
        let noise = self.noise();
        self.dets.clear();
        self.dets.extend(persons.iter().filter_map(sanitize));
        self.det_track.clear();
        self.det_track.resize(self.dets.len(), None);
        for t in &mut self.tracks {
            t.predict(noise);
        }

        let (high, low) = (cfg.high_score_threshold, cfg.low_score_threshold);
        let is_high = |d: &Person| d.score >= high;
        // First pass: confident detections against every confirmed track, lost ones too.
        self.match_pass(|t| t.confirmed(), is_high);
        // Second pass (ByteTrack): weak detections, often occluded people, may only extend
        // tracks followed up to the last frame; they are too unreliable to revive lost ones.
        self.match_pass(
            |t| t.state == State::Tracked && t.confirmed(),
            |d| d.score >= low && d.score < high,
        );
        // Third pass: remaining confident detections against tentative tracks.
        self.match_pass(|t| t.state == State::Tentative, is_high);

        for (d, t) in self.det_track.iter().enumerate() {
            let Some(t) = *t else { continue };
            let track = &mut self.tracks[t];
            track.update(&self.dets[d], noise);
            if track.state == State::Lost {
                track.state = State::Tracked;
            }
            if track.id.is_none() && track.hits >= cfg.min_hits {
                track.state = State::Tracked;
                track.id = Some(self.next_id);
                self.next_id += 1;
            }
        }
        for t in self.tracks.iter_mut().filter(|t| !t.matched) {
            if t.state == State::Tracked {
                t.state = State::Lost;
            }
        }
        for d in 0..self.dets.len() {
            if self.det_track[d].is_none() && is_high(&self.dets[d]) {
                let mut track = Track::new(&self.dets[d], noise);
                if cfg.min_hits <= 1 {
                    track.state = State::Tracked;
                    track.id = Some(self.next_id);
                    self.next_id += 1;
                }
                self.det_track[d] = Some(self.tracks.len());
                self.tracks.push(track);
            }
        }

        self.output.clear();
        for (det, t) in self.dets.iter().zip(&self.det_track) {
            let person = match t.map(|t| &self.tracks[t]) {
                Some(track) if track.confirmed() => {
                    let mut p = track.person(false);
                    // Keep what the detector said about each keypoint; only positions
                    // are filtered.
                    for (k, d) in p.keypoints.iter_mut().zip(&det.keypoints) {
                        if d.visibility == Visibility::Absent {
                            *k = *d;
                        }
                    }
                    p
                }
                _ => *det,
            };
            self.output.push(person);
        }

        let max_age = cfg.max_age;
        self.tracks.retain(|t| match t.state {
            State::Tentative => t.matched,
            _ => t.since_update <= max_age,
        });
        &self.output
    }

    /// Advances every track one frame without detections (the detector skipped this
    /// frame). Returns the confirmed tracks followed up to the last detected frame, as
    /// predicted persons (`predicted == true`).
    pub fn predict_only(&mut self) -> &[Person] {
        let noise = self.noise();
        self.output.clear();
        for t in &mut self.tracks {
            t.predict(noise);
            if t.state == State::Tracked && t.confirmed() {
                self.output.push(t.person(true));
            }
        }
        let max_age = self.config.max_age;
        self.tracks.retain(|t| t.since_update <= max_age);
        &self.output
    }

    /// One association pass between unmatched tracks accepted by `track_ok` and unmatched
    /// detections accepted by `det_ok`.
    fn match_pass(&mut self, track_ok: impl Fn(&Track) -> bool, det_ok: impl Fn(&Person) -> bool) {
        let tracks = &mut self.tracks;
        self.pool.clear();
        self.pool
            .extend((0..tracks.len()).filter(|&t| !tracks[t].matched && track_ok(&tracks[t])));
        self.candidates.clear();
        self.candidates.extend(
            (0..self.dets.len()).filter(|&d| self.det_track[d].is_none() && det_ok(&self.dets[d])),
        );
        let (pool, candidates, dets) = (&self.pool, &self.candidates, &self.dets);
        let iou_weight = self.config.iou_weight;
        let matches = self.assignment.solve(
            pool.len(),
            candidates.len(),
            self.config.match_threshold,
            |r, c| {
                let (t, d) = (&tracks[pool[r]], &dets[candidates[c]]);
                similarity(
                    &t.predicted_box,
                    &t.expected,
                    &d.bbox,
                    &d.keypoints,
                    iou_weight,
                )
            },
        );
        for &(r, c) in matches {
            self.det_track[candidates[c]] = Some(pool[r]);
            tracks[pool[r]].matched = true;
        }
    }
}

/// A copy of `p` safe to track, or `None` when its box or score is unusable.
fn sanitize(p: &Person) -> Option<Person> {
    let b = &p.bbox;
    let finite = [b.x, b.y, b.w, b.h, p.score].iter().all(|v| v.is_finite());
    if !finite || b.w <= 0.0 || b.h <= 0.0 {
        return None;
    }
    let mut p = *p;
    p.track_id = None;
    p.predicted = false;
    for k in &mut p.keypoints {
        if !(k.x.is_finite() && k.y.is_finite() && k.score.is_finite()) {
            *k = Keypoint::default();
        }
    }
    Some(p)
}
