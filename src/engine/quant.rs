//! Int8 quantisation: the integer contract shared by the scalar CPU, SIMD CPU and WGSL paths.
//!
//! * Weights: int8 symmetric per output channel, `w = q * weight_scale[c]`, `q` in `-127..=127`.
//! * Activations: int8 asymmetric per tensor, `x = (q - zero_point) * scale`. After a ReLU the
//!   calibrated minimum is 0, so `zero_point = -128`: the same 256 levels as a u8 map with zero
//!   point 0, without a second storage type.
//! * Accumulation: `acc = bias_q[c] + sum (q_x - zp_x) * q_w` in i32. Zero padding contributes
//!   nothing because a padded input is exactly `zp_x`. [`MAX_FAN_IN`] and the bias bound keep
//!   `|acc| < 2^29`, which the requantiser relies on.
//! * Requantisation: `acc * M` with `M = s_in * s_w[c] / s_target` as an integer fixed-point
//!   multiplier (see [`Requant`]), then `+ zp`, clamp (ReLU/ReLU6 are clamps), and for sigmoid a
//!   256-entry lookup table. All integer, so every backend is bit-exact.
//! * The final layer is dequantised to f32 as `(q - zp) as f32 * scale` (one IEEE multiply, exact
//!   on every backend too).

use super::EngineError;
use super::net::{Activation, ConvSpec, FloatNet, MapShape, validate_specs};
use serde::{Deserialize, Serialize};

/// Largest accepted fan-in (`in_c / groups * k * k`): `2048 * 255 * 127 < 2^27`, far inside
/// [`ACC_LIMIT`]. The stem's folded residual projections need 1120.
pub const MAX_FAN_IN: usize = 2048;
/// Accumulators (bias included) stay strictly below this magnitude. The split multiply of
/// [`Requant::apply`] needs `|acc >> 15| < 2^15` (16-bit `pmaddwd` lanes on SIMD) and
/// `|hi * m| + 2^15 + 2^(shift - 16) < 2^31` with `m < 2^15`, `shift <= 46`: both hold below 2^29.
pub const ACC_LIMIT: i64 = 1 << 29;
/// Largest representable requantisation multiplier (exclusive). Quantisation raises the target
/// scale when needed; a larger `M` would mean the output is finer than one accumulator step.
pub const MAX_MULTIPLIER: f64 = 0.5;

/// Per-tensor activation quantisation: `x = (q - zero_point) * scale`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantParams {
    pub scale: f32,
    pub zero_point: i32,
}

impl QuantParams {
    /// Asymmetric int8 parameters covering `[min, max]` (widened to include 0, so zero padding
    /// and ReLU outputs are exact).
    pub fn from_range(min: f32, max: f32) -> Self {
        Self::from_range_min_scale(min, max, 0.0)
    }

    /// As [`Self::from_range`] but with `scale >= min_scale`.
    pub fn from_range_min_scale(min: f32, max: f32, min_scale: f32) -> Self {
        let min = if min.is_finite() { min.min(0.0) } else { 0.0 };
        let max = if max.is_finite() { max.max(0.0) } else { 0.0 };
        let scale = ((max - min) / 255.0).max(min_scale).max(1e-8);
        let zero_point = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i32;
        Self { scale, zero_point }
    }

    /// Parameters covering the values of a float tensor.
    pub fn calibrate(values: &[f32]) -> Self {
        let (lo, hi) = min_max(values);
        Self::from_range(lo, hi)
    }

    pub fn quantize(&self, x: f32) -> i8 {
        ((x / self.scale).round() + self.zero_point as f32).clamp(-128.0, 127.0) as i8
    }

    pub fn dequantize(&self, q: i8) -> f32 {
        (i32::from(q) - self.zero_point) as f32 * self.scale
    }

    pub fn validate(&self) -> Result<(), String> {
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(format!("scale {} is not finite and positive", self.scale));
        }
        if !(-128..=127).contains(&self.zero_point) {
            return Err(format!("zero point {} outside -128..=127", self.zero_point));
        }
        Ok(())
    }
}

