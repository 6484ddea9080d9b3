//! Agent engine benches: one agent at one position, a 100-agent swarm over a 64x64x16 map
//! on the scalar, SIMD (single thread and rayon) and wgpu backends, and one pass of the shipped
//! stem on one thread with every SIMD kernel this CPU has (portable `wide`, AVX2, VNNI).
//!
//! `cargo bench --bench engine` (set `NODEVICE_SELECT=1` to silence a Mesa warning).

use criterion::{Criterion, criterion_group, criterion_main};
use gstswarmpose::engine::bundle::Bundle;
use gstswarmpose::engine::cpu::{CpuKernel, CpuSwarm};
use gstswarmpose::engine::gpu::GpuSwarm;
use gstswarmpose::engine::synth::{self, Rng};
use gstswarmpose::engine::{MapShape, QuantParams, Swarm};
use std::hint::black_box;
use std::time::Duration;

/// `n` agents of the reference architecture (16 -> 12 ReLU, dw3x3 ReLU, 12 -> 3: 363 params).
fn swarm(n: usize, shape: MapShape) -> Swarm {
    let mut rng = Rng::new(1);
    let calib = synth::random_map(&mut rng, shape, -1.0, 3.0);
    let input_q = QuantParams::calibrate(&calib);
    let specs = synth::agent_specs(16, 3);
    let agents = (0..n)
        .map(|_| synth::random_quant_net(&mut rng, &specs, input_q, &calib, shape).unwrap())
        .collect();
    Swarm::new(agents).unwrap()
}

fn one_agent_one_position(c: &mut Criterion) {
    let shape = MapShape::new(1, 1, 16);
    let s = swarm(1, shape);
    let input = synth::random_q_map(&mut Rng::new(2), 16);
    let mut g = c.benchmark_group("one_agent_363_params_one_position");
    for (name, kernel) in [("scalar", CpuKernel::Scalar), ("simd", CpuKernel::Simd)] {
        let mut cpu = CpuSwarm::new(&s, shape, kernel).unwrap();
        let mut out = vec![0.0f32; cpu.output_len()];
        g.bench_function(name, |b| {
            b.iter(|| cpu.run(black_box(&input), black_box(&mut out)).unwrap())
        });
    }
    g.finish();
}

fn swarm_100_agents_64x64(c: &mut Criterion) {
    let shape = MapShape::new(64, 64, 16);
    let s = swarm(100, shape);
    let input = synth::random_q_map(&mut Rng::new(3), shape.len().unwrap());
    let mut g = c.benchmark_group("swarm_100_agents_64x64x16");
    let cases = [
        ("scalar", CpuKernel::Scalar, false),
        ("simd_1thread", CpuKernel::Simd, false),
        ("simd_rayon", CpuKernel::Simd, true),
    ];
    for (name, kernel, parallel) in cases {
        let mut cpu = CpuSwarm::new(&s, shape, kernel).unwrap();
        cpu.set_parallel(parallel);
        let mut out = vec![0.0f32; cpu.output_len()];
        g.bench_function(name, |b| {
            b.iter(|| cpu.run(black_box(&input), black_box(&mut out)).unwrap())
        });
    }
    match GpuSwarm::new(&s, shape) {
        Ok(mut gpu) => {
            eprintln!("wgpu adapter: {}", gpu.adapter_name());
            let mut out = vec![0.0f32; gpu.output_len()];
            g.bench_function("wgpu", |b| {
                b.iter(|| gpu.run(black_box(&input), black_box(&mut out)).unwrap())
            });
        }
        Err(e) => eprintln!("wgpu bench skipped: {e}"),
    }
    g.finish();
}

fn shipped_stem_one_thread(c: &mut Criterion) {
    let bundle = Bundle::from_bytes(include_bytes!("../models/swarmpose.bundle")).unwrap();
    let shape = bundle.manifest.stem.as_ref().unwrap().input;
    let stem = Swarm::new(vec![bundle.stem.clone().unwrap()]).unwrap();
    let input = synth::random_q_map(&mut Rng::new(4), shape.len().unwrap());
    let mut g = c.benchmark_group(format!("stem_{}x{}_1thread", shape.h, shape.w));
    for kernel in CpuKernel::ALL {
        let Ok(mut cpu) = CpuSwarm::new(&stem, shape, kernel) else {
            eprintln!("{kernel:?} skipped: not supported by this CPU");
            continue;
        };
        cpu.set_parallel(false);
        eprintln!(
            "stem: {} MACs, {kernel:?} runs {}",
            cpu.macs(),
            cpu.isa_name()
        );
        g.bench_function(format!("{kernel:?}"), |b| {
            b.iter(|| black_box(cpu.run_quantized(black_box(&input)).unwrap()[0]))
        });
    }
    // The default: best kernel, each layer's output channels split over the rayon pool.
    let mut cpu = CpuSwarm::new(&stem, shape, CpuKernel::Simd).unwrap();
    g.bench_function(
        format!("Simd_rayon_{}", rayon::current_num_threads()),
        |b| b.iter(|| black_box(cpu.run_quantized(black_box(&input)).unwrap()[0])),
    );
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = one_agent_one_position, swarm_100_agents_64x64, shipped_stem_one_thread
}
criterion_main!(benches);
