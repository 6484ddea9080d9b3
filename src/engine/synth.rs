//! Deterministic synthetic nets and maps (tests, benches, examples). Not used at inference.

use super::EngineError;
use super::net::{Activation, ConvSpec, FloatLayer, FloatNet, MapShape};
use super::quant::{QuantNet, QuantParams, quantize_net};

/// SplitMix64: tiny, seedable, good enough for test data.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// The reference agent architecture of the benches: 1x1 `in_c`->12 ReLU, depthwise 3x3 ReLU,
/// 1x1 12->`out_c` (no activation). 16 in / 3 out gives 204 + 120 + 39 = 363 parameters.
pub fn agent_specs(in_c: usize, out_c: usize) -> Vec<ConvSpec> {
    let conv = |in_c, out_c, kernel, groups, activation| ConvSpec {
        in_c,
        out_c,
        kernel,
        stride: 1,
        groups,
        activation,
    };
    vec![
        conv(in_c, 12, 1, 1, Activation::Relu),
        conv(12, 12, 3, 12, Activation::Relu),
        conv(12, out_c, 1, 1, Activation::None),
    ]
}

/// A float net with He-like uniform random weights and small random biases.
pub fn random_float_net(rng: &mut Rng, specs: &[ConvSpec]) -> FloatNet {
    let layers = specs
        .iter()
        .map(|&spec| {
            let bound = (3.0 / spec.fan_in() as f32).sqrt();
            FloatLayer {
                spec,
                weights: (0..spec.weight_len())
                    .map(|_| rng.uniform(-bound, bound))
                    .collect(),
                bias: (0..spec.out_c).map(|_| rng.uniform(-0.1, 0.1)).collect(),
            }
        })
        .collect();
    FloatNet { layers }
}

/// A random float map with values in `[lo, hi)`.
pub fn random_map(rng: &mut Rng, shape: MapShape, lo: f32, hi: f32) -> Vec<f32> {
    (0..shape.h * shape.w * shape.c)
        .map(|_| rng.uniform(lo, hi))
        .collect()
}

/// A random quantised agent calibrated on `calib` (float maps of shape `shape`).
pub fn random_quant_net(
    rng: &mut Rng,
    specs: &[ConvSpec],
    input_q: QuantParams,
    calib: &[f32],
    shape: MapShape,
) -> Result<QuantNet, EngineError> {
    let net = random_float_net(rng, specs);
    quantize_net(&net, input_q, &[(calib, shape)])
}

/// A random int8 map (uniform over all 256 codes).
pub fn random_q_map(rng: &mut Rng, len: usize) -> Vec<i8> {
    (0..len).map(|_| rng.next_u64() as i8).collect()
}

/// A random layer chain reading `in_c` channels: 1 to 4 layers mixing dense and depthwise,
/// 1x1 and 3x3, stride 1 and 2, odd and even channel counts and every activation, kept under
/// `max_params` parameters (best effort: retried until it fits).
pub fn random_specs(rng: &mut Rng, in_c: usize, max_params: usize) -> Vec<ConvSpec> {
    const ACTS: [Activation; 4] = [
        Activation::None,
        Activation::Relu,
        Activation::Relu6,
        Activation::Sigmoid,
    ];
    loop {
        let n = 1 + rng.below(4);
        let mut specs = Vec::with_capacity(n);
        let mut c = in_c;
        for _ in 0..n {
            let depthwise = rng.below(3) == 0;
            let kernel = if rng.below(2) == 0 { 1 } else { 3 };
            let stride = if rng.below(4) == 0 { 2 } else { 1 };
            let out_c = if depthwise { c } else { 1 + rng.below(12) };
            specs.push(ConvSpec {
                in_c: c,
                out_c,
                kernel,
                stride,
                groups: if depthwise { c } else { 1 },
                activation: ACTS[rng.below(4)],
            });
            c = out_c;
        }
        if specs.iter().map(ConvSpec::param_count).sum::<usize>() <= max_params {
            return specs;
        }
    }
}

/// A random but structurally complete detector bundle: a 128x128x3 -> 8x8x32 stem (stride 16),
/// `body` agents with 5 outputs and 3 keypoint agents per COCO keypoint with 3 outputs, the
/// tiers and manifest the shipped bundle has. For tests and benches of the detection plumbing
/// (its outputs are meaningless).
pub fn detector_bundle(seed: u64, body_agents: usize) -> Result<super::bundle::Bundle, String> {
    use super::bundle::{AgentInfo, Bundle, Provenance, TierManifest};
    let mut rng = Rng::new(seed);
    let conv = |in_c, out_c, kernel, stride, groups| ConvSpec {
        in_c,
        out_c,
        kernel,
        stride,
        groups,
        activation: Activation::Relu6,
    };
    let stem_specs = [
        conv(3, 8, 3, 2, 1),
        conv(8, 8, 3, 2, 8),
        conv(8, 16, 1, 1, 1),
        conv(16, 16, 3, 2, 16),
        conv(16, 32, 1, 1, 1),
        conv(32, 32, 3, 2, 32),
        conv(32, 32, 1, 1, 1),
    ];
    let input = MapShape::new(128, 128, 3);
    let pixel_q = QuantParams {
        scale: 1.0 / 127.5,
        zero_point: 0,
    };
    let calib = random_map(&mut rng, input, -1.0, 1.0);
    let stem = random_quant_net(&mut rng, &stem_specs, pixel_q, &calib, input)
        .map_err(|e| e.to_string())?;
    let feat_q = stem.output_q();
    let grid = MapShape::new(8, 8, 32);
    let feat = random_map(&mut rng, grid, 0.0, 6.0);
    let head = |out_c| {
        let mut s = vec![conv(32, 8, 1, 1, 1), conv(8, 8, 3, 1, 8)];
        s.push(ConvSpec {
            activation: Activation::None,
            ..conv(8, out_c, 1, 1, 1)
        });
        s
    };
    let mut agents = Vec::new();
    for b in 0..body_agents {
        let net =
            random_quant_net(&mut rng, &head(5), feat_q, &feat, grid).map_err(|e| e.to_string())?;
        let info = AgentInfo {
            name: format!("body_{b}"),
            tier: "body".into(),
            keypoint: "person".into(),
            specialisation: "synthetic".into(),
        };
        agents.push((info, net));
    }
    for name in crate::pose::KEYPOINT_NAMES {
        for a in 0..3 {
            let net = random_quant_net(&mut rng, &head(3), feat_q, &feat, grid)
                .map_err(|e| e.to_string())?;
            let info = AgentInfo {
                name: format!("{name}_{a}"),
                tier: "keypoint".into(),
                keypoint: name.into(),
                specialisation: "synthetic".into(),
            };
            agents.push((info, net));
        }
    }
    let tier = |name: &str| TierManifest {
        name: name.into(),
        channels: 32,
        input_quant: feat_q,
    };
    let mut tiers = vec![tier("keypoint")];
    if body_agents > 0 {
        tiers.insert(0, tier("body"));
    }
    Bundle::new(
        tiers,
        Some(("retina".into(), input, stem)),
        agents,
        Provenance {
            command: format!("engine::synth::detector_bundle({seed}, {body_agents})"),
            data: "random".into(),
            seed,
            notes: "synthetic weights for plumbing tests".into(),
        },
    )
    .map_err(|e| e.to_string())
}
