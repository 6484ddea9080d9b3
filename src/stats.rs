//! Live monitoring: a fixed-capacity window of recent per-frame samples (processing time,
//! arrival time, optional per-stage times) and the counters an element keeps, summarised on
//! demand as a [`Snapshot`]: fps over the window, p50/p95 processing time, per-stage means.
//!
//! Plain Rust, no GStreamer types (the element glue is `crate::stats_glue`). Everything is
//! allocated in [`StatsWindow::new`]; [`StatsWindow::record`] and [`StatsWindow::snapshot`]
//! allocate nothing, so the window can sit on an element's streaming thread.

use crate::pose::{Stage, StageTimings};

/// Frames kept by default: about four seconds at 30 fps, enough for a steady p95 while
/// still following changes within seconds.
pub const DEFAULT_WINDOW: usize = 128;

/// The health of the agent swarm, as the detector (and consensus, which flags Byzantine
/// agents) sees it on the latest frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentCounts {
    /// Agents that ran and contributed on the frame.
    pub active: u32,
    /// Agents that failed to run (error, timeout) on the frame.
    pub failed: u32,
    /// Agents excluded for misbehaving (low reputation, Byzantine votes).
    pub quarantined: u32,
}

/// What an element measured on one frame.
#[derive(Clone, Copy, Debug, Default)]
pub struct FrameSample {
    /// When the frame was done, in nanoseconds of any monotonic clock shared by the samples
    /// of one window (the glue uses an `Instant` taken at construction).
    pub at_ns: u64,
    /// Time the element spent on the frame, in nanoseconds.
    pub processing_ns: u64,
    /// Persons on the frame after the element.
    pub persons: u32,
    /// The frame was handled in a reduced way (what that means is per element: README).
    pub degraded: bool,
    /// The frame was not processed or not passed on.
    pub dropped: bool,
    /// Per-stage times of the frame (0 = stage did not run), when the element has them.
    pub stages: Option<StageTimings>,
    /// Agent counts of the frame, when the element knows them.
    pub agents: Option<AgentCounts>,
}

/// A summary of the window and the counters.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Snapshot {
    /// Frames recorded since construction or the last reset.
    pub frames: u64,
    /// Frames per second over the window (0 with fewer than two frames or no elapsed time).
    pub fps: f64,
    /// Median processing time over the window, milliseconds (nearest rank).
    pub p50_ms: f64,
    /// 95th percentile processing time over the window, milliseconds (nearest rank).
    pub p95_ms: f64,
    /// Persons on the latest frame.
    pub persons: u32,
    /// Persons summed over all frames.
    pub persons_total: u64,
    /// Frames dropped since construction or the last reset.
    pub dropped: u64,
    /// Frames degraded since construction or the last reset.
    pub degraded: u64,
    /// Mean time per stage over the frames of the window where the stage ran, milliseconds;
    /// `None` for stages that never ran in the window.
    pub stages_ms: [Option<f64>; Stage::COUNT],
    /// Agent counts of the latest frame that had them.
    pub agents: Option<AgentCounts>,
}

/// The ring of recent samples plus counters. See the module docs.
#[derive(Clone, Debug)]
pub struct StatsWindow {
    at_ns: Box<[u64]>,
    processing_ns: Box<[u64]>,
    stages: Box<[[u64; Stage::COUNT]]>,
    /// Sorting space for the percentiles, so snapshots allocate nothing.
    scratch: Box<[u64]>,
    /// Next slot to write.
    head: usize,
    /// Valid slots (≤ capacity).
    len: usize,
    frames: u64,
    persons: u32,
    persons_total: u64,
    dropped: u64,
    degraded: u64,
    agents: Option<AgentCounts>,
}

impl Default for StatsWindow {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW)
    }
}

impl StatsWindow {
    /// A window of the last `capacity` frames (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        StatsWindow {
            at_ns: vec![0; capacity].into_boxed_slice(),
            processing_ns: vec![0; capacity].into_boxed_slice(),
            stages: vec![[0; Stage::COUNT]; capacity].into_boxed_slice(),
            scratch: vec![0; capacity].into_boxed_slice(),
            head: 0,
            len: 0,
            frames: 0,
            persons: 0,
            persons_total: 0,
            dropped: 0,
            degraded: 0,
            agents: None,
        }
    }

    pub fn capacity(&self) -> usize {
        self.at_ns.len()
    }

    /// Frames in the window now.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every sample and counter (a new stream).
    pub fn reset(&mut self) {
        self.head = 0;
        self.len = 0;
        self.frames = 0;
        self.persons = 0;
        self.persons_total = 0;
        self.dropped = 0;
        self.degraded = 0;
        self.agents = None;
    }

    /// Adds one frame; the oldest falls out of a full window. Allocates nothing.
    pub fn record(&mut self, s: &FrameSample) {
        let cap = self.capacity();
        self.at_ns[self.head] = s.at_ns;
        self.processing_ns[self.head] = s.processing_ns;
        self.stages[self.head] = match &s.stages {
            Some(t) => std::array::from_fn(|i| t.get(Stage::ALL[i])),
            None => [0; Stage::COUNT],
        };
        self.head = (self.head + 1) % cap;
        self.len = (self.len + 1).min(cap);
        self.frames = self.frames.saturating_add(1);
        self.persons = s.persons;
        self.persons_total = self.persons_total.saturating_add(u64::from(s.persons));
        self.dropped += u64::from(s.dropped);
        self.degraded += u64::from(s.degraded);
        if s.agents.is_some() {
            self.agents = s.agents;
        }
    }

    /// Index of the i-th oldest valid slot.
    fn slot(&self, i: usize) -> usize {
        let cap = self.capacity();
        (self.head + cap - self.len + i) % cap
    }

    /// Summarises the window and the counters. Allocates nothing.
    pub fn snapshot(&mut self) -> Snapshot {
        let n = self.len;
        let mut snap = Snapshot {
            frames: self.frames,
            persons: self.persons,
            persons_total: self.persons_total,
            dropped: self.dropped,
            degraded: self.degraded,
            agents: self.agents,
            ..Snapshot::default()
        };
        if n == 0 {
            return snap;
        }
        // fps: n frames span n-1 intervals between the first and the last arrival. Clocks
        // that go backwards (a caller mixing clocks) give 0 rather than garbage.
        let first = self.at_ns[self.slot(0)];
        let last = self.at_ns[self.slot(n - 1)];
        if n >= 2 && last > first {
            snap.fps = (n - 1) as f64 * 1e9 / (last - first) as f64;
        }
        for i in 0..n {
            self.scratch[i] = self.processing_ns[self.slot(i)];
        }
        let sorted = &mut self.scratch[..n];
        sorted.sort_unstable();
        snap.p50_ms = nearest_rank(sorted, 50) as f64 / 1e6;
        snap.p95_ms = nearest_rank(sorted, 95) as f64 / 1e6;
        for (k, out) in snap.stages_ms.iter_mut().enumerate() {
            let (mut sum, mut count) = (0u128, 0u64);
            for i in 0..n {
                let v = self.stages[self.slot(i)][k];
                if v > 0 {
                    sum += u128::from(v);
                    count += 1;
                }
            }
            if count > 0 {
                *out = Some(sum as f64 / count as f64 / 1e6);
            }
        }
        snap
    }
}

