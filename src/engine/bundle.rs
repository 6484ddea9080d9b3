//! Weight bundle: one file holding a stem, every agent of every tier and their provenance.
//!
//! # Byte layout (all integers little-endian)
//!
//! | offset          | size | content                                                     |
//! |-----------------|------|-------------------------------------------------------------|
//! | 0               | 8    | magic `b"SWPOSE\0\0"`                                       |
//! | 8               | 4    | u32 format version, currently [`FORMAT_VERSION`] = 2        |
//! | 12              | 4    | u32 `M`, manifest length in bytes                           |
//! | 16              | M    | manifest, UTF-8 JSON (schema below)                         |
//! | 16 + M          | 8    | u64 `B`, blob length in bytes                               |
//! | 24 + M          | B    | blob: weights and biases (below)                            |
//! | 24 + M + B      | 4    | u32 CRC-32 (IEEE, as Python's `zlib.crc32`) of bytes `0 .. 24 + M + B` |
//!
//! The file is exactly `28 + M + B` bytes; anything after the CRC is an error.
//!
//! # Blob
//!
//! Nets in order: the stem (if any), the body neck (if any), then the agents in manifest order.
//! For each net, for each layer in order: the int8 weights, `out_c * (in_c / groups) * k * k`
//! bytes in PyTorch order `[out_c][in_c / groups][ky][kx]`, values in `-127..=127`; then the
//! biases, `out_c` i32 little-endian. No alignment padding. A Python writer:
//! `w_q.astype(np.int8).tobytes() + b_q.astype('<i4').tobytes()`.
//!
//! # Manifest JSON
//!
//! ```json
//! {
//!   "tiers": [{"name": "body", "channels": 16,
//!              "input_quant": {"scale": 0.0157, "zero_point": -64}}],
//!   "stem": null,
//!   "agents": [{"name": "l_wrist_0", "tier": "body", "keypoint": "left_wrist",
//!               "specialisation": "occluded, small scale",
//!               "param_count": 363,
//!               "layers": [LAYER, ...]}],
//!   "total_agent_params": 363,
//!   "detector": {"crop_margin": 0.25},
//!   "provenance": {"command": "python train.py ...", "data": "coco2017 train",
//!                  "seed": 1, "notes": "free-form"}
//! }
//! ```
//! `detector` (optional) holds what a detector needs beyond the nets: `crop_margin`, the margin
//! of the square keypoint crop around a person box (side = max(w, h) * (1 + margin)), and
//! optionally `body_side`, the long side of the letterboxed frame the body tier runs on (default:
//! the stem's input side; the stem is fully convolutional, so a larger side finds smaller
//! persons at more MACs). It must be a multiple of the body stem's stride (the detector
//! refuses it otherwise).
//! Pixel convention of a stem: RGB, float `x = p / 127.5 - 1` for `p` in `0..=255`, then its
//! `input_quant`.
//!
//! `stem` is `null` or
//! `{"name", "input": {"h", "w", "c"}, "input_quant", "layers": [LAYER...], "param_count",
//! "macs_per_frame"}` (stem parameters are counted apart from `total_agent_params`).
//!
//! `body_neck` (optional, needs a stem) is a second head of the stem for the body tier:
//! `{"name", "from_layer", "layers": [LAYER...], "param_count", "macs_per_frame"}`. It reads the
//! output of stem layer `from_layer` (its input quantisation is that layer's `output_quant`), so
//! the body tier's features are stem layers `0..=from_layer` followed by these layers; the
//! `body` tier's `channels` and `input_quant` are then the neck's output. Its MACs are counted
//! at the stem's input size; stem and body neck together hold at most [`MAX_STEM_PARAMS`].
//!
//! `LAYER` = `{"in_c", "out_c", "kernel": 1|3, "stride": 1|2, "groups": 1|in_c,
//! "activation": "none"|"relu"|"relu6"|"sigmoid", "weight_scales": [f32; out_c],
//! "output_quant": {"scale", "zero_point"}, "pre_activation_quant": {"scale", "zero_point"}}`,
//! `pre_activation_quant` present (non-null) for sigmoid layers only.
//!
//! Quantisation semantics (see [`super::quant`]): weights `w = q * weight_scales[c]`;
//! activations `x = (q - zero_point) * scale` with `zero_point` in `-128..=127`; a net's input
//! quantisation is its tier's `input_quant` (the stem's own for the stem), layer `l + 1`'s input
//! quantisation is layer `l`'s `output_quant`. Biases are `round(b / (s_in * weight_scales[c]))`.
//! The reader derives the fixed-point requantisation from these scales, which requires
//! `s_in * weight_scales[c] / s_target < 0.5` (`s_target` is `pre_activation_quant.scale` for
//! sigmoid, else `output_quant.scale`); `(in_c / groups) * k * k <= 2048`; and
//! `|bias| + fan_in * 255 * 127 < 2^29`.
//!
//! Limits: an agent has at most [`MAX_AGENT_PARAMS`] parameters (weights + biases), a bundle at
//! most [`MAX_AGENTS`] agents, the stem (with its body neck, if any) at most
//! [`MAX_STEM_PARAMS`]. Declared `param_count`, `total_agent_params` and `macs_per_frame` must
//! equal the values computed from the shapes.