fn min_max(values: &[f32]) -> (f32, f32) {
    values
        .iter()
        .filter(|v| v.is_finite())
        .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// Fixed-point multiplier `M ~= multiplier / 2^shift`, `multiplier < 2^15`, `16 <= shift <= 46`.
///
/// `apply(acc) = floor((acc * multiplier + 2^(shift-1)) / 2^shift)` (round half up), computed
/// without 64-bit arithmetic by splitting `acc = hi * 2^15 + lo`, `0 <= lo < 2^15`:
/// `(hi*m + ((lo*m) >> 15) + 2^(shift-16)) >> (shift-15)`. Every term fits in i32 when
/// `|acc| < 2^29`, so the WGSL shader (no i64) and the SIMD path (16-bit multiplies via
/// `pmaddwd`) compute the identical value. 15 bits of multiplier give a relative error below
/// 2^-14, far under the half-LSB of the int8 output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requant {
    pub multiplier: i32,
    pub shift: u32,
}

impl Requant {
    pub const MIN_SHIFT: u32 = 16;
    pub const MAX_SHIFT: u32 = 46;

    pub fn from_real(m: f64) -> Result<Self, String> {
        if !(m.is_finite() && (0.0..MAX_MULTIPLIER).contains(&m)) {
            return Err(format!(
                "requantisation multiplier {m} outside [0, {MAX_MULTIPLIER})"
            ));
        }
        let mut shift = Self::MIN_SHIFT;
        while shift < Self::MAX_SHIFT && m * ((1u64 << shift) as f64) < 16384.0 {
            shift += 1;
        }
        let multiplier = (m * ((1u64 << shift) as f64)).round().min(32767.0) as i32;
        Ok(Self { multiplier, shift })
    }

    /// Integer requantisation; `acc` must satisfy `|acc| < 2^29` ([`ACC_LIMIT`]).
    #[inline(always)]
    pub fn apply(self, acc: i32) -> i32 {
        let hi = acc >> 15;
        let lo = acc & 0x7fff;
        let m = self.multiplier;
        (hi * m + ((lo * m) >> 15) + (1 << (self.shift - 16))) >> (self.shift - 15)
    }
}

/// One quantised layer. Fields above `requant` are the stored contract (bundle); the rest is
/// derived by [`QuantLayer::new`] so every producer derives them identically.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantLayer {
    pub spec: ConvSpec,
    /// `[out_c, in_c/groups, k, k]`, values in `-127..=127`.
    pub weights: Vec<i8>,
    pub weight_scales: Vec<f32>,
    /// `round(b / (s_in * s_w[c]))`.
    pub bias: Vec<i32>,
    pub input_q: QuantParams,
    pub output_q: QuantParams,
    /// Sigmoid only: quantisation of the pre-activation, the index space of the lookup table.
    pub pre_activation_q: Option<QuantParams>,
    /// Derived: per output channel, maps `acc` to the requantisation target's scale.
    pub requant: Vec<Requant>,
    /// Derived: zero point of the requantisation target.
    pub target_zp: i32,
    /// Derived: inclusive clamp on `requant + target_zp` (the ReLU/ReLU6 clamp lives here).
    pub clamp: (i32, i32),
    /// Derived, sigmoid only: `lut[q_pre + 128]` is the output `q`.
    pub lut: Option<Vec<i8>>,
}

