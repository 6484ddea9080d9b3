//! Float network model shared by agents and the stem, plus the f32 reference forward pass.
//!
//! A net is a plain sequence of 2-D convolutions (no residuals, BatchNorm already folded by the
//! training side). Weights use the PyTorch layout `[out_c, in_c / groups, k, k]`, bias `[out_c]`;
//! feature maps are HWC (channel-last, row-major). Padding is TensorFlow "SAME": a layer outputs
//! `ceil(h / stride)` rows and the total zero padding `(out - 1) * stride + k - h` is split with
//! the odd pixel after (bottom/right) — see [`ConvSpec::pad_before`]. That is the convention of
//! the MobileNet/MoveNet layers the stem is transferred from, so trained weights run unchanged.

use super::EngineError;
use serde::{Deserialize, Serialize};

/// Shape of an HWC feature map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapShape {
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl MapShape {
    pub const fn new(h: usize, w: usize, c: usize) -> Self {
        Self { h, w, c }
    }

    /// Whether any dimension is zero.
    pub fn is_empty(&self) -> bool {
        self.h == 0 || self.w == 0 || self.c == 0
    }

    /// Number of scalars in the map (`h * w * c`), `None` on overflow.
    pub fn len(&self) -> Option<usize> {
        self.h.checked_mul(self.w)?.checked_mul(self.c)
    }
}

/// Activation applied after a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    None,
    Relu,
    Relu6,
    Sigmoid,
}

impl Activation {
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => x.max(0.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        }
    }
}

/// Shape of one convolution layer (no weights). `Dense` is a 1x1 conv on a 1x1 map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvSpec {
    pub in_c: usize,
    pub out_c: usize,
    /// 1 or 3.
    pub kernel: usize,
    /// 1 or 2.
    pub stride: usize,
    /// 1 (dense conv) or `in_c` (depthwise, then `out_c == in_c`).
    pub groups: usize,
    pub activation: Activation,
}

/// Largest channel count accepted per layer; keeps every size computation far from overflow.
pub const MAX_CHANNELS: usize = 4096;

impl ConvSpec {
    /// Checks kernel/stride/groups/channel constraints.
    pub fn validate(&self) -> Result<(), String> {
        if self.in_c == 0 || self.out_c == 0 {
            return Err("zero channels".into());
        }
        if self.in_c > MAX_CHANNELS || self.out_c > MAX_CHANNELS {
            return Err(format!("more than {MAX_CHANNELS} channels"));
        }
        if self.kernel != 1 && self.kernel != 3 {
            return Err(format!("kernel {} (must be 1 or 3)", self.kernel));
        }
        if self.stride != 1 && self.stride != 2 {
            return Err(format!("stride {} (must be 1 or 2)", self.stride));
        }
        if self.groups == 1 {
            return Ok(());
        }
        if self.groups != self.in_c || self.out_c != self.in_c {
            return Err(format!(
                "groups {} with in_c {} out_c {} (only 1 or depthwise in_c == out_c == groups)",
                self.groups, self.in_c, self.out_c
            ));
        }
        Ok(())
    }

    pub fn is_depthwise(&self) -> bool {
        self.groups != 1
    }

    /// Input channels seen by one output channel.
    pub fn in_per_group(&self) -> usize {
        self.in_c / self.groups
    }

    /// Multiply-accumulates per output value.
    pub fn fan_in(&self) -> usize {
        self.in_per_group() * self.kernel * self.kernel
    }

    pub fn weight_len(&self) -> usize {
        self.out_c * self.fan_in()
    }

    /// Weights plus biases.
    pub fn param_count(&self) -> usize {
        self.weight_len() + self.out_c
    }

    /// Zero rows (or columns) before the input along an axis of `n` pixels, TF "SAME":
    /// `k / 2` except for a stride-2 3x3 conv on an even size, which pads only after.
    pub fn pad_before(&self, n: usize) -> usize {
        let out = n.div_ceil(self.stride);
        ((out.max(1) - 1) * self.stride + self.kernel).saturating_sub(n) / 2
    }

