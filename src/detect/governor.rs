//! Graceful degradation under load: when frames come faster than the swarm handles them
//! (downstream QoS says so, or the processing time exceeds the latency budget), first drop the
//! test-time flip if it is on (the cheapest quality to lose: a second pass per person for a
//! little AP), then run fewer keypoint agents per keypoint, and only at one agent per keypoint
//! start skipping detection on frames (swarmtrack predicts those). Recovers step by step, in
//! the reverse order, once there is headroom.

/// Frames between two steps, so one slow frame does not swing the level.
const COOLDOWN_FRAMES: u32 = 8;
/// Largest detection interval the governor imposes (on top of the configured one).
pub const MAX_SKIP_INTERVAL: u32 = 8;
/// Exponential moving average weight of the newest processing time.
const EMA_ALPHA: f64 = 0.2;
/// Recover when the average processing time is below this share of the budget.
const RECOVER_SHARE: f64 = 0.6;

/// Current degradation state.
#[derive(Clone, Debug, PartialEq)]
pub struct Governor {
    /// Agents per keypoint asked for (already clamped to what the bundle has).
    requested: usize,
    /// Agents per keypoint in use now (`1..=requested`).
    agents_per_keypoint: usize,
    /// Whether the test-time flip is asked for, and whether it runs now.
    requested_flip: bool,
    flip: bool,
    /// Detection runs on one frame in `skip_interval` (1 = every frame).
    skip_interval: u32,
    ema_ms: Option<f64>,
    cooldown: u32,
    /// Frames processed at less than the requested quality, and frames whose detection was skipped.
    pub degraded_frames: u64,
    pub skipped_frames: u64,
}

impl Governor {
    pub fn new(requested: usize, flip: bool) -> Self {
        let requested = requested.max(1);
        Governor {
            requested,
            agents_per_keypoint: requested,
            requested_flip: flip,
            flip,
            skip_interval: 1,
            ema_ms: None,
            cooldown: 0,
            degraded_frames: 0,
            skipped_frames: 0,
        }
    }

    /// Changes the requested quality (property changes); resets the level to it.
    pub fn set_requested(&mut self, requested: usize, flip: bool) {
        let requested = requested.max(1);
        if requested != self.requested || flip != self.requested_flip {
            *self = Governor {
                degraded_frames: self.degraded_frames,
                skipped_frames: self.skipped_frames,
                ..Governor::new(requested, flip)
            };
        }
    }

    /// Whether the test-time flip runs now.
    pub fn flip(&self) -> bool {
        self.flip
    }

    pub fn agents_per_keypoint(&self) -> usize {
        self.agents_per_keypoint
    }

    pub fn skip_interval(&self) -> u32 {
        self.skip_interval
    }

    pub fn is_degraded(&self) -> bool {
        self.flip != self.requested_flip
            || self.agents_per_keypoint < self.requested
            || self.skip_interval > 1
    }

    /// Whether detection should be skipped on the frame with this counter.
    pub fn should_skip(&mut self, frame: u64) -> bool {
        let skip = self.skip_interval > 1 && !frame.is_multiple_of(u64::from(self.skip_interval));
        if skip {
            self.skipped_frames += 1;
        }
        skip
    }

    /// One step down the ladder: no flip, then fewer agents, then skipped frames.
    fn degrade(&mut self) {
        if self.flip {
            self.flip = false;
        } else if self.agents_per_keypoint > 1 {
            self.agents_per_keypoint -= 1;
        } else {
            self.skip_interval = (self.skip_interval * 2).min(MAX_SKIP_INTERVAL);
        }
        self.cooldown = COOLDOWN_FRAMES;
    }

    /// One step back up: fewer skipped frames first, then more agents, then the flip.
    fn recover(&mut self) {
        if self.skip_interval > 1 {
            self.skip_interval /= 2;
        } else if self.agents_per_keypoint < self.requested {
            self.agents_per_keypoint += 1;
        } else if self.requested_flip {
            self.flip = true;
        }
        self.cooldown = COOLDOWN_FRAMES;
    }