impl QuantLayer {
    /// Validates the stored fields and derives the requantisation data.
    pub fn new(
        spec: ConvSpec,
        weights: Vec<i8>,
        weight_scales: Vec<f32>,
        bias: Vec<i32>,
        input_q: QuantParams,
        output_q: QuantParams,
        pre_activation_q: Option<QuantParams>,
    ) -> Result<Self, String> {
        spec.validate()?;
        if spec.fan_in() > MAX_FAN_IN {
            return Err(format!("fan-in {} > {MAX_FAN_IN}", spec.fan_in()));
        }
        if weights.len() != spec.weight_len() {
            return Err(format!(
                "{} weights, expected {}",
                weights.len(),
                spec.weight_len()
            ));
        }
        if weight_scales.len() != spec.out_c || bias.len() != spec.out_c {
            return Err(format!(
                "{} weight scales / {} biases, expected {}",
                weight_scales.len(),
                bias.len(),
                spec.out_c
            ));
        }
        if weights.contains(&i8::MIN) {
            return Err("weight -128 (symmetric range is -127..=127)".into());
        }
        let bias_limit = ACC_LIMIT - 1 - (spec.fan_in() as i64) * 255 * 127;
        if let Some(b) = bias
            .iter()
            .find(|b| i64::from(b.unsigned_abs()) > bias_limit)
        {
            return Err(format!("bias {b} exceeds +-{bias_limit}"));
        }
        input_q
            .validate()
            .map_err(|e| format!("input quant: {e}"))?;
        output_q
            .validate()
            .map_err(|e| format!("output quant: {e}"))?;
        let is_sigmoid = spec.activation == Activation::Sigmoid;
        let target = match (is_sigmoid, pre_activation_q) {
            (true, Some(p)) => {
                p.validate()
                    .map_err(|e| format!("pre-activation quant: {e}"))?;
                p
            }
            (false, None) => output_q,
            (true, None) => return Err("sigmoid layer without pre_activation_quant".into()),
            (false, Some(_)) => return Err("pre_activation_quant on a non-sigmoid layer".into()),
        };
        let requant = weight_scales
            .iter()
            .map(|&sw| {
                if !(sw.is_finite() && sw > 0.0) {
                    return Err(format!("weight scale {sw} is not finite and positive"));
                }
                let m = f64::from(input_q.scale) * f64::from(sw) / f64::from(target.scale);
                Requant::from_real(m)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let zp = output_q.zero_point;
        let clamp = match spec.activation {
            Activation::None | Activation::Sigmoid => (-128, 127),
            Activation::Relu => (zp, 127),
            Activation::Relu6 => {
                let six = (6.0 / f64::from(output_q.scale)).round().min(1000.0) as i32;
                (zp, (zp + six).min(127))
            }
        };
        let lut = is_sigmoid.then(|| {
            (-128i32..=127)
                .map(|q| output_q.quantize(Activation::Sigmoid.apply(target.dequantize(q as i8))))
                .collect()
        });
        Ok(Self {
            spec,
            weights,
            weight_scales,
            bias,
            input_q,
            output_q,
            pre_activation_q,
            requant,
            target_zp: target.zero_point,
            clamp,
            lut,
        })
    }

    /// From accumulator to output int8: requantise, add zero point, clamp, look up.
    #[inline(always)]
    pub fn finish(&self, co: usize, acc: i32) -> i8 {
        let q = (self.requant[co].apply(acc) + self.target_zp).clamp(self.clamp.0, self.clamp.1);
        match &self.lut {
            Some(lut) => lut[(q + 128) as usize],
            None => q as i8,
        }
    }

    pub fn param_count(&self) -> usize {
        self.spec.param_count()
    }
}

/// A quantised sequential net (one agent, or the stem).
#[derive(Clone, Debug, PartialEq)]
pub struct QuantNet {
    pub layers: Vec<QuantLayer>,
}

impl QuantNet {
    /// Checks layer chaining, including that each layer's input quantisation is the previous
    /// layer's output quantisation.
    pub fn new(layers: Vec<QuantLayer>) -> Result<Self, EngineError> {
        validate_specs(layers.iter().map(|l| &l.spec)).map_err(EngineError::Shape)?;
        for (i, pair) in layers.windows(2).enumerate() {
            if pair[0].output_q != pair[1].input_q {
                return Err(EngineError::Quant(format!(
                    "layer {}: input quantisation differs from layer {i}'s output",
                    i + 1
                )));
            }
        }
        Ok(Self { layers })
    }

    pub fn input_q(&self) -> QuantParams {
        self.layers[0].input_q
    }

    pub fn output_q(&self) -> QuantParams {
        self.layers[self.layers.len() - 1].output_q
    }

    pub fn in_c(&self) -> usize {
        self.layers[0].spec.in_c
    }

    pub fn param_count(&self) -> usize {
        self.layers.iter().map(|l| l.param_count()).sum()
    }

    pub fn specs(&self) -> impl Iterator<Item = &ConvSpec> {
        self.layers.iter().map(|l| &l.spec)
    }

    pub fn out_shape(&self, input: MapShape) -> Result<MapShape, EngineError> {
        super::net::chain_out_shape(self.specs(), input)
    }
}

/// Quantises a float net with post-training calibration.
///
/// `input_q` is the quantisation of the input map (e.g. the stem's output). Each layer's output
/// (and, for sigmoid, pre-activation) range is the min/max over the calibration inputs of the
/// float reference forward pass.
pub fn quantize_net(
    net: &FloatNet,
    input_q: QuantParams,
    calibration: &[(&[f32], MapShape)],
) -> Result<QuantNet, EngineError> {
    net.validate()?;
    if calibration.is_empty() {
        return Err(EngineError::Quant("no calibration inputs".into()));
    }
    let n = net.layers.len();
    let mut pre_range = vec![(0.0f32, 0.0f32); n];
    let mut post_range = vec![(0.0f32, 0.0f32); n];
    for &(input, shape) in calibration {
        for (i, t) in net.forward_all(input, shape)?.iter().enumerate() {
            let merge = |r: (f32, f32), v: &[f32]| {
                let (lo, hi) = min_max(v);
                (r.0.min(lo), r.1.max(hi))
            };
            pre_range[i] = merge(pre_range[i], &t.pre);
            post_range[i] = merge(post_range[i], &t.post);
        }
    }
    let mut layers = Vec::with_capacity(n);
    let mut in_q = input_q;
    for (i, fl) in net.layers.iter().enumerate() {
        let spec = fl.spec;
        let fan_in = spec.fan_in();
        if fan_in > MAX_FAN_IN {
            return Err(EngineError::Quant(format!(
                "layer {i}: fan-in {fan_in} > {MAX_FAN_IN}"
            )));
        }
        let mut weights = Vec::with_capacity(fl.weights.len());
        let mut weight_scales = Vec::with_capacity(spec.out_c);
        for w in fl.weights.chunks(fan_in) {
            let max_abs = w.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let s = if max_abs > 0.0 { max_abs / 127.0 } else { 1e-6 };
            weights.extend(w.iter().map(|v| (v / s).round().clamp(-127.0, 127.0) as i8));
            weight_scales.push(s);
        }
        // The requantisation target must keep M = s_in * s_w / s_target below MAX_MULTIPLIER.
        let max_sw = weight_scales.iter().fold(0.0f32, |m, &s| m.max(s));
        let min_target = in_q.scale * max_sw / (MAX_MULTIPLIER as f32 * 0.98);
        let is_sigmoid = spec.activation == Activation::Sigmoid;
        let (pre_q, out_q) = if is_sigmoid {
            let (lo, hi) = pre_range[i];
            let pre = QuantParams::from_range_min_scale(lo, hi, min_target);
            (Some(pre), QuantParams::from_range(0.0, 1.0))
        } else {
            let (lo, hi) = post_range[i];
            (None, QuantParams::from_range_min_scale(lo, hi, min_target))
        };
        let bias_limit = (ACC_LIMIT - 1 - fan_in as i64 * 255 * 127) as f64;
        let bias = fl
            .bias
            .iter()
            .zip(&weight_scales)
            .map(|(&b, &sw)| {
                let q = f64::from(b) / (f64::from(in_q.scale) * f64::from(sw));
                q.round().clamp(-bias_limit, bias_limit) as i32
            })
            .collect();
        let layer = QuantLayer::new(spec, weights, weight_scales, bias, in_q, out_q, pre_q)
            .map_err(|e| EngineError::Quant(format!("layer {i}: {e}")))?;
        in_q = out_q;
        layers.push(layer);
    }
    QuantNet::new(layers)
}

/// Quantises a float map with the given parameters (e.g. to feed a test input).
pub fn quantize_map(values: &[f32], q: QuantParams) -> Vec<i8> {
    values.iter().map(|&v| q.quantize(v)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The split-multiply formula equals the exact 64-bit definition.
    #[test]
    fn requant_matches_i64_definition() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..200_000 {
            let acc = (next() % (2 * (ACC_LIMIT as u64) - 1)) as i64 - (ACC_LIMIT - 1);
            let multiplier = (next() % 32768) as i32;
            let shift = 16 + (next() % 31) as u32;
            let r = Requant { multiplier, shift };
            let exact = (acc * i64::from(multiplier) + (1i64 << (shift - 1))) >> shift;
            assert_eq!(i64::from(r.apply(acc as i32)), exact, "acc {acc} {r:?}");
        }
    }

    #[test]
    fn requant_from_real_is_accurate() {
        for &m in &[0.49, 0.3, 0.01, 1e-4, 3e-9] {
            let r = Requant::from_real(m).unwrap();
            let approx = f64::from(r.multiplier) / (1u64 << r.shift) as f64;
            assert!((approx - m).abs() / m < 1e-4, "{m} -> {r:?}");
        }
        assert!(Requant::from_real(0.5).is_err());
        assert!(Requant::from_real(f64::NAN).is_err());
        assert_eq!(Requant::from_real(0.0).unwrap().apply(1 << 23), 0);
    }

    #[test]
    fn relu_zero_point_is_u8_like() {
        let q = QuantParams::from_range(0.0, 2.55);
        assert_eq!(q.zero_point, -128);
        assert_eq!(q.quantize(0.0), -128);
        assert_eq!(q.quantize(2.55), 127);
    }
}
