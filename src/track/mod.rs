//! Multi-person tracking: plain Rust, no GStreamer types.
//!
//! - [`kalman`]: constant-velocity Kalman filters for boxes (SORT/ByteTrack state) and
//!   keypoints;
//! - [`similarity`]: box IoU blended with keypoint OKS;
//! - [`assign`]: gated optimal (Hungarian) assignment;
//! - [`tracker`]: ByteTrack-style two-pass association and the track life cycle;
//! - [`config`]: the settings and their defaults.

pub mod assign;
pub mod config;
pub mod kalman;
pub mod similarity;
pub mod tracker;

pub use config::Config;
pub use tracker::Tracker;
