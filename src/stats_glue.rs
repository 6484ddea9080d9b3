//! GStreamer side of live monitoring (`crate::stats` is the plain-Rust core): the
//! `stats-interval` and `stats` properties every swarmpose filter shares, the
//! `swarmpose-stats` structure, and posting it as an element message.
//!
//! An element holds a `Mutex<StatsMonitor>`, and per frame does
//!
//! ```ignore
//! let started = Instant::now();
//! // ... the element's work ...
//! let sample = FrameSample { persons, degraded, ..stats_glue::sample_since(started) };
//! stats_glue::record_frame(&*self.obj(), &self.stats, &sample);
//! ```
//!
//! `record_frame` posts the message itself (outside the lock) every `stats-interval`
//! frames; nothing is posted with the default interval 0.

use crate::pose::Stage;
use crate::stats::{FrameSample, Snapshot, StatsWindow};
use gst::glib;
use gst::prelude::*;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

/// Name of the structure of the `stats` property and of the element messages.
pub const STRUCTURE_NAME: &str = "swarmpose-stats";

/// Property names, shared so elements and apps spell them the same.
pub const PROP_INTERVAL: &str = "stats-interval";
pub const PROP_STATS: &str = "stats";

/// The clock of every sample's `at_ns`: one process-wide origin, so samples taken by
/// different helpers stay comparable.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// A sample stamped now, with the time elapsed since `started` as processing time; the
/// caller fills persons, flags, stages and agents.
pub fn sample_since(started: Instant) -> FrameSample {
    let now = Instant::now();
    FrameSample {
        at_ns: now.saturating_duration_since(*EPOCH).as_nanos() as u64,
        processing_ns: now.saturating_duration_since(started).as_nanos() as u64,
        ..FrameSample::default()
    }
}

/// An element's window of recent frames and its message interval.
#[derive(Debug, Default)]
pub struct StatsMonitor {
    window: StatsWindow,
    /// Post a message every this many frames; 0 = never.
    interval: u32,
    /// Frames since the last message (or since the interval was set).
    since_post: u32,
}

impl StatsMonitor {
    pub fn interval(&self) -> u32 {
        self.interval
    }

    /// Sets the message interval in frames (0 = no messages) and restarts its count.
    pub fn set_interval(&mut self, frames: u32) {
        self.interval = frames;
        self.since_post = 0;
    }

    /// Forgets samples and counters (the element was restarted); keeps the interval.
    pub fn reset(&mut self) {
        self.window.reset();
        self.since_post = 0;
    }

    /// Records one frame; returns the snapshot to post when a message is due.
    pub fn record(&mut self, sample: &FrameSample) -> Option<Snapshot> {
        self.window.record(sample);
        if self.interval == 0 {
            return None;
        }
        self.since_post += 1;
        if self.since_post < self.interval {
            return None;
        }
        self.since_post = 0;
        Some(self.window.snapshot())
    }

    pub fn snapshot(&mut self) -> Snapshot {
        self.window.snapshot()
    }
}

/// `snap` as a `swarmpose-stats` structure: `element` (string), `frames` (uint64), `fps`,
/// `p50-ms`, `p95-ms` (double), `persons` (uint, latest frame), `persons-total`, `dropped`,
/// `degraded` (uint64); `<stage>-ms` (double, mean over the window) for each stage that
/// ran, e.g. `features-ms`, `consensus-ms`; `agents-active`, `agents-failed`,
/// `agents-quarantined` (uint) when the element knows them.
pub fn to_structure(element: &str, snap: &Snapshot) -> gst::Structure {
    let mut s = gst::Structure::builder(STRUCTURE_NAME)
        .field("element", element)
        .field("frames", snap.frames)
        .field("fps", snap.fps)
        .field("p50-ms", snap.p50_ms)
        .field("p95-ms", snap.p95_ms)
        .field("persons", snap.persons)
        .field("persons-total", snap.persons_total)
        .field("dropped", snap.dropped)
        .field("degraded", snap.degraded)
        .build();
    for (stage, ms) in Stage::ALL.iter().zip(snap.stages_ms) {
        if let Some(ms) = ms {
            s.set(format!("{}-ms", stage.name()), ms);
        }
    }
    if let Some(a) = snap.agents {
        s.set("agents-active", a.active);
        s.set("agents-failed", a.failed);
        s.set("agents-quarantined", a.quarantined);
    }
    s
}

/// Posts `snap` on the bus as an element message from `element`.
pub fn post(element: &impl IsA<gst::Element>, snap: &Snapshot) {
    let element = element.as_ref();
    let s = to_structure(&element.name(), snap);
    // Fails only without a bus (an element outside any pipeline): nobody to tell.
    let _ = element.post_message(gst::message::Element::builder(s).src(element).build());
}

