//! Constant-velocity Kalman filters for track boxes and keypoints.
//!
//! The box filter is SORT/ByteTrack's: state (cx, cy, a = w/h, h) and their velocities,
//! H selecting the four positions, and diagonal process/measurement noise whose standard
//! deviations scale with the box height h. With diagonal Q, R and an initially diagonal P
//! nothing ever couples one coordinate to another, so the 8x8 filter is exactly four
//! independent 2-state (position, velocity) filters: that is how it is written here
//! ([`Axis`]), with identical results for a fraction of the work and no matrices at all.
//! Keypoints use the same [`Axis`] filter on x and y.

use crate::pose::BBox;

/// Ratio of velocity to position process noise. ByteTrack uses 1/8 (1/160 over 1/20);
/// that lets the velocity wander by h/160 per frame, as much as a person's walking speed
/// in a few frames, and tracks extrapolated through an occlusion drift off. A pedestrian
/// accelerates by about h/1500 per frame² at 30 fps; h/640 still allows turns and camera
/// motion, and keeps velocities steady enough to bridge occlusions of seconds.
pub const VELOCITY_NOISE_RATIO: f32 = 1.0 / 32.0;
/// Initial velocity std as a fraction of the height: ByteTrack's 10/160, i.e. anything
/// from standing still to running. Independent of the process noise, so a smooth filter
/// can still learn how fast a new track moves.
pub const INITIAL_VELOCITY_STD: f32 = 1.0 / 16.0;
/// Aspect-ratio noise stays absolute as in ByteTrack: (process pos, process vel, measure).
pub const ASPECT_NOISE: (f32, f32, f32) = (1e-2, 1e-5, 1e-1);
/// Smallest height used for noise scaling and output, so degenerate boxes stay finite.
const MIN_SIZE: f32 = 1e-3;

/// One coordinate with its velocity: a 2-state constant-velocity Kalman filter.
///
/// The covariance is symmetric, so only `pp`, `pv` and `vv` are stored.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Axis {
    /// Position.
    pub p: f32,
    /// Velocity, per frame.
    pub v: f32,
    pub pp: f32,
    pub pv: f32,
    pub vv: f32,
}

impl Axis {
    /// A filter at position `p` moving at `v`, with standard deviations `std_p`, `std_v`.
    pub fn new(p: f32, v: f32, std_p: f32, std_v: f32) -> Self {
        Axis {
            p,
            v,
            pp: std_p * std_p,
            pv: 0.0,
            vv: std_v * std_v,
        }
    }

    /// Advances one frame; `std_p`, `std_v` are the process noise standard deviations.
    pub fn predict(&mut self, std_p: f32, std_v: f32) {
        self.p += self.v;
        // P' = F P F^T + Q with F = [[1, 1], [0, 1]].
        self.pp += 2.0 * self.pv + self.vv + std_p * std_p;
        self.pv += self.vv;
        self.vv += std_v * std_v;
    }

    /// Corrects with a measurement `z` of the position of standard deviation `std_z`.
    pub fn update(&mut self, z: f32, std_z: f32) {
        let s = self.pp + std_z * std_z;
        if s.is_nan() || s <= 0.0 || !z.is_finite() {
            return;
        }
        let (kp, kv) = (self.pp / s, self.pv / s);
        let innovation = z - self.p;
        self.p += kp * innovation;
        self.v += kv * innovation;
        // P' = (I - K H) P, H = [1, 0].
        let (pp, pv) = (self.pp, self.pv);
        self.pp -= kp * pp;
        self.pv -= kp * pv;
        self.vv -= kv * pv;
    }
}

/// Noise levels shared by the box and keypoint filters, as fractions of the box height.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Noise {
    /// Process noise std of positions per frame (ByteTrack: 1/20).
    pub process: f32,
    /// Measurement noise std of positions (ByteTrack: 1/20).
    pub measurement: f32,
}

/// The box filter: (cx, cy, a, h) with velocities, as in SORT/ByteTrack.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BoxFilter {
    pub cx: Axis,
    pub cy: Axis,
    pub a: Axis,
    pub h: Axis,
}

