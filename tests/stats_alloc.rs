//! The stats window allocates nothing per frame after construction: recording and
//! snapshots run on the streaming thread.

use gstswarmpose::pose::{Stage, StageTimings};
use gstswarmpose::stats::{AgentCounts, FrameSample, StatsWindow};

#[path = "util/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{Counting, allocations};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn record_and_snapshot_do_not_allocate() {
    let mut window = StatsWindow::new(128);
    let mut timings = StageTimings::default();
    let before = allocations();
    let mut fps = 0.0;
    // Several laps of the ring, snapshots among them.
    for i in 0..1000u64 {
        timings.set(Stage::Consensus, 1000 + i);
        window.record(&FrameSample {
            at_ns: i * 33_000_000,
            processing_ns: 500_000 + (i * 7919) % 100_000,
            persons: (i % 7) as u32,
            degraded: i % 5 == 0,
            dropped: false,
            stages: Some(timings),
            agents: Some(AgentCounts {
                active: 51,
                failed: 0,
                quarantined: 0,
            }),
        });
        if i % 30 == 0 {
            fps = window.snapshot().fps;
        }
    }
    let n = allocations() - before;
    assert_eq!(n, 0, "{n} allocations in 1000 frames");
    assert!((fps - 1e9 / 33e6).abs() < 1e-6, "{fps}");
}
