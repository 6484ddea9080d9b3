//! Scalar vs SIMD int8 kernels (portable `wide`, and the AVX2 / VNNI accumulations this CPU
//! has): bit-identical outputs on random swarms.

mod util;

use gstswarmpose::engine::cpu::{CpuKernel, CpuSwarm};
use gstswarmpose::engine::synth::{self, Rng};
use gstswarmpose::engine::{Activation, ConvSpec, MapShape, QuantParams, Swarm};
use util::quiet_injected_panics;

/// A random swarm of mixed architectures calibrated on a random map.
fn random_swarm(rng: &mut Rng, n: usize, in_c: usize, shape: MapShape) -> (Swarm, Vec<i8>) {
    let calib = synth::random_map(rng, shape, -1.0, 3.0);
    let input_q = QuantParams::calibrate(&calib);
    let agents = (0..n)
        .map(|_| {
            let specs = synth::random_specs(rng, in_c, 500);
            synth::random_quant_net(rng, &specs, input_q, &calib, shape).expect("quantise")
        })
        .collect();
    let input = synth::random_q_map(rng, shape.len().unwrap());
    (Swarm::new(agents).expect("swarm"), input)
}

/// Layers from `(in, out, kernel, stride, depthwise)`: ReLU6 everywhere but on the last.
fn conv_specs(layers: &[(usize, usize, usize, usize, bool)]) -> Vec<ConvSpec> {
    layers
        .iter()
        .enumerate()
        .map(|(i, &(in_c, out_c, kernel, stride, dw))| ConvSpec {
            in_c,
            out_c,
            kernel,
            stride,
            groups: if dw { in_c } else { 1 },
            activation: if i + 1 == layers.len() {
                Activation::None
            } else {
                Activation::Relu6
            },
        })
        .collect()
}

/// The SIMD kernels this CPU can run; says which it cannot (an x86-64 CI machine has AVX2).
fn simd_kernels(swarm: &Swarm, shape: MapShape) -> Vec<CpuSwarm> {
    CpuKernel::ALL[1..]
        .iter()
        .filter_map(|&k| match CpuSwarm::new(swarm, shape, k) {
            Ok(cpu) => Some(cpu),
            Err(e) => {
                eprintln!("kernel {k:?} not tested here: {e}");
                None
            }
        })
        .collect()
}

#[test]
fn scalar_and_every_simd_kernel_are_bit_identical_on_mixed_architectures() {
    let mut rng = Rng::new(7);
    let mut compared = 0;
    for &(h, w, c) in &[(13, 21, 5), (16, 16, 16), (7, 9, 1), (1, 1, 3), (33, 40, 8)] {
        let shape = MapShape::new(h, w, c);
        let (swarm, input) = random_swarm(&mut rng, 24, c, shape);
        let mut scalar = CpuSwarm::new(&swarm, shape, CpuKernel::Scalar).unwrap();
        let a = scalar.run_quantized(&input).unwrap().to_vec();
        assert_eq!(a.len(), scalar.output_len());
        assert!(
            a.iter().any(|&v| v != a[0]),
            "degenerate output for {shape:?}"
        );
        let input2 = synth::random_q_map(&mut rng, input.len());
        let a2 = scalar.run_quantized(&input2).unwrap().to_vec();
        for mut simd in simd_kernels(&swarm, shape) {
            let (kernel, isa) = (simd.kernel(), simd.isa_name());
            let b = simd.run_quantized(&input).unwrap().to_vec();
            for agent in 0..swarm.len() {
                let r = scalar.offsets()[agent]..scalar.offsets()[agent + 1];
                assert_eq!(
                    a[r.clone()],
                    b[r],
                    "agent {agent} differs on {shape:?} ({kernel:?}, {isa})"
                );
            }
            // Second frame through the same (reused) workspaces.
            assert_eq!(a2, simd.run_quantized(&input2).unwrap(), "{kernel:?}");
            compared += 1;
        }
    }
    // Simd and SimdPortable run everywhere.
    assert!(compared >= 10);
}