impl BoxFilter {
    /// Starts a filter at a measured box, at rest, with ByteTrack's initial uncertainty.
    pub fn new(bbox: &BBox, noise: Noise) -> Self {
        let (cx, cy, a, h) = measure(bbox);
        let sp = 2.0 * noise.process * h;
        let sv = INITIAL_VELOCITY_STD * h;
        BoxFilter {
            cx: Axis::new(cx, 0.0, sp, sv),
            cy: Axis::new(cy, 0.0, sp, sv),
            a: Axis::new(a, 0.0, 1e-2, 1e-5),
            h: Axis::new(h, 0.0, sp, sv),
        }
    }

    /// Advances one frame. Noise scales with the current height, as in ByteTrack.
    pub fn predict(&mut self, noise: Noise) {
        let h = self.height();
        let sp = noise.process * h;
        let sv = sp * VELOCITY_NOISE_RATIO;
        self.cx.predict(sp, sv);
        self.cy.predict(sp, sv);
        self.a.predict(ASPECT_NOISE.0, ASPECT_NOISE.1);
        self.h.predict(sp, sv);
    }

    /// Corrects with a measured box.
    pub fn update(&mut self, bbox: &BBox, noise: Noise) {
        let (cx, cy, a, h) = measure(bbox);
        let sz = noise.measurement * self.height();
        self.cx.update(cx, sz);
        self.cy.update(cy, sz);
        self.a.update(a, ASPECT_NOISE.2);
        self.h.update(h, sz);
    }

    /// Velocity of the box centre, pixels per frame.
    pub fn velocity(&self) -> (f32, f32) {
        (self.cx.v, self.cy.v)
    }

    /// Height, kept positive.
    pub fn height(&self) -> f32 {
        self.h.p.max(MIN_SIZE)
    }

    /// The current box estimate.
    pub fn bbox(&self) -> BBox {
        let h = self.height();
        let w = (self.a.p * h).max(MIN_SIZE);
        BBox::new(self.cx.p - w / 2.0, self.cy.p - h / 2.0, w, h)
    }
}

/// A box as (cx, cy, aspect, h).
fn measure(b: &BBox) -> (f32, f32, f32, f32) {
    let h = b.h.max(MIN_SIZE);
    (b.x + b.w / 2.0, b.y + b.h / 2.0, b.w / h, h)
}

/// One keypoint: independent constant-velocity filters on x and y.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PointFilter {
    pub x: Axis,
    pub y: Axis,
    /// False until the keypoint is first measured.
    pub initialized: bool,
}

impl PointFilter {
    /// Starts at a measured position moving with `velocity` (the body's, as limbs at rest
    /// relative to it is the best guess).
    pub fn init(&mut self, x: f32, y: f32, velocity: (f32, f32), std_p: f32, std_v: f32) {
        self.x = Axis::new(x, velocity.0, std_p, std_v);
        self.y = Axis::new(y, velocity.1, std_p, std_v);
        self.initialized = true;
    }

    /// Advances one frame.
    pub fn predict(&mut self, std_p: f32, std_v: f32) {
        self.x.predict(std_p, std_v);
        self.y.predict(std_p, std_v);
    }

    /// Pulls the keypoint's velocity towards `body` by `keep` (0 = body velocity, 1 =
    /// unchanged): a limb's swing does not persist over frames without measurement, the
    /// body's motion does.
    pub fn damp_towards(&mut self, body: (f32, f32), keep: f32) {
        self.x.v = body.0 + (self.x.v - body.0) * keep;
        self.y.v = body.1 + (self.y.v - body.1) * keep;
    }

    /// Corrects with a measured position.
    pub fn update(&mut self, x: f32, y: f32, std_z: f32) {
        self.x.update(x, std_z);
        self.y.update(y, std_z);
    }

    pub fn position(&self) -> (f32, f32) {
        (self.x.p, self.y.p)
    }
}

/// Keypoint process noise std relative to the box's position process noise, per frame.
/// Box position noise also absorbs box-edge jitter (a box follows the limbs' extent),
/// which a keypoint does not have; and a walking limb's swing accelerates by about
/// h/700 per frame², well within the velocity noise (h/400 by default). Lower values
/// smooth more but lag behind fast gestures.
pub const KEYPOINT_POSITION_NOISE_RATIO: f32 = 0.2;
pub const KEYPOINT_VELOCITY_NOISE_RATIO: f32 = 0.05;
/// Detectors place keypoints more precisely than box edges.
pub const KEYPOINT_MEASUREMENT_RATIO: f32 = 0.5;