    /// Output map shape for an input map, or an error if the channels do not chain.
    pub fn out_shape(&self, input: MapShape) -> Result<MapShape, EngineError> {
        if input.c != self.in_c {
            return Err(EngineError::Shape(format!(
                "layer expects {} input channels, map has {}",
                self.in_c, input.c
            )));
        }
        if input.h == 0 || input.w == 0 {
            return Err(EngineError::Shape("empty input map".into()));
        }
        Ok(MapShape::new(
            input.h.div_ceil(self.stride),
            input.w.div_ceil(self.stride),
            self.out_c,
        ))
    }
}

/// One float layer: shape + weights `[out_c, in_c/groups, k, k]` + bias `[out_c]`.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatLayer {
    pub spec: ConvSpec,
    pub weights: Vec<f32>,
    pub bias: Vec<f32>,
}

/// A float sequential net.
#[derive(Clone, Debug, PartialEq)]
pub struct FloatNet {
    pub layers: Vec<FloatLayer>,
}

/// Checks that a list of layer specs is non-empty, individually valid and chains channel-wise.
pub fn validate_specs<'a>(specs: impl IntoIterator<Item = &'a ConvSpec>) -> Result<(), String> {
    let mut prev_out: Option<usize> = None;
    let mut n = 0;
    for (i, spec) in specs.into_iter().enumerate() {
        spec.validate().map_err(|e| format!("layer {i}: {e}"))?;
        if let Some(p) = prev_out
            && p != spec.in_c
        {
            return Err(format!(
                "layer {i}: takes {} channels but previous layer outputs {p}",
                spec.in_c
            ));
        }
        prev_out = Some(spec.out_c);
        n += 1;
    }
    if n == 0 {
        return Err("net has no layers".into());
    }
    Ok(())
}

/// Output shape of a chain of layers.
pub fn chain_out_shape<'a>(
    specs: impl IntoIterator<Item = &'a ConvSpec>,
    input: MapShape,
) -> Result<MapShape, EngineError> {
    specs
        .into_iter()
        .try_fold(input, |shape, spec| spec.out_shape(shape))
}

/// Multiply-accumulates for one forward pass over a map of the given input shape.
pub fn chain_macs<'a>(
    specs: impl IntoIterator<Item = &'a ConvSpec>,
    input: MapShape,
) -> Result<u64, EngineError> {
    let mut shape = input;
    let mut macs = 0u64;
    for spec in specs {
        shape = spec.out_shape(shape)?;
        macs += (shape.h * shape.w * shape.c * spec.fan_in()) as u64;
    }
    Ok(macs)
}

impl FloatNet {
    pub fn validate(&self) -> Result<(), EngineError> {
        validate_specs(self.layers.iter().map(|l| &l.spec)).map_err(EngineError::Shape)?;
        for (i, l) in self.layers.iter().enumerate() {
            if l.weights.len() != l.spec.weight_len() || l.bias.len() != l.spec.out_c {
                return Err(EngineError::Shape(format!(
                    "layer {i}: {} weights / {} biases, expected {} / {}",
                    l.weights.len(),
                    l.bias.len(),
                    l.spec.weight_len(),
                    l.spec.out_c
                )));
            }
        }
        Ok(())
    }

    pub fn in_c(&self) -> usize {
        self.layers.first().map_or(0, |l| l.spec.in_c)
    }

    pub fn param_count(&self) -> usize {
        self.layers.iter().map(|l| l.spec.param_count()).sum()
    }

    pub fn out_shape(&self, input: MapShape) -> Result<MapShape, EngineError> {
        chain_out_shape(self.layers.iter().map(|l| &l.spec), input)
    }

    /// Reference forward pass; returns every layer's output (post-activation) and its shape.
    /// Also returns the pre-activation maps, which calibration needs for sigmoid layers.
    pub fn forward_all(
        &self,
        input: &[f32],
        shape: MapShape,
    ) -> Result<Vec<LayerTrace>, EngineError> {
        self.validate()?;
        if Some(input.len()) != shape.len() {
            return Err(EngineError::InputLength {
                expected: shape.len().unwrap_or(usize::MAX),
                got: input.len(),
            });
        }
        let mut traces: Vec<LayerTrace> = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (src, src_shape) = match traces.last() {
                Some(t) => (t.post.as_slice(), t.shape),
                None => (input, shape),
            };
            let out_shape = layer.spec.out_shape(src_shape)?;
            let pre = conv_f32(layer, src, src_shape, out_shape);
            let post = pre
                .iter()
                .map(|&x| layer.spec.activation.apply(x))
                .collect();
            traces.push(LayerTrace {
                shape: out_shape,
                pre,
                post,
            });
        }
        Ok(traces)
    }

    /// Reference forward pass: the final output map and its shape.
    pub fn forward(
        &self,
        input: &[f32],
        shape: MapShape,
    ) -> Result<(Vec<f32>, MapShape), EngineError> {
        let mut traces = self.forward_all(input, shape)?;
        let last = traces
            .pop()
            .ok_or(EngineError::Shape("net has no layers".into()))?;
        Ok((last.post, last.shape))
    }
}