/// Stem-like layers: many input pairs, odd output pair counts, rows of 8k + 1..8k + 8
/// positions, stride 1 and 2, dense and depthwise.
#[test]
fn every_simd_kernel_matches_scalar_on_stem_sized_layers() {
    let mut rng = Rng::new(5);
    for &(h, w, c, out_c) in &[
        (12, 12, 112, 57),
        (9, 17, 40, 66),
        (6, 50, 7, 3),
        (33, 34, 3, 9),
    ] {
        let shape = MapShape::new(h, w, c);
        let calib = synth::random_map(&mut rng, shape, -1.0, 3.0);
        let input_q = QuantParams::calibrate(&calib);
        // (in, out, kernel, stride, depthwise): 1x1 expand, depthwise at stride 1 and 2, a
        // dense 3x3 at stride 2 (as the stem's first layer) and a dense 3x3 at stride 1.
        let specs = conv_specs(&[
            (c, out_c, 1, 1, false),
            (out_c, out_c, 3, 1, true),
            (out_c, out_c, 3, 2, true),
            (out_c, 6, 3, 2, false),
            (6, 5, 3, 1, false),
        ]);
        let net = synth::random_quant_net(&mut rng, &specs, input_q, &calib, shape).unwrap();
        let swarm = Swarm::new(vec![net]).unwrap();
        let input = synth::random_q_map(&mut rng, shape.len().unwrap());
        let mut scalar = CpuSwarm::new(&swarm, shape, CpuKernel::Scalar).unwrap();
        let a = scalar.run_quantized(&input).unwrap().to_vec();
        assert!(a.iter().any(|&v| v != a[0]), "degenerate output");
        for mut simd in simd_kernels(&swarm, shape) {
            let isa = simd.isa_name();
            assert_eq!(a, simd.run_quantized(&input).unwrap(), "{shape:?} on {isa}");
        }
    }
}

/// A one-agent swarm above `PARALLEL_MIN_MACS` (a stem) runs its layers on a team of pool
/// threads, parts of each layer's output planes per thread, and the parts before a 1x1 layer
/// repack their own output for it: bit-identical to the serial pass and to the scalar kernel,
/// with pools of 2, 3 and 4 threads, frame after frame.
#[test]
fn a_stem_split_over_a_team_of_threads_matches_the_serial_pass() {
    let mut rng = Rng::new(17);
    let shape = MapShape::new(40, 36, 21);
    let calib = synth::random_map(&mut rng, shape, -1.0, 3.0);
    let input_q = QuantParams::calibrate(&calib);
    // (in, out, kernel, stride, depthwise): a 1x1 first layer (repacked from the input), 1x1
    // after 1x1 and after a depthwise layer (repacked by the parts), odd pair counts, and
    // layers too small to split.
    let specs = conv_specs(&[
        (21, 46, 1, 1, false),
        (46, 93, 1, 1, false),
        (93, 93, 3, 1, true),
        (93, 30, 1, 1, false),
        (30, 30, 3, 2, true),
        (30, 61, 1, 1, false),
        (61, 7, 3, 1, false),
    ]);
    let net = synth::random_quant_net(&mut rng, &specs, input_q, &calib, shape).unwrap();
    let swarm = Swarm::new(vec![net]).unwrap();
    let inputs: Vec<Vec<i8>> = (0..3)
        .map(|_| synth::random_q_map(&mut rng, shape.len().unwrap()))
        .collect();
    let mut scalar = CpuSwarm::new(&swarm, shape, CpuKernel::Scalar).unwrap();
    assert!(scalar.macs() >= gstswarmpose::engine::cpu::PARALLEL_MIN_MACS);
    let want: Vec<Vec<i8>> = inputs
        .iter()
        .map(|i| scalar.run_quantized(i).unwrap().to_vec())
        .collect();
    assert!(
        want[0].iter().any(|&v| v != want[0][0]),
        "degenerate output"
    );
    for threads in [2, 3, 4] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| {
            for mut simd in simd_kernels(&swarm, shape) {
                let (kernel, isa) = (simd.kernel(), simd.isa_name());
                assert!(simd.is_parallel(), "{kernel:?}: the stem is split");
                for (input, want) in inputs.iter().zip(&want) {
                    let got = simd.run_quantized(input).unwrap().to_vec();
                    assert_eq!(&got, want, "{threads} threads, {kernel:?} ({isa})");
                }
                simd.set_parallel(false);
                assert!(!simd.is_parallel());
                assert_eq!(
                    simd.run_quantized(&inputs[0]).unwrap(),
                    &want[0][..],
                    "serial {kernel:?} ({isa})"
                );
            }
        });
    }
}