    /// A detected frame took `ms`; `budget_ms` 0 disables the budget.
    pub fn on_frame(&mut self, ms: f64, budget_ms: f64) {
        if self.is_degraded() {
            self.degraded_frames += 1;
        }
        let ema = match self.ema_ms {
            Some(e) => e + EMA_ALPHA * (ms - e),
            None => ms,
        };
        self.ema_ms = Some(ema);
        if self.cooldown > 0 {
            self.cooldown -= 1;
            return;
        }
        if budget_ms <= 0.0 {
            return;
        }
        if ema > budget_ms {
            self.degrade();
        } else if ema < RECOVER_SHARE * budget_ms && self.is_degraded() {
            self.recover();
        }
    }

    /// Downstream QoS: `proportion` > 1 means frames arrive faster than they are consumed.
    pub fn on_qos(&mut self, proportion: f64) {
        if self.cooldown > 0 {
            return;
        }
        if proportion > 1.05 {
            self.degrade();
        } else if proportion < 0.8 && self.is_degraded() {
            self.recover();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(g: &mut Governor, ms: f64, budget: f64, frames: usize) {
        for _ in 0..frames {
            g.on_frame(ms, budget);
        }
    }

    #[test]
    fn degrades_agents_before_frames_then_recovers() {
        let mut g = Governor::new(3, false);
        run(&mut g, 20.0, 10.0, 1);
        assert_eq!(g.agents_per_keypoint(), 2);
        run(&mut g, 20.0, 10.0, COOLDOWN_FRAMES as usize + 1);
        assert_eq!((g.agents_per_keypoint(), g.skip_interval()), (1, 1));
        run(&mut g, 20.0, 10.0, COOLDOWN_FRAMES as usize + 1);
        assert_eq!((g.agents_per_keypoint(), g.skip_interval()), (1, 2));
        assert!(g.should_skip(1) && !g.should_skip(2));
        assert!(g.degraded_frames > 0 && g.skipped_frames == 1);
        // Fast frames: skip interval goes first, then agents come back.
        run(&mut g, 1.0, 10.0, 100);
        assert_eq!((g.agents_per_keypoint(), g.skip_interval()), (3, 1));
        assert!(!g.is_degraded());
    }

    #[test]
    fn no_budget_no_change_and_qos_drives_it() {
        let mut g = Governor::new(3, false);
        run(&mut g, 500.0, 0.0, 50);
        assert_eq!(g.agents_per_keypoint(), 3);
        g.on_qos(1.5);
        assert_eq!(g.agents_per_keypoint(), 2);
        g.on_qos(1.5);
        assert_eq!(g.agents_per_keypoint(), 2, "cooldown holds the level");
        run(&mut g, 1.0, 0.0, COOLDOWN_FRAMES as usize);
        g.on_qos(0.5);
        assert_eq!(g.agents_per_keypoint(), 3);
    }

    #[test]
    fn flip_goes_first_and_comes_back_last() {
        let mut g = Governor::new(2, true);
        assert!(g.flip() && !g.is_degraded());
        run(&mut g, 20.0, 10.0, 1);
        assert_eq!((g.flip(), g.agents_per_keypoint()), (false, 2));
        assert!(g.is_degraded());
        run(&mut g, 20.0, 10.0, COOLDOWN_FRAMES as usize + 1);
        assert_eq!((g.flip(), g.agents_per_keypoint()), (false, 1));
        // Headroom: the agents come back one step before the flip does.
        run(&mut g, 1.0, 10.0, COOLDOWN_FRAMES as usize + 1);
        assert_eq!((g.flip(), g.agents_per_keypoint()), (false, 2));
        run(&mut g, 1.0, 10.0, COOLDOWN_FRAMES as usize + 1);
        assert!(g.flip() && !g.is_degraded());
        // Turning the flip off by property is a new request, not a degradation.
        g.set_requested(2, false);
        assert!(!g.flip() && !g.is_degraded());
    }

    #[test]
    fn skip_interval_is_bounded() {
        let mut g = Governor::new(1, false);
        run(&mut g, 99.0, 1.0, 1000);
        assert_eq!(g.skip_interval(), MAX_SKIP_INTERVAL);
    }
}