use super::net::{ConvSpec, MapShape, chain_macs, validate_specs};
use super::quant::{QuantLayer, QuantNet, QuantParams};
use super::swarm::Swarm;
use super::{Activation, EngineError};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

pub const MAGIC: [u8; 8] = *b"SWPOSE\0\0";
/// 2: TF "SAME" padding (see [`super::net`]), fan-in up to 2048, optional `detector`; later
/// optional fields (`body_neck`, `detector.body_side`) kept the version: a reader from before
/// them refuses such a file as an unknown manifest field.
pub const FORMAT_VERSION: u32 = 2;
pub const MAX_AGENT_PARAMS: usize = 500;
pub const MAX_AGENTS: usize = 100_000;
pub const MAX_STEM_PARAMS: usize = 1_000_000;
/// Layers per net; far above any real net, bounds the work done on hostile input.
pub const MAX_LAYERS: usize = 64;
/// Stem input side; bounds the MAC computation.
pub const MAX_STEM_SIDE: usize = 16_384;

const HEADER: usize = 16;

/// Why a bundle was refused. Each corruption class has its own variant.
#[derive(Debug)]
pub enum BundleError {
    Io(std::io::Error),
    Empty,
    Truncated {
        needed: u64,
        available: u64,
    },
    TrailingBytes {
        expected: u64,
        actual: u64,
    },
    BadMagic,
    UnsupportedVersion {
        found: u32,
        supported: u32,
    },
    ChecksumMismatch {
        stored: u32,
        computed: u32,
    },
    /// Not JSON, or JSON not matching the schema.
    ManifestJson(String),
    /// Valid JSON with inconsistent content (unknown tier, duplicate names...).
    InvalidManifest(String),
    /// Layers that do not chain, invalid kernel/stride/groups, wrong scale counts.
    ShapeMismatch {
        net: String,
        reason: String,
    },
    BlobSizeMismatch {
        expected: u64,
        actual: u64,
    },
    AgentTooLarge {
        agent: String,
        params: usize,
        max: usize,
    },
    TooManyAgents {
        count: usize,
        max: usize,
    },
    StemTooLarge {
        params: usize,
        max: usize,
    },
    /// Declared `param_count` / `total_agent_params` / `macs_per_frame` differ from the shapes.
    CountMismatch {
        what: String,
        declared: u64,
        computed: u64,
    },
    /// Scales, zero points, weights or biases outside the integer contract.
    InvalidQuant {
        net: String,
        reason: String,
    },
}

