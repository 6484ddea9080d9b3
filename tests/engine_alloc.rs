//! The CPU hot path allocates nothing after warm-up (scalar and SIMD, serial and rayon).

use gstswarmpose::engine::cpu::{CpuKernel, CpuSwarm};
use gstswarmpose::engine::synth::{self, Rng};
use gstswarmpose::engine::{MapShape, QuantParams, Swarm};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts every allocation in the process (all threads, rayon's included).
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
fn cpu_run_does_not_allocate_after_warm_up() {
    let mut rng = Rng::new(8);
    let shape = MapShape::new(32, 32, 16);
    let calib = synth::random_map(&mut rng, shape, -1.0, 3.0);
    let input_q = QuantParams::calibrate(&calib);
    let agents = (0..40)
        .map(|_| {
            let specs = synth::random_specs(&mut rng, 16, 500);
            synth::random_quant_net(&mut rng, &specs, input_q, &calib, shape).unwrap()
        })
        .collect();
    let swarm = Swarm::new(agents).unwrap();
    let input = synth::random_q_map(&mut rng, shape.len().unwrap());
    for kernel in [CpuKernel::Scalar, CpuKernel::Simd] {
        for parallel in [false, true] {
            let mut cpu = CpuSwarm::new(&swarm, shape, kernel).unwrap();
            cpu.set_parallel(parallel);
            let mut out = vec![0.0f32; cpu.output_len()];
            cpu.run(&input, &mut out).unwrap();
            let before = ALLOCS.load(Ordering::SeqCst);
            for _ in 0..3 {
                cpu.run(&input, &mut out).unwrap();
            }
            let n = ALLOCS.load(Ordering::SeqCst) - before;
            assert_eq!(
                n, 0,
                "{kernel:?} parallel={parallel}: {n} allocations in 3 runs"
            );
        }
    }
}
