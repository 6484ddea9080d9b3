//! The agent engine: tiny int8 convolutional nets ("agents") evaluated at every position of a
//! shared feature map, on the CPU (scalar or `wide` SIMD, rayon across agents) or through wgpu.
//! Plain Rust, no GStreamer types.
//!
//! * [`net`]: float network model and reference forward pass.
//! * [`quant`]: the int8 contract and post-training quantisation.
//! * [`cpu`], [`gpu`]: execution backends, bit-exact with each other.
//! * [`swarm`]: [`Swarm`] (agents of one tier) and [`SwarmRunner`] (backend selection).
//! * [`bundle`]: the weight bundle file format.
//! * [`synth`]: deterministic random nets for tests, benches and examples.

pub mod bundle;
pub mod cpu;
pub mod gpu;
pub mod net;
pub mod quant;
pub mod swarm;
pub mod synth;

pub use net::{Activation, ConvSpec, FloatLayer, FloatNet, MapShape};
pub use quant::{QuantLayer, QuantNet, QuantParams, quantize_net};
pub use swarm::{ActiveBackend, Backend, Swarm, SwarmRunner};

use std::fmt;

/// Errors of net construction, quantisation and execution.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineError {
    /// Layer shapes that do not chain, or an input map that does not fit the net.
    Shape(String),
    /// Invalid quantisation parameters.
    Quant(String),
    InputLength {
        expected: usize,
        got: usize,
    },
    OutputLength {
        expected: usize,
        got: usize,
    },
    /// `Backend::Gpu` was requested but no adapter exists.
    NoGpuAdapter(String),
    /// Device creation, limits or execution failure.
    Gpu(String),
    /// The requested kernel cannot run on this CPU.
    Unsupported(String),
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shape(s) => write!(f, "shape error: {s}"),
            Self::Quant(s) => write!(f, "quantisation error: {s}"),
            Self::InputLength { expected, got } => {
                write!(f, "input has {got} values, expected {expected}")
            }
            Self::OutputLength { expected, got } => {
                write!(f, "output buffer has {got} values, expected {expected}")
            }
            Self::NoGpuAdapter(s) => write!(f, "no GPU adapter: {s}"),
            Self::Gpu(s) => write!(f, "GPU error: {s}"),
            Self::Unsupported(s) => write!(f, "unsupported: {s}"),
        }
    }
}

impl std::error::Error for EngineError {}