impl fmt::Display for BundleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "cannot read bundle: {e}"),
            Self::Empty => write!(f, "bundle is empty"),
            Self::Truncated { needed, available } => {
                write!(f, "bundle truncated: needs {needed} bytes, has {available}")
            }
            Self::TrailingBytes { expected, actual } => {
                write!(f, "bundle has {actual} bytes, expected exactly {expected}")
            }
            Self::BadMagic => write!(f, "not a swarmpose bundle (bad magic)"),
            Self::UnsupportedVersion { found, supported } => {
                write!(
                    f,
                    "bundle format version {found}, this build reads {supported}"
                )
            }
            Self::ChecksumMismatch { stored, computed } => write!(
                f,
                "bundle corrupt: CRC32 {computed:#010x} but file says {stored:#010x}"
            ),
            Self::ManifestJson(e) => write!(f, "manifest is not valid JSON for the schema: {e}"),
            Self::InvalidManifest(e) => write!(f, "invalid manifest: {e}"),
            Self::ShapeMismatch { net, reason } => write!(f, "{net}: bad layer shapes: {reason}"),
            Self::BlobSizeMismatch { expected, actual } => {
                write!(
                    f,
                    "blob has {actual} bytes, the layer shapes need {expected}"
                )
            }
            Self::AgentTooLarge { agent, params, max } => {
                write!(f, "agent {agent} has {params} parameters (max {max})")
            }
            Self::TooManyAgents { count, max } => write!(f, "{count} agents (max {max})"),
            Self::StemTooLarge { params, max } => {
                write!(f, "stem has {params} parameters (max {max})")
            }
            Self::CountMismatch {
                what,
                declared,
                computed,
            } => write!(f, "{what}: declared {declared}, computed {computed}"),
            Self::InvalidQuant { net, reason } => {
                write!(f, "{net}: invalid quantisation: {reason}")
            }
        }
    }
}

impl std::error::Error for BundleError {}

// ---------------------------------------------------------------------------------------------
// Manifest (serde mirror of the JSON schema)

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerManifest {
    pub in_c: usize,
    pub out_c: usize,
    pub kernel: usize,
    pub stride: usize,
    pub groups: usize,
    pub activation: Activation,
    pub weight_scales: Vec<f32>,
    pub output_quant: QuantParams,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_activation_quant: Option<QuantParams>,
}