#[test]
fn parallel_and_serial_simd_agree_and_f32_matches_dequantised_int8() {
    let mut rng = Rng::new(11);
    let shape = MapShape::new(64, 64, 16);
    let calib = synth::random_map(&mut rng, shape, -1.0, 3.0);
    let input_q = QuantParams::calibrate(&calib);
    let specs = synth::agent_specs(16, 3);
    let agents = (0..20)
        .map(|_| synth::random_quant_net(&mut rng, &specs, input_q, &calib, shape).unwrap())
        .collect();
    let swarm = Swarm::new(agents).unwrap();
    let input = synth::random_q_map(&mut rng, shape.len().unwrap());
    let mut simd = CpuSwarm::new(&swarm, shape, CpuKernel::Simd).unwrap();
    let mut out_par = vec![0.0f32; simd.output_len()];
    simd.run(&input, &mut out_par).unwrap();
    let q = simd.run_quantized(&input).unwrap().to_vec();
    simd.set_parallel(false);
    let mut out_ser = vec![0.0f32; simd.output_len()];
    simd.run(&input, &mut out_ser).unwrap();
    assert_eq!(out_par, out_ser);
    for (a, net) in swarm.agents().iter().enumerate() {
        let oq = net.output_q();
        for i in simd.offsets()[a]..simd.offsets()[a + 1] {
            assert_eq!(out_ser[i], oq.dequantize(q[i]));
        }
    }
}

#[test]
fn wrong_input_and_output_lengths_are_errors() {
    let mut rng = Rng::new(3);
    let shape = MapShape::new(8, 8, 4);
    let (swarm, input) = random_swarm(&mut rng, 3, 4, shape);
    let mut cpu = CpuSwarm::new(&swarm, shape, CpuKernel::Simd).unwrap();
    let mut out = vec![0.0; cpu.output_len()];
    assert!(cpu.run(&input[1..], &mut out).is_err());
    assert!(cpu.run(&input, &mut out[1..]).is_err());
    assert!(CpuSwarm::new(&swarm, MapShape::new(8, 8, 5), CpuKernel::Scalar).is_err());
}

#[test]
fn a_panicking_agent_is_isolated_and_runs_afresh_once_healed() {
    quiet_injected_panics();
    let mut rng = Rng::new(21);
    // Serial and parallel (agents over threads), both kernels.
    for (shape, n) in [
        (MapShape::new(13, 21, 5), 6),
        (MapShape::new(64, 64, 16), 20),
    ] {
        let (swarm, input) = random_swarm(&mut rng, n, shape.c, shape);
        for kernel in [CpuKernel::Scalar, CpuKernel::Simd, CpuKernel::SimdPortable] {
            let mut cpu = CpuSwarm::new(&swarm, shape, kernel).unwrap();
            let mut clean = vec![0.0f32; cpu.output_len()];
            cpu.run(&input, &mut clean).unwrap();
            assert!((0..n).all(|a| !cpu.agent_failed(a)));

            let bad = [1, n - 1];
            cpu.set_sabotaged(&bad);
            let mut out = vec![0.0f32; cpu.output_len()];
            cpu.run(&input, &mut out).unwrap();
            let o = cpu.offsets().to_vec();
            for a in 0..n {
                let r = o[a]..o[a + 1];
                if bad.contains(&a) {
                    assert!(cpu.agent_failed(a), "agent {a} flagged ({kernel:?})");
                    assert!(
                        out[r].iter().all(|&v| v == 0.0),
                        "no evidence from agent {a}"
                    );
                } else {
                    assert!(!cpu.agent_failed(a));
                    assert_eq!(out[r.clone()], clean[r], "agent {a} untouched ({kernel:?})");
                }
            }

            // Healed: every agent, the failed ones included, runs again from its weights.
            cpu.set_sabotaged(&[]);
            cpu.run(&input, &mut out).unwrap();
            assert_eq!(out, clean, "after the restart ({kernel:?}, {shape:?})");
            assert!((0..n).all(|a| !cpu.agent_failed(a)));
        }
    }
    // A one-agent swarm splits its layers over rayon: a panic there is caught as well.
    let shape = MapShape::new(64, 64, 16);
    let (swarm, input) = random_swarm(&mut rng, 1, 16, shape);
    let mut cpu = CpuSwarm::new(&swarm, shape, CpuKernel::Simd).unwrap();
    cpu.set_sabotaged(&[0]);
    let mut out = vec![0.0f32; cpu.output_len()];
    cpu.run(&input, &mut out).unwrap();
    assert!(cpu.agent_failed(0));
}
