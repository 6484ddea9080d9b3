//! Tracker settings.

/// Tracker settings; [`Config::default`] documents the defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// Frames a confirmed track is kept on prediction alone (occluded or undetected)
    /// before it is dropped; a detection matching it within that time gets its id back.
    /// Default 90 (3 s at 30 fps): long enough to bridge a person walking behind another.
    pub max_age: u32,
    /// Consecutive matched detections before a new track is confirmed and gets an id.
    /// Default 3; 1 confirms on the first detection.
    pub min_hits: u32,
    /// Weight of box IoU in the match similarity, the rest going to keypoint OKS
    /// (0 = keypoints only, 1 = boxes only). Default 0.5.
    pub iou_weight: f32,
    /// Similarity (0..1) below which a track and a detection are never matched.
    /// Default 0.3.
    pub match_threshold: f32,
    /// Detections scoring at least this are matched first and may start tracks.
    /// Default 0.5.
    pub high_score_threshold: f32,
    /// Detections scoring between this and the high threshold only extend tracks that
    /// are being followed (ByteTrack's second pass); lower ones are ignored. Default 0.1.
    pub low_score_threshold: f32,
    /// Process noise: standard deviation of the per-frame position change, as a fraction
    /// of the box height (velocity noise is 1/32 of it). Default 0.05 (ByteTrack's
    /// 1/20). Higher follows abrupt motion faster, lower smooths more.
    pub process_noise: f32,
    /// Measurement noise: standard deviation of detected box coordinates as a fraction of
    /// the box height (keypoints: half of it). Default 0.05 (ByteTrack's 1/20). Higher
    /// smooths more.
    pub measurement_noise: f32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_age: 90,
            min_hits: 3,
            iou_weight: 0.5,
            match_threshold: 0.3,
            high_score_threshold: 0.5,
            low_score_threshold: 0.1,
            process_noise: 0.05,
            measurement_noise: 0.05,
        }
    }
}

impl Config {
    /// The settings with every value brought into its valid range (non-finite values get
    /// their default), so no setting can make the tracker misbehave.
    pub fn sanitized(self) -> Self {
        let d = Config::default();
        let clamp = |v: f32, lo: f32, hi: f32, default: f32| {
            if v.is_finite() {
                v.clamp(lo, hi)
            } else {
                default
            }
        };
        let high = clamp(self.high_score_threshold, 0.0, 1.0, d.high_score_threshold);
        Config {
            max_age: self.max_age,
            min_hits: self.min_hits.max(1),
            iou_weight: clamp(self.iou_weight, 0.0, 1.0, d.iou_weight),
            match_threshold: clamp(self.match_threshold, 0.0, 1.0, d.match_threshold),
            high_score_threshold: high,
            low_score_threshold: clamp(self.low_score_threshold, 0.0, high, d.low_score_threshold)
                .min(high),
            process_noise: clamp(self.process_noise, 1e-4, 10.0, d.process_noise),
            measurement_noise: clamp(self.measurement_noise, 1e-4, 10.0, d.measurement_noise),
        }
    }
}
