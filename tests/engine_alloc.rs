//! The CPU hot path allocates nothing after warm-up (scalar and SIMD, serial and rayon).

use gstswarmpose::engine::cpu::{CpuKernel, CpuSwarm};
use gstswarmpose::engine::synth::{self, Rng};
use gstswarmpose::engine::{MapShape, QuantParams, Swarm};

#[path = "util/counting_alloc.rs"]
mod counting_alloc;

use counting_alloc::{Counting, allocations};

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
            let before = allocations();
            for _ in 0..3 {
                cpu.run(&input, &mut out).unwrap();
            }
            let n = allocations() - before;
            assert_eq!(
                n, 0,
                "{kernel:?} parallel={parallel}: {n} allocations in 3 runs"
            );
        }
    }
}