/// The `p`-th percentile of sorted, non-empty `values` by the nearest-rank method: the
/// smallest value with at least p% of the values at or below it.
fn nearest_rank(sorted: &[u64], p: u32) -> u64 {
    let n = sorted.len();
    let rank = (u64::from(p) * n as u64).div_ceil(100).max(1) as usize;
    sorted[rank.min(n) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: u64, processing_ms: u64) -> FrameSample {
        FrameSample {
            at_ns: at_ms * 1_000_000,
            processing_ns: processing_ms * 1_000_000,
            ..FrameSample::default()
        }
    }

    #[test]
    fn empty_window_reports_zeros() {
        let mut w = StatsWindow::new(8);
        let s = w.snapshot();
        assert_eq!(s, Snapshot::default());
    }

    #[test]
    fn fps_and_percentiles_over_a_full_window() {
        let mut w = StatsWindow::new(100);
        // 100 frames 40 ms apart (25 fps), processing 1..=100 ms.
        for i in 0..100 {
            w.record(&sample(i * 40, i + 1));
        }
        let s = w.snapshot();
        assert_eq!(s.frames, 100);
        assert!((s.fps - 25.0).abs() < 1e-9, "{}", s.fps);
        assert_eq!(s.p50_ms, 50.0);
        assert_eq!(s.p95_ms, 95.0);
    }

    #[test]
    fn old_frames_fall_out_of_the_window() {
        let mut w = StatsWindow::new(4);
        // Slow frames first, then four fast ones at 10 fps: only the latter count.
        for i in 0..10 {
            w.record(&sample(i * 1000, 500));
        }
        for i in 0..4 {
            w.record(&sample(20_000 + i * 100, 2));
        }
        let s = w.snapshot();
        assert_eq!(w.len(), 4);
        assert_eq!(s.frames, 14);
        assert!((s.fps - 10.0).abs() < 1e-9, "{}", s.fps);
        assert_eq!(s.p95_ms, 2.0);
    }

    #[test]
    fn counters_stages_and_agents() {
        let mut w = StatsWindow::new(8);
        let mut t = StageTimings::default();
        t.set(Stage::Consensus, 2_000_000);
        w.record(&FrameSample {
            persons: 3,
            degraded: true,
            stages: Some(t),
            agents: Some(AgentCounts {
                active: 51,
                failed: 1,
                quarantined: 2,
            }),
            ..sample(0, 1)
        });
        t.set(Stage::Consensus, 4_000_000);
        w.record(&FrameSample {
            persons: 1,
            dropped: true,
            stages: Some(t),
            ..sample(10, 1)
        });
        let s = w.snapshot();
        assert_eq!((s.persons, s.persons_total), (1, 4));
        assert_eq!((s.dropped, s.degraded), (1, 1));
        assert_eq!(s.stages_ms[Stage::Consensus as usize], Some(3.0));
        assert_eq!(s.stages_ms[Stage::Features as usize], None);
        // The latest frame without counts keeps the last known ones.
        assert_eq!(s.agents.map(|a| a.quarantined), Some(2));
        w.reset();
        assert_eq!(w.snapshot(), Snapshot::default());
    }

    #[test]
    fn backwards_clock_gives_zero_fps_not_garbage() {
        let mut w = StatsWindow::new(4);
        w.record(&sample(100, 1));
        w.record(&sample(50, 1));
        assert_eq!(w.snapshot().fps, 0.0);
    }

    #[test]
    fn nearest_rank_edges() {
        assert_eq!(nearest_rank(&[7], 50), 7);
        assert_eq!(nearest_rank(&[7], 95), 7);
        assert_eq!(nearest_rank(&[1, 2], 50), 1);
        assert_eq!(nearest_rank(&[1, 2], 95), 2);
    }
}