impl LayerManifest {
    fn spec(&self) -> ConvSpec {
        ConvSpec {
            in_c: self.in_c,
            out_c: self.out_c,
            kernel: self.kernel,
            stride: self.stride,
            groups: self.groups,
            activation: self.activation,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierManifest {
    pub name: String,
    pub channels: usize,
    pub input_quant: QuantParams,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StemManifest {
    pub name: String,
    pub input: MapShape,
    pub input_quant: QuantParams,
    pub layers: Vec<LayerManifest>,
    pub param_count: usize,
    pub macs_per_frame: u64,
}

/// The stem's second head, for the body tier (see the module docs).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BodyNeckManifest {
    pub name: String,
    /// Index of the stem layer whose output the neck reads.
    pub from_layer: usize,
    pub layers: Vec<LayerManifest>,
    pub param_count: usize,
    pub macs_per_frame: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentManifest {
    pub name: String,
    pub tier: String,
    pub keypoint: String,
    #[serde(default)]
    pub specialisation: String,
    pub param_count: usize,
    pub layers: Vec<LayerManifest>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub data: String,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub notes: String,
}

/// Detector geometry stored beside the nets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorManifest {
    pub crop_margin: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_side: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub tiers: Vec<TierManifest>,
    pub stem: Option<StemManifest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_neck: Option<BodyNeckManifest>,
    pub agents: Vec<AgentManifest>,
    pub total_agent_params: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detector: Option<DetectorManifest>,
    pub provenance: Provenance,
}

// ---------------------------------------------------------------------------------------------
// In-memory bundle

/// An agent's identity (the manifest fields that are not weights).
#[derive(Clone, Debug, PartialEq)]
pub struct AgentInfo {
    pub name: String,
    pub tier: String,
    pub keypoint: String,
    pub specialisation: String,
}

/// A loaded, validated bundle: the manifest and the quantised nets it describes.
#[derive(Clone, Debug, PartialEq)]
pub struct Bundle {
    pub manifest: Manifest,
    pub stem: Option<QuantNet>,
    /// The body neck alone (its input: the output of stem layer `from_layer`).
    pub body_neck: Option<QuantNet>,
    /// In manifest order.
    pub agents: Vec<QuantNet>,
}

fn layer_manifest(l: &QuantLayer) -> LayerManifest {
    LayerManifest {
        in_c: l.spec.in_c,
        out_c: l.spec.out_c,
        kernel: l.spec.kernel,
        stride: l.spec.stride,
        groups: l.spec.groups,
        activation: l.spec.activation,
        weight_scales: l.weight_scales.clone(),
        output_quant: l.output_q,
        pre_activation_quant: l.pre_activation_q,
    }
}

impl Bundle {
    /// Builds (and validates) a bundle from quantised nets. `stem` is `(name, input shape, net)`.
    pub fn new(
        tiers: Vec<TierManifest>,
        stem: Option<(String, MapShape, QuantNet)>,
        agents: Vec<(AgentInfo, QuantNet)>,
        provenance: Provenance,
    ) -> Result<Self, BundleError> {
        let stem_manifest = match &stem {
            Some((name, input, net)) => Some(StemManifest {
                name: name.clone(),
                input: *input,
                input_quant: net.input_q(),
                layers: net.layers.iter().map(layer_manifest).collect(),
                param_count: net.param_count(),
                macs_per_frame: chain_macs(net.specs(), *input).map_err(|e| {
                    BundleError::ShapeMismatch {
                        net: name.clone(),
                        reason: e.to_string(),
                    }
                })?,
            }),
            None => None,
        };
        let manifest = Manifest {
            tiers,
            stem: stem_manifest,
            total_agent_params: agents.iter().map(|(_, n)| n.param_count()).sum(),
            body_neck: None,
            agents: agents
                .iter()
                .map(|(info, net)| AgentManifest {
                    name: info.name.clone(),
                    tier: info.tier.clone(),
                    keypoint: info.keypoint.clone(),
                    specialisation: info.specialisation.clone(),
                    param_count: net.param_count(),
                    layers: net.layers.iter().map(layer_manifest).collect(),
                })
                .collect(),
            detector: None,
            provenance,
        };
        let nets = stem
            .iter()
            .map(|(_, _, n)| n)
            .chain(agents.iter().map(|(_, n)| n));
        let blob = encode_blob(nets);
        // Round-trip through the reader so a bundle that exists is one the reader accepts.
        let json =
            serde_json::to_vec(&manifest).map_err(|e| BundleError::ManifestJson(e.to_string()))?;
        Self::from_bytes(&encode_container(&json, &blob))
    }

    /// Reads and validates a bundle file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, BundleError> {
        Self::from_bytes(&std::fs::read(path).map_err(BundleError::Io)?)
    }

    /// Serialises to the byte layout documented at the top of this module.
    pub fn to_bytes(&self) -> Vec<u8> {
        let json = serde_json::to_vec(&self.manifest).unwrap_or_default();
        let blob = encode_blob(self.stem.iter().chain(&self.body_neck).chain(&self.agents));
        encode_container(&json, &blob)
    }

    /// Parses and validates; never panics, whatever the input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BundleError> {
        let (json, blob) = decode_container(bytes)?;
        let manifest: Manifest =
            serde_json::from_slice(json).map_err(|e| BundleError::ManifestJson(e.to_string()))?;
        validate_manifest(&manifest)?;
        let expected_blob: u64 = manifest
            .stem
            .iter()
            .map(|s| &s.layers)
            .chain(manifest.body_neck.iter().map(|n| &n.layers))
            .chain(manifest.agents.iter().map(|a| &a.layers))
            .flatten()
            .map(|l| (l.spec().weight_len() + 4 * l.out_c) as u64)
            .sum();
        if expected_blob != blob.len() as u64 {
            return Err(BundleError::BlobSizeMismatch {
                expected: expected_blob,
                actual: blob.len() as u64,
            });
        }
        let mut reader = BlobReader { blob, pos: 0 };
        let stem = match &manifest.stem {
            Some(s) => Some(build_net(&s.name, s.input_quant, &s.layers, &mut reader)?),
            None => None,
        };
        let body_neck = match (&manifest.body_neck, &manifest.stem) {
            // validate_manifest checked that a body neck comes with a stem and a valid from_layer.
            (Some(n), Some(s)) => Some(build_net(
                &n.name,
                s.layers[n.from_layer].output_quant,
                &n.layers,
                &mut reader,
            )?),
            _ => None,
        };
        let mut agents = Vec::with_capacity(manifest.agents.len());
        for a in &manifest.agents {
            let tier = manifest
                .tiers
                .iter()
                .find(|t| t.name == a.tier)
                .ok_or_else(|| BundleError::InvalidManifest(format!("unknown tier {}", a.tier)))?;
            agents.push(build_net(
                &a.name,
                tier.input_quant,
                &a.layers,
                &mut reader,
            )?);
        }
        Ok(Self {
            manifest,
            stem,
            body_neck,
            agents,
        })
    }

    /// The net that computes the body tier's features from the stem's input: stem layers
    /// `0..=from_layer` followed by the body neck; the whole stem when there is no body neck.
    pub fn body_stem(&self) -> Option<QuantNet> {
        let stem = self.stem.as_ref()?;
        let (Some(neck), Some(m)) = (&self.body_neck, &self.manifest.body_neck) else {
            return Some(stem.clone());
        };
        let layers = stem
            .layers
            .get(..=m.from_layer)?
            .iter()
            .chain(&neck.layers)
            .cloned()
            .collect();
        // The reader built the neck on stem layer from_layer's output quantisation: it chains.
        QuantNet::new(layers).ok()
    }

    /// All agents of one tier as a [`Swarm`].
    pub fn swarm(&self, tier: &str) -> Result<Swarm, EngineError> {
        let agents: Vec<QuantNet> = self
            .manifest
            .agents
            .iter()
            .zip(&self.agents)
            .filter(|(m, _)| m.tier == tier)
            .map(|(_, n)| n.clone())
            .collect();
        Swarm::new(agents)
    }
}

/// Frames a manifest and a blob (magic, version, lengths, CRC). Public so writers and tests can
/// produce containers around arbitrary manifests.
pub fn encode_container(manifest_json: &[u8], blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(28 + manifest_json.len() + blob.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(manifest_json.len() as u32).to_le_bytes());
    out.extend_from_slice(manifest_json);
    out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    out.extend_from_slice(blob);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Concatenates the blob sections of nets.
pub fn encode_blob<'a>(nets: impl IntoIterator<Item = &'a QuantNet>) -> Vec<u8> {
    let mut blob = Vec::new();
    for net in nets {
        for l in &net.layers {
            blob.extend(l.weights.iter().map(|&w| w as u8));
            for b in &l.bias {
                blob.extend_from_slice(&b.to_le_bytes());
            }
        }
    }
    blob
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// Checks the framing and the CRC; returns (manifest bytes, blob bytes).
fn decode_container(bytes: &[u8]) -> Result<(&[u8], &[u8]), BundleError> {
    let available = bytes.len() as u64;
    let truncated = |needed: u64| BundleError::Truncated { needed, available };
    if bytes.is_empty() {
        return Err(BundleError::Empty);
    }
    let magic = bytes.get(..8).ok_or(truncated(HEADER as u64))?;
    if magic != MAGIC {
        return Err(BundleError::BadMagic);
    }
    let version = le_u32(bytes, 8).ok_or(truncated(HEADER as u64))?;
    if version != FORMAT_VERSION {
        return Err(BundleError::UnsupportedVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let m = u64::from(le_u32(bytes, 12).ok_or(truncated(HEADER as u64))?);
    let blob_len_at = HEADER as u64 + m;
    if available < blob_len_at + 8 {
        return Err(truncated(blob_len_at + 8));
    }
    let b = le_u64(bytes, blob_len_at as usize).ok_or(truncated(blob_len_at + 8))?;
    let crc_at = (blob_len_at + 8)
        .checked_add(b)
        .ok_or(truncated(u64::MAX))?;
    let total = crc_at.checked_add(4).ok_or(truncated(u64::MAX))?;
    if available < total {
        return Err(truncated(total));
    }
    if available > total {
        return Err(BundleError::TrailingBytes {
            expected: total,
            actual: available,
        });
    }
    let crc_at = crc_at as usize;
    let stored = le_u32(bytes, crc_at).ok_or(truncated(total))?;
    let computed = crc32fast::hash(&bytes[..crc_at]);
    if stored != computed {
        return Err(BundleError::ChecksumMismatch { stored, computed });
    }
    let json = &bytes[HEADER..blob_len_at as usize];
    let blob = &bytes[blob_len_at as usize + 8..crc_at];
    Ok((json, blob))
}

/// Shape, size-limit and declared-count checks (before touching the blob).
fn validate_manifest(m: &Manifest) -> Result<(), BundleError> {
    if let Some(d) = &m.detector
        && !(0.0..=4.0).contains(&d.crop_margin)
    {
        return Err(BundleError::InvalidManifest(format!(
            "detector crop_margin {} outside 0..=4",
            d.crop_margin
        )));
    }
    if let Some(d) = &m.detector
        && let Some(side) = d.body_side
        && !(1..=MAX_STEM_SIDE).contains(&side)
    {
        return Err(BundleError::InvalidManifest(format!(
            "detector body_side {side} outside 1..={MAX_STEM_SIDE}"
        )));
    }
    if m.agents.len() > MAX_AGENTS {
        return Err(BundleError::TooManyAgents {
            count: m.agents.len(),
            max: MAX_AGENTS,
        });
    }
    for (i, t) in m.tiers.iter().enumerate() {
        if t.channels == 0 || t.channels > super::net::MAX_CHANNELS {
            return Err(BundleError::InvalidManifest(format!(
                "tier {}: {} channels",
                t.name, t.channels
            )));
        }
        if m.tiers[..i].iter().any(|u| u.name == t.name) {
            return Err(BundleError::InvalidManifest(format!(
                "duplicate tier {}",
                t.name
            )));
        }
    }
    let check_layers = |net: &str, in_c: usize, layers: &[LayerManifest]| {
        let shape_err = |reason: String| BundleError::ShapeMismatch {
            net: net.to_string(),
            reason,
        };
        if layers.len() > MAX_LAYERS {
            return Err(shape_err(format!(
                "{} layers (max {MAX_LAYERS})",
                layers.len()
            )));
        }
        validate_specs(layers.iter().map(|l| l.spec()).collect::<Vec<_>>().iter())
            .map_err(shape_err)?;
        if layers[0].in_c != in_c {
            return Err(shape_err(format!(
                "first layer takes {} channels, its input has {in_c}",
                layers[0].in_c
            )));
        }
        if let Some((i, l)) = layers
            .iter()
            .enumerate()
            .find(|(_, l)| l.weight_scales.len() != l.out_c)
        {
            return Err(shape_err(format!(
                "layer {i}: {} weight scales for {} output channels",
                l.weight_scales.len(),
                l.out_c
            )));
        }
        Ok(layers.iter().map(|l| l.spec().param_count()).sum::<usize>())
    };
    let declared = |what: String, declared: u64, computed: u64| {
        if declared == computed {
            Ok(())
        } else {
            Err(BundleError::CountMismatch {
                what,
                declared,
                computed,
            })
        }
    };
    if let Some(s) = &m.stem {
        let params = check_layers(&s.name, s.input.c, &s.layers)?;
        if params > MAX_STEM_PARAMS {
            return Err(BundleError::StemTooLarge {
                params,
                max: MAX_STEM_PARAMS,
            });
        }
        declared(
            format!("stem {} param_count", s.name),
            s.param_count as u64,
            params as u64,
        )?;
        if s.input.h == 0
            || s.input.w == 0
            || s.input.h > MAX_STEM_SIDE
            || s.input.w > MAX_STEM_SIDE
        {
            return Err(BundleError::ShapeMismatch {
                net: s.name.clone(),
                reason: format!("stem input {}x{}", s.input.h, s.input.w),
            });
        }
        let macs = chain_macs(
            s.layers.iter().map(|l| l.spec()).collect::<Vec<_>>().iter(),
            s.input,
        )
        .map_err(|e| BundleError::ShapeMismatch {
            net: s.name.clone(),
            reason: e.to_string(),
        })?;
        declared(
            format!("stem {} macs_per_frame", s.name),
            s.macs_per_frame,
            macs,
        )?;
    }
    if let Some(n) = &m.body_neck {
        let s = m.stem.as_ref().ok_or_else(|| {
            BundleError::InvalidManifest(format!("body neck {} without a stem", n.name))
        })?;
        let from = s
            .layers
            .get(n.from_layer)
            .ok_or_else(|| BundleError::ShapeMismatch {
                net: n.name.clone(),
                reason: format!(
                    "reads stem layer {}; the stem has {}",
                    n.from_layer,
                    s.layers.len()
                ),
            })?;
        let params = check_layers(&n.name, from.out_c, &n.layers)?;
        let stem_params = s.param_count;
        if stem_params + params > MAX_STEM_PARAMS {
            return Err(BundleError::StemTooLarge {
                params: stem_params + params,
                max: MAX_STEM_PARAMS,
            });
        }
        declared(
            format!("body neck {} param_count", n.name),
            n.param_count as u64,
            params as u64,
        )?;
        let specs: Vec<ConvSpec> = s.layers[..=n.from_layer]
            .iter()
            .chain(&n.layers)
            .map(|l| l.spec())
            .collect();
        let shape_err = |e: EngineError| BundleError::ShapeMismatch {
            net: n.name.clone(),
            reason: e.to_string(),
        };
        let with = chain_macs(specs.iter(), s.input).map_err(shape_err)?;
        let without = chain_macs(specs[..=n.from_layer].iter(), s.input).map_err(shape_err)?;
        declared(
            format!("body neck {} macs_per_frame", n.name),
            n.macs_per_frame,
            with - without,
        )?;
        if let Some(t) = m.tiers.iter().find(|t| t.name == "body")
            && (t.channels != n.layers[n.layers.len() - 1].out_c
                || t.input_quant != n.layers[n.layers.len() - 1].output_quant)
        {
            return Err(BundleError::InvalidManifest(format!(
                "tier body does not read body neck {}'s output",
                n.name
            )));
        }
    }
    let mut total = 0usize;
    for a in &m.agents {
        let tier = m.tiers.iter().find(|t| t.name == a.tier).ok_or_else(|| {
            BundleError::InvalidManifest(format!("agent {}: unknown tier {}", a.name, a.tier))
        })?;
        let params = check_layers(&a.name, tier.channels, &a.layers)?;
        if params > MAX_AGENT_PARAMS {
            return Err(BundleError::AgentTooLarge {
                agent: a.name.clone(),
                params,
                max: MAX_AGENT_PARAMS,
            });
        }
        declared(
            format!("agent {} param_count", a.name),
            a.param_count as u64,
            params as u64,
        )?;
        total += params;
    }
    declared(
        "total_agent_params".into(),
        m.total_agent_params as u64,
        total as u64,
    )
}

struct BlobReader<'a> {
    blob: &'a [u8],
    pos: usize,
}

impl<'a> BlobReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], BundleError> {
        let s = self
            .pos
            .checked_add(n)
            .and_then(|end| self.blob.get(self.pos..end))
            .ok_or(BundleError::BlobSizeMismatch {
                expected: (self.pos as u64).saturating_add(n as u64),
                actual: self.blob.len() as u64,
            })?;
        self.pos += n;
        Ok(s)
    }
}

fn build_net(
    name: &str,
    input_q: QuantParams,
    layers: &[LayerManifest],
    reader: &mut BlobReader,
) -> Result<QuantNet, BundleError> {
    let quant_err = |reason: String| BundleError::InvalidQuant {
        net: name.to_string(),
        reason,
    };
    let mut in_q = input_q;
    let mut out = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        let spec = l.spec();
        let weights = reader
            .take(spec.weight_len())?
            .iter()
            .map(|&b| b as i8)
            .collect();
        let bias = reader
            .take(4 * l.out_c)?
            .chunks_exact(4)
            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let layer = QuantLayer::new(
            spec,
            weights,
            l.weight_scales.clone(),
            bias,
            in_q,
            l.output_quant,
            l.pre_activation_quant,
        )
        .map_err(|e| quant_err(format!("layer {i}: {e}")))?;
        in_q = l.output_quant;
        out.push(layer);
    }
    QuantNet::new(out).map_err(|e| quant_err(e.to_string()))
}
