//! Where one pass of the shipped stem goes, layer by layer, on one thread: for each SIMD
//! kernel this CPU has, the fastest of 40 passes per layer, its MACs and GMAC/s.
//! Criterion times whole passes (`benches/engine.rs`); this splits one.
//!
//! `cargo bench --locked --bench stem_layers [-- KERNEL]` (KERNEL: a `CpuKernel` name such as
//! `SimdAvx2` or `Simd`; default: every SIMD kernel this CPU runs, `Simd` aside).

use gstswarmpose::engine::Swarm;
use gstswarmpose::engine::bundle::Bundle;
use gstswarmpose::engine::cpu::{CpuKernel, CpuSwarm};
use gstswarmpose::engine::synth::{self, Rng};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `cargo test --all-targets` runs this binary without `--bench`: one pass each, as a check.
    let reps = if args.iter().any(|a| a == "--bench") {
        40
    } else {
        1
    };
    let only = args.iter().find(|a| !a.starts_with('-'));
    let bundle = Bundle::from_bytes(include_bytes!("../models/swarmpose.bundle")).unwrap();
    let net = bundle.stem.clone().expect("the shipped bundle has a stem");
    let shape = bundle.manifest.stem.as_ref().unwrap().input;
    let stem = Swarm::new(vec![net.clone()]).unwrap();
    let input = synth::random_q_map(&mut Rng::new(4), shape.len().unwrap());
    if let Some(name) = only
        && !CpuKernel::ALL.iter().any(|k| *name == format!("{k:?}"))
    {
        eprintln!("no kernel {name}: one of {:?}", CpuKernel::ALL);
        std::process::exit(2);
    }
    for kernel in CpuKernel::ALL {
        // `Simd` is the best of the others: listed only when asked for by name. The scalar
        // kernel has no layer planes to time.
        let wanted = match &only {
            Some(name) => name.as_str() == format!("{kernel:?}"),
            None => kernel != CpuKernel::Simd,
        };
        if !wanted || kernel == CpuKernel::Scalar {
            continue;
        }
        let mut cpu = match CpuSwarm::new(&stem, shape, kernel) {
            Ok(cpu) => cpu,
            Err(e) => {
                eprintln!("{kernel:?} skipped: {e}");
                continue;
            }
        };
        cpu.set_parallel(false);
        let times = cpu.layer_times(&input, reps).unwrap();
        assert_eq!(times.len(), net.layers.len() + 1);
        let total: f64 = times.iter().map(|t| t.as_secs_f64()).sum();
        assert!(total > 0.0);
        // The same passes whole (input packing and unpacking included): each layer's minimum
        // above is its best moment, so at a steady machine speed their sum is at most this.
        let whole = (0..reps)
            .map(|_| {
                let t = std::time::Instant::now();
                std::hint::black_box(cpu.run_quantized(&input).unwrap()[0]);
                t.elapsed().as_secs_f64()
            })
            .fold(f64::MAX, f64::min);
        println!(
            "{kernel:?} ({}): {:.2} ms a pass (sum of per-layer minima of {reps} passes; \
             fastest whole pass {:.2} ms)",
            cpu.isa_name(),
            total * 1e3,
            whole * 1e3
        );
        println!("layer  in -> out  k s  kind   out HxW    MACs (M)   us    GMAC/s  share");
        let mut map = shape;
        for (l, (layer, t)) in net.layers.iter().zip(&times).enumerate() {
            let s = &layer.spec;
            map = s.out_shape(map).unwrap();
            let dw = s.groups > 1;
            // as `chain_macs` counts them
            let macs = (map.h * map.w * map.c * s.fan_in()) as f64;
            let secs = t.as_secs_f64();
            println!(
                "{l:>5} {:>4} -> {:<4} {} {}  {:<6} {:>3}x{:<5} {:>8.2} {:>7.1} {:>8.1} {:>5.1}%",
                s.in_c,
                s.out_c,
                s.kernel,
                s.stride,
                if dw { "dw" } else { "dense" },
                map.h,
                map.w,
                macs / 1e6,
                secs * 1e6,
                macs / secs / 1e9,
                100.0 * secs / total
            );
        }
        let unpack = times.last().unwrap().as_secs_f64();
        println!(
            "unpack {:>48.1} {:>15.1}%\n",
            unpack * 1e6,
            100.0 * unpack / total
        );
    }
}
