//! The stats window allocates nothing per frame after construction: recording and
//! snapshots run on the streaming thread.

use gstswarmpose::pose::{Stage, StageTimings};
use gstswarmpose::stats::{AgentCounts, FrameSample, StatsWindow};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts every allocation in the process.
struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn record_and_snapshot_do_not_allocate() {
    let mut window = StatsWindow::new(128);
    let mut timings = StageTimings::default();
    let before = ALLOCS.load(Ordering::SeqCst);
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
    let n = ALLOCS.load(Ordering::SeqCst) - before;
    assert_eq!(n, 0, "{n} allocations in 1000 frames");
    assert!((fps - 1e9 / 33e6).abs() < 1e-6, "{fps}");
}