/// Output of one layer of the reference forward pass.
#[derive(Clone, Debug)]
pub struct LayerTrace {
    pub shape: MapShape,
    /// Before the activation.
    pub pre: Vec<f32>,
    /// After the activation.
    pub post: Vec<f32>,
}

/// Straightforward float convolution (HWC in, HWC out, TF "SAME" zero padding).
fn conv_f32(layer: &FloatLayer, src: &[f32], s: MapShape, o: MapShape) -> Vec<f32> {
    let spec = &layer.spec;
    let (k, ipg) = (spec.kernel, spec.in_per_group());
    let (pad_y, pad_x) = (spec.pad_before(s.h) as isize, spec.pad_before(s.w) as isize);
    let opg = spec.out_c / spec.groups;
    let mut out = vec![0.0f32; o.h * o.w * o.c];
    for oy in 0..o.h {
        for ox in 0..o.w {
            for co in 0..o.c {
                let g = co / opg;
                let mut acc = layer.bias[co];
                for ky in 0..k {
                    let iy = (oy * spec.stride) as isize + ky as isize - pad_y;
                    if iy < 0 || iy >= s.h as isize {
                        continue;
                    }
                    for kx in 0..k {
                        let ix = (ox * spec.stride) as isize + kx as isize - pad_x;
                        if ix < 0 || ix >= s.w as isize {
                            continue;
                        }
                        let base = (iy as usize * s.w + ix as usize) * s.c + g * ipg;
                        for ci in 0..ipg {
                            let w = layer.weights[((co * ipg + ci) * k + ky) * k + kx];
                            acc += w * src[base + ci];
                        }
                    }
                }
                out[(oy * o.w + ox) * o.c + co] = acc;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ones_conv(stride: usize) -> FloatNet {
        FloatNet {
            layers: vec![FloatLayer {
                spec: ConvSpec {
                    in_c: 1,
                    out_c: 1,
                    kernel: 3,
                    stride,
                    groups: 1,
                    activation: Activation::None,
                },
                weights: vec![1.0; 9],
                bias: vec![0.0],
            }],
        }
    }

    #[test]
    fn tf_same_padding_pads_after_on_even_stride_two() {
        // 4x4 input holding its row-major index: stride 2 reads rows/cols {0,1,2} and {2,3,pad}.
        let input: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let (out, shape) = ones_conv(2)
            .forward(&input, MapShape::new(4, 4, 1))
            .unwrap();
        assert_eq!(shape, MapShape::new(2, 2, 1));
        let sum = |rows: &[usize], cols: &[usize]| -> f32 {
            rows.iter()
                .flat_map(|r| cols.iter().map(move |c| (r * 4 + c) as f32))
                .sum()
        };
        assert_eq!(out[0], sum(&[0, 1, 2], &[0, 1, 2]));
        assert_eq!(out[3], sum(&[2, 3], &[2, 3]));
    }

    #[test]
    fn pad_before_matches_tensorflow_same() {
        let spec = |kernel, stride| ConvSpec {
            in_c: 1,
            out_c: 1,
            kernel,
            stride,
            groups: 1,
            activation: Activation::None,
        };
        assert_eq!(spec(3, 1).pad_before(7), 1);
        assert_eq!(spec(3, 2).pad_before(8), 0);
        assert_eq!(spec(3, 2).pad_before(7), 1);
        assert_eq!(spec(1, 2).pad_before(8), 0);
        assert_eq!(spec(1, 1).pad_before(5), 0);
        // Stride 1 on odd and even sizes alike: symmetric.
        let (out, _) = ones_conv(1)
            .forward(&[1.0; 9], MapShape::new(3, 3, 1))
            .unwrap();
        assert_eq!(out, vec![4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0]);
    }
}