/// The public per-frame entry point: records `sample` in `monitor` and, when
/// `stats-interval` frames have passed, posts the `swarmpose-stats` message from
/// `element`. The lock is released before posting, so a synchronous bus handler may read
/// the `stats` property. Allocates nothing on frames without a message.
pub fn record_frame(
    element: &impl IsA<gst::Element>,
    monitor: &Mutex<StatsMonitor>,
    sample: &FrameSample,
) {
    let due = lock(monitor).record(sample);
    if let Some(snap) = due {
        post(element, &snap);
    }
}

/// The two properties: `stats-interval` (read-write, mutable in PLAYING) and `stats`
/// (read-only). Append them to an element's own.
pub fn properties() -> [glib::ParamSpec; 2] {
    [
        glib::ParamSpecUInt::builder(PROP_INTERVAL)
            .nick("Stats interval")
            .blurb(
                "Post a \"swarmpose-stats\" element message (fps, p50/p95 processing time, \
                 persons, dropped/degraded frames, per-stage times) every this many frames; \
                 0 = off",
            )
            .minimum(0)
            .maximum(u32::MAX)
            .default_value(0)
            .mutable_playing()
            .build(),
        glib::ParamSpecBoxed::builder::<gst::Structure>(PROP_STATS)
            .nick("Stats")
            .blurb(
                "Live statistics over the recent frames, computed when read: the structure \
                 the messages carry (see stats-interval)",
            )
            .read_only()
            .build(),
    ]
}

/// Handles a write of one of [`properties`]; `false` when `name` is not one of them.
pub fn set_property(monitor: &Mutex<StatsMonitor>, name: &str, value: &glib::Value) -> bool {
    match name {
        PROP_INTERVAL => {
            // The property system checked the type against the ParamSpec; a mismatch
            // here would be a GLib bug, and 0 (off) is the safe reading.
            lock(monitor).set_interval(value.get().unwrap_or(0));
            true
        }
        _ => false,
    }
}

/// Handles a read of one of [`properties`]; `None` when `name` is not one of them.
pub fn property(
    element: &impl IsA<gst::Element>,
    monitor: &Mutex<StatsMonitor>,
    name: &str,
) -> Option<glib::Value> {
    match name {
        PROP_INTERVAL => Some(lock(monitor).interval().to_value()),
        PROP_STATS => {
            let snap = lock(monitor).snapshot();
            Some(to_structure(&element.as_ref().name(), &snap).to_value())
        }
        _ => None,
    }
}

/// Locks `monitor`, recovering from a panic elsewhere: stats are advisory, never worth
/// poisoning the streaming thread.
fn lock(monitor: &Mutex<StatsMonitor>) -> std::sync::MutexGuard<'_, StatsMonitor> {
    monitor.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::AgentCounts;

    #[test]
    fn messages_come_every_interval_frames() {
        let mut m = StatsMonitor::default();
        let s = FrameSample::default();
        assert!((0..10).all(|_| m.record(&s).is_none()), "off by default");
        m.set_interval(3);
        let due: Vec<bool> = (0..7).map(|_| m.record(&s).is_some()).collect();
        assert_eq!(due, [false, false, true, false, false, true, false]);
    }

    #[test]
    fn structure_has_the_documented_fields() {
        gst::init().unwrap();
        let mut snap = Snapshot {
            frames: 9,
            fps: 25.0,
            p50_ms: 1.5,
            p95_ms: 3.0,
            persons: 2,
            persons_total: 17,
            dropped: 1,
            degraded: 4,
            agents: Some(AgentCounts {
                active: 50,
                failed: 1,
                quarantined: 0,
            }),
            ..Snapshot::default()
        };
        snap.stages_ms[Stage::Consensus as usize] = Some(0.25);
        let s = to_structure("swarmconsensus0", &snap);
        assert_eq!(s.name(), STRUCTURE_NAME);
        assert_eq!(s.get::<&str>("element").unwrap(), "swarmconsensus0");
        assert_eq!(s.get::<u64>("frames").unwrap(), 9);
        assert_eq!(s.get::<f64>("fps").unwrap(), 25.0);
        assert_eq!(s.get::<f64>("p50-ms").unwrap(), 1.5);
        assert_eq!(s.get::<f64>("p95-ms").unwrap(), 3.0);
        assert_eq!(s.get::<u32>("persons").unwrap(), 2);
        assert_eq!(s.get::<u64>("persons-total").unwrap(), 17);
        assert_eq!(s.get::<u64>("dropped").unwrap(), 1);
        assert_eq!(s.get::<u64>("degraded").unwrap(), 4);
        assert_eq!(s.get::<f64>("consensus-ms").unwrap(), 0.25);
        assert!(
            !s.has_field("features-ms"),
            "stages that never ran are absent"
        );
        assert_eq!(s.get::<u32>("agents-active").unwrap(), 50);
        assert_eq!(s.get::<u32>("agents-failed").unwrap(), 1);
        assert_eq!(s.get::<u32>("agents-quarantined").unwrap(), 0);
        let none = to_structure("x", &Snapshot::default());
        assert!(!none.has_field("agents-active"));
    }
}
