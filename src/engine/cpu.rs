//! CPU int8 swarm execution: a scalar reference kernel and a `wide` SIMD kernel.
//!
//! Both compute exactly the integer contract of [`super::quant`], so their int8 outputs are
//! bit-identical. All buffers (per-worker scratch, the shared SIMD input planes, the int8
//! outputs) are sized in [`CpuSwarm::new`]; [`CpuSwarm::run`] allocates nothing.
//!
//! SIMD layout ("pair planes"): a map of `c` channels is stored as `ceil(c / 2)` planes of i32
//! lanes, each lane packing the *centred* values `q - zero_point` of two channels as two i16
//! (even channel in the low half). A plane has a one-pixel zero border (so "SAME" padding is
//! just reading zeros) and a row stride rounded up to 8 lanes plus slack. Convolutions then run
//! 8 output positions per vector with `pmaddwd` (`i16x16::dot`):
//! * dense conv: one load of 8 positions x 2 input channels, dotted with the broadcast weight
//!   pair `(w[co][2p], w[co][2p+1])`, adds 16 MACs for one output channel;
//! * depthwise conv: the same load dotted with `(w, 0)` or `(0, w)` selects one channel, so the
//!   two channels of a pair accumulate separately without any shuffle.
//!
//! Requantisation is vectorised with the same split-multiply as [`super::quant::Requant`].
//!
//! On x86-64 the layers run with AVX2 or VNNI intrinsics chosen at run time ([`x86`]), since
//! `wide` alone is compiled for the target's baseline (SSE2 on a portable build). With VNNI,
//! dense 1x1 layers read their input repacked as "quad planes" (four channels per lane as the
//! bytes `q + 128`, `QuadWeights`) for `vpdpbusd`, twice the multiply-adds of `vpdpwssd`.
//! All variants are bit-identical.
//!
//! Failure isolation: each agent runs under `catch_unwind`. An agent that panics is flagged
//! ([`CpuSwarm::agent_failed`]), its output becomes its zero point (0.0, no evidence), and its
//! worker's scratch is cleared, so the next frame runs it afresh from its (immutable) weights;
//! the other agents' outputs are untouched. [`CpuSwarm::set_sabotaged`] injects such panics
//! (fault injection for tests and demos).

use super::EngineError;
use super::net::MapShape;
use super::quant::{QuantLayer, QuantNet, Requant};
use super::swarm::Swarm;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use wide::{i16x16, i32x8};

mod team;
#[cfg(target_arch = "x86_64")]
mod x86;

/// Which CPU kernel a [`CpuSwarm`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuKernel {
    /// Plain loops over HWC int8 maps (reference, the "before").
    Scalar,
    /// Vectors over pair planes with the best instruction set of this CPU (the default).
    Simd,
    /// `wide` vectors only, at the compile-time baseline (the portable path).
    SimdPortable,
    /// 256-bit AVX2 `vpmaddwd` (x86-64; an error where the CPU lacks it).
    SimdAvx2,
    /// ... with AVX-VNNI `vpdpwssd`.
    SimdAvxVnni,
    /// ... with AVX512-VNNI `vpdpwssd` (256-bit, AVX512-VL).
    SimdAvx512Vnni,
    /// ... the same with 512-bit vectors for 16-position blocks (AVX512-F/BW/VL/VNNI).
    SimdAvx512Zmm,
}

impl CpuKernel {
    /// Every kernel, for tests and benches that compare them.
    pub const ALL: [CpuKernel; 7] = [
        CpuKernel::Scalar,
        CpuKernel::Simd,
        CpuKernel::SimdPortable,
        CpuKernel::SimdAvx2,
        CpuKernel::SimdAvxVnni,
        CpuKernel::SimdAvx512Vnni,
        CpuKernel::SimdAvx512Zmm,
    ];

    /// Whether this kernel works on pair planes (every one but `Scalar`).
    fn uses_planes(self) -> bool {
        self != CpuKernel::Scalar
    }

    /// The instruction set this kernel uses on this CPU, or why it cannot run.
    fn isa(self) -> Result<Isa, EngineError> {
        #[cfg(target_arch = "x86_64")]
        {
            use x86::X86Isa;
            let best = X86Isa::detect();
            let want = match self {
                CpuKernel::Scalar | CpuKernel::SimdPortable => return Ok(Isa::Wide),
                CpuKernel::Simd => return Ok(best.map_or(Isa::Wide, Isa::X86)),
                CpuKernel::SimdAvx2 => X86Isa::Avx2,
                CpuKernel::SimdAvxVnni => X86Isa::AvxVnni,
                CpuKernel::SimdAvx512Vnni => X86Isa::Avx512Vnni,
                CpuKernel::SimdAvx512Zmm => X86Isa::Avx512Zmm,
            };
            if X86Isa::supports(want) {
                Ok(Isa::X86(want))
            } else {
                Err(EngineError::Unsupported(format!(
                    "{self:?}: this CPU lacks {want:?}"
                )))
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        match self {
            CpuKernel::Scalar | CpuKernel::Simd | CpuKernel::SimdPortable => Ok(Isa::Wide),
            _ => Err(EngineError::Unsupported(format!("{self:?}: x86-64 only"))),
        }
    }
}

/// The instruction set of the SIMD layers, chosen once per [`CpuSwarm`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    /// `wide` ([`conv_simd`]).
    Wide,
    #[cfg(target_arch = "x86_64")]
    X86(x86::X86Isa),
}

impl Isa {
    /// Whether dense 1x1 layers run on quad planes (`vpdpbusd`: the VNNI instruction sets).
    fn has_quads(self) -> bool {
        match self {
            Isa::Wide => false,
            #[cfg(target_arch = "x86_64")]
            Isa::X86(isa) => isa.has_dpbusd(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Isa::Wide => "wide",
            #[cfg(target_arch = "x86_64")]
            Isa::X86(isa) => isa.name(),
        }
    }
}

/// Below this many MACs per frame the swarm runs on the calling thread: rayon's fork/join
/// (~µs) would cost more than it saves.
pub const PARALLEL_MIN_MACS: u64 = 2_000_000;

/// Geometry of a pair-plane map.
#[derive(Clone, Copy, Debug)]
struct PlaneGeom {
    shape: MapShape,
    pairs: usize,
    /// Lanes per padded row.
    stride: usize,
    /// Lanes per pair plane, `(h + 2) * stride`.
    plane_len: usize,
    /// Total lanes including tail slack for over-reading garbage lanes of the last block.
    total: usize,
}

impl PlaneGeom {
    fn new(shape: MapShape) -> Self {
        let pairs = shape.c.div_ceil(2);
        let stride = shape.w.next_multiple_of(8) + 8;
        let plane_len = (shape.h + 2) * stride;
        let total = pairs * plane_len + 2 * stride + 64;
        Self {
            shape,
            pairs,
            stride,
            plane_len,
            total,
        }
    }

    /// Index of data position `(y, x)` of pair `p`.
    fn at(&self, p: usize, y: usize, x: usize) -> usize {
        p * self.plane_len + (y + 1) * self.stride + x + 1
    }
}

/// One layer prepared for the SIMD kernel.
#[derive(Clone, Debug)]
struct SimdLayer {
    depthwise: bool,
    kernel: usize,
    conv_stride: usize,
    /// Multiply-accumulates per output value.
    fan_in: usize,
    /// TF "SAME" zero padding before the rows / columns (0 or 1).
    pad_y: usize,
    pad_x: usize,
    src: PlaneGeom,
    dst: PlaneGeom,
    /// Dense: `[co][tap][in_pair]` packed i16 weight pairs. Depthwise: `[c][tap]` with the
    /// weight in the half of the lane that holds channel `c`.
    packed: Vec<i32>,
    /// Per output channel, padded to an even count (the padding channel outputs 0).
    bias: Vec<i32>,
    mult: Vec<i32>,
    shift: Vec<u32>,
    /// Clamp bounds on the centred output when there is no LUT.
    lo: Vec<i32>,
    hi: Vec<i32>,
    /// Per output pair, the two channels' `lo` and `hi` as one pair-plane lane (even channel in
    /// the low half): the x86 kernels clamp both channels in one 16-bit `max` and `min`.
    lo_pair: Vec<i32>,
    hi_pair: Vec<i32>,
    /// Per output channel, the x86 kernels' shorter requantisation ([`FastRound`]), where the
    /// shift allows it.
    fast_round: Vec<Option<FastRound>>,
    /// Sigmoid only, applied per lane.
    lut: Option<SimdLut>,
    /// Dense 1x1 layers only, for the VNNI `vpdpbusd` path ([`x86`]'s `conv_quads`): the input
    /// is first repacked as `q + 128` bytes, four channels per lane ("quad planes"), so one
    /// instruction does 32 multiply-adds instead of `vpdpwssd`'s 16.
    quads: Option<QuadWeights>,
}

/// [`Requant::apply`] with its rounding constant folded into the low half's multiply-add:
/// `pmaddwd((lo, 2^k), (m, 2^j))` is `lo * m + 2^(shift - 1)` when `k + j = shift - 1`, and
/// `2^(shift - 1)` is a multiple of `2^15`, so shifting that right by 15 gives
/// `((lo * m) >> 15) + 2^(shift - 16)` exactly. Both powers must fit an i16 multiplicand
/// (`k, j <= 14`), so `shift <= 29`: every shift of the shipped bundle but one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FastRound {
    /// `2^k << 16`: OR-ed into `acc & 0x7fff`, it puts `2^k` into the high half of each lane.
    lo_or: i32,
    /// `m | (2^j << 16)`.
    mult: i32,
}

impl FastRound {
    fn new(r: Requant) -> Option<Self> {
        // 2^(shift - 1) = 2^k * 2^j; shift >= MIN_SHIFT = 16 makes it a multiple of 2^15.
        if r.shift < Requant::MIN_SHIFT {
            return None;
        }
        let k = (r.shift - 1).min(14);
        let j = r.shift - 1 - k;
        (j <= 14).then(|| Self {
            lo_or: (1 << k) << 16,
            mult: r.multiplier | ((1 << j) << 16),
        })
    }
}

/// `lo` in the low half, `hi` in the high half of one lane (both fit an i16).
fn pair_lane(lo: i32, hi: i32) -> i32 {
    (lo & 0xffff) | (hi << 16)
}

/// Weights of a dense 1x1 layer for quad planes.
#[derive(Clone, Debug)]
struct QuadWeights {
    /// Quad planes of the input, `ceil(src.pairs / 2)`.
    count: usize,
    /// Added to each centred i16 of the input so that its low byte is `q + 128`
    /// (`128 + zp_in`; the bytes are then unsigned, as `vpdpbusd` wants them).
    offset: i32,
    /// `[co][quad]`: four i8 weights per lane in the byte order of the quad planes, input
    /// channels `4g, 4g + 2, 4g + 1, 4g + 3` (see `x86::pairs_to_quads`).
    packed: Vec<i32>,
    /// The bias less `offset * sum(w)`, which undoes the offset: `sum(w * (x + offset))`.
    bias: Vec<i32>,
}

impl QuadWeights {
    fn new(layer: &QuantLayer, src: &PlaneGeom, out_even: usize) -> Option<Self> {
        let spec = layer.spec;
        if spec.kernel != 1 || spec.stride != 1 || spec.is_depthwise() {
            return None;
        }
        let count = src.pairs.div_ceil(2);
        let offset = 128 + layer.input_q.zero_point;
        let w = |co: usize, ci: usize| {
            if co < spec.out_c && ci < spec.in_c {
                i32::from(layer.weights[co * spec.in_c + ci])
            } else {
                0
            }
        };
        let mut packed = Vec::with_capacity(out_even * count);
        let mut bias = Vec::with_capacity(out_even);
        for co in 0..out_even {
            for g in 0..count {
                let bytes = [4 * g, 4 * g + 2, 4 * g + 1, 4 * g + 3].map(|ci| w(co, ci) as i8);
                packed.push(i32::from_le_bytes(bytes.map(|b| b as u8)));
            }
            let sum: i32 = (0..spec.in_c).map(|ci| w(co, ci)).sum();
            let b = if co < spec.out_c { layer.bias[co] } else { 0 };
            bias.push(b - offset * sum);
        }
        Some(Self {
            count,
            offset,
            packed,
            bias,
        })
    }
}

/// Lookup-table finish of a sigmoid layer (see `QuantLayer::finish`).
#[derive(Clone, Debug)]
struct SimdLut {
    target_zp: i32,
    clamp: (i32, i32),
    table: Vec<i8>,
    out_zp: i32,
}

impl SimdLayer {
    fn new(layer: &QuantLayer, src: MapShape, dst: MapShape) -> Self {
        let spec = layer.spec;
        let (pad_y, pad_x) = (spec.pad_before(src.h), spec.pad_before(src.w));
        let (src, dst) = (PlaneGeom::new(src), PlaneGeom::new(dst));
        let taps = spec.kernel * spec.kernel;
        let out_even = dst.pairs * 2;
        let half = |w: i8| i32::from(w) & 0xffff;
        let mut packed = Vec::new();
        if spec.is_depthwise() {
            for c in 0..out_even {
                for t in 0..taps {
                    let w = if c < spec.out_c {
                        layer.weights[c * taps + t]
                    } else {
                        0
                    };
                    packed.push(if c % 2 == 0 { half(w) } else { half(w) << 16 });
                }
            }
        } else {
            for co in 0..out_even {
                for t in 0..taps {
                    for p in 0..src.pairs {
                        let w = |ci: usize| {
                            if co < spec.out_c && ci < spec.in_c {
                                layer.weights[(co * spec.in_c + ci) * taps + t]
                            } else {
                                0
                            }
                        };
                        packed.push(half(w(2 * p)) | (half(w(2 * p + 1)) << 16));
                    }
                }
            }
        }
        let zp = layer.output_q.zero_point;
        let ch = |c: usize| c < spec.out_c;
        let quads = QuadWeights::new(layer, &src, out_even);
        // The padding channel (odd `out_c`) requantises with multiplier 0 and clamps to 0.
        let mult: Vec<i32> = (0..out_even)
            .map(|c| {
                if ch(c) {
                    layer.requant[c].multiplier
                } else {
                    0
                }
            })
            .collect();
        let shift: Vec<u32> = (0..out_even)
            .map(|c| if ch(c) { layer.requant[c].shift } else { 16 })
            .collect();
        let lo: Vec<i32> = (0..out_even)
            .map(|c| if ch(c) { layer.clamp.0 - zp } else { 0 })
            .collect();
        let hi: Vec<i32> = (0..out_even)
            .map(|c| if ch(c) { layer.clamp.1 - zp } else { 0 })
            .collect();
        let pairs = |v: &[i32]| v.chunks_exact(2).map(|p| pair_lane(p[0], p[1])).collect();
        Self {
            quads,
            depthwise: spec.is_depthwise(),
            kernel: spec.kernel,
            conv_stride: spec.stride,
            fan_in: spec.fan_in(),
            pad_y,
            pad_x,
            src,
            dst,
            packed,
            bias: (0..out_even)
                .map(|c| if ch(c) { layer.bias[c] } else { 0 })
                .collect(),
            fast_round: mult
                .iter()
                .zip(&shift)
                .map(|(&multiplier, &shift)| FastRound::new(Requant { multiplier, shift }))
                .collect(),
            lo_pair: pairs(&lo),
            hi_pair: pairs(&hi),
            mult,
            shift,
            lo,
            hi,
            lut: layer.lut.clone().map(|table| SimdLut {
                target_zp: layer.target_zp,
                clamp: layer.clamp,
                table,
                out_zp: zp,
            }),
        }
    }
}

/// An agent with its per-layer shapes for one input shape.
#[derive(Clone, Debug)]
struct AgentPlan {
    net: QuantNet,
    /// `shapes[0]` is the input, `shapes[l + 1]` the output of layer `l`.
    shapes: Vec<MapShape>,
    simd: Vec<SimdLayer>,
}

impl AgentPlan {
    /// Whether layer `l` exists and reads quad planes (a dense 1x1 layer on VNNI).
    fn reads_quads(&self, l: usize, isa: Isa) -> bool {
        isa.has_quads() && self.simd.get(l).is_some_and(|layer| layer.quads.is_some())
    }

    /// Whether layer `l` restores the zero borders of its output: the x86 kernels skip them
    /// where nothing reads them (before a 1x1 layer on quad planes, and after the last layer).
    fn restores_borders(&self, l: usize, isa: Isa) -> bool {
        l + 1 < self.simd.len() && !self.reads_quads(l + 1, isa)
    }

    /// Unpacks the last layer's output from the worker's ping-pong planes into `out`.
    fn unpack(&self, worker: &Worker, out: &mut [i8]) {
        let n = self.simd.len();
        // Layer `l` writes `planes[l % 2]` (see `forward_simd`).
        let result = &worker.planes[(n - 1) % 2];
        planes_to_hwc(
            result,
            self.net.output_q().zero_point,
            &self.simd[n - 1].dst,
            out,
        );
    }
}

/// Per-worker scratch, sized for the largest layer of any agent.
#[derive(Clone, Debug)]
struct Worker {
    bytes: [Vec<i8>; 2],
    planes: [Vec<i32>; 2],
    /// The input of a dense 1x1 layer as quad planes (VNNI only; else empty). A team
    /// ([`team`]) alternates the two by layer, since its parts repack the next layer's input
    /// while the others may still read this one's; a serial pass uses the first.
    quads: [Vec<i32>; 2],
}

impl Worker {
    /// Back to the state after construction (a panicking agent may have left it half-written;
    /// the SIMD kernel relies on zero plane borders).
    fn reset(&mut self) {
        self.bytes.iter_mut().for_each(|b| b.fill(0));
        self.planes.iter_mut().for_each(|p| p.fill(0));
        self.quads.iter_mut().for_each(|q| q.fill(0));
    }
}

/// Read-only state shared by the workers of one run.
struct Shared<'a> {
    kernel: CpuKernel,
    isa: Isa,
    agents: &'a [AgentPlan],
    offsets: &'a [usize],
    input: &'a [i8],
    input_planes: &'a [i32],
    sabotaged: &'a [bool],
    failed: &'a [AtomicBool],
}

/// A swarm of quantised agents prepared for one input shape on the CPU.
#[derive(Debug)]
pub struct CpuSwarm {
    kernel: CpuKernel,
    isa: Isa,
    input_shape: MapShape,
    input_geom: PlaneGeom,
    input_zp: i32,
    agents: Vec<AgentPlan>,
    /// `offsets[a]..offsets[a + 1]` is agent `a`'s output range (HWC, concatenated).
    offsets: Vec<usize>,
    input_planes: Vec<i32>,
    q_out: Vec<i8>,
    workers: Vec<Worker>,
    /// Agent index bounds per worker for parallel runs.
    bounds: Vec<usize>,
    serial_bounds: [usize; 2],
    parallel: bool,
    /// A one-agent swarm (the stem) cannot split agents over threads, so its large layers
    /// split their output planes over a team of pool threads instead ([`team`]); `None` when
    /// serial, `split` says whether it is used.
    team: Option<team::Team>,
    split: bool,
    macs: u64,
    /// Agents that panicked during the last run.
    failed: Vec<AtomicBool>,
    /// Agents made to panic (fault injection).
    sabotaged: Vec<bool>,
}

impl CpuSwarm {
    /// Prepares buffers and packed weights; parallel across agents when the frame is large
    /// enough ([`PARALLEL_MIN_MACS`]).
    pub fn new(
        swarm: &Swarm,
        input_shape: MapShape,
        kernel: CpuKernel,
    ) -> Result<Self, EngineError> {
        if input_shape.c != swarm.in_c() {
            return Err(EngineError::Shape(format!(
                "input map has {} channels, swarm expects {}",
                input_shape.c,
                swarm.in_c()
            )));
        }
        input_shape
            .len()
            .filter(|&n| n > 0)
            .ok_or_else(|| EngineError::Shape("empty or oversized input map".into()))?;
        let isa = kernel.isa()?;
        let mut agents = Vec::with_capacity(swarm.len());
        let mut offsets = vec![0usize];
        let (mut max_bytes, mut max_planes, mut max_quads, mut macs) = (0, 0, 0, 0u64);
        for net in swarm.agents() {
            let mut shapes = vec![input_shape];
            for spec in net.specs() {
                let next = spec.out_shape(shapes[shapes.len() - 1])?;
                shapes.push(next);
            }
            macs += super::net::chain_macs(net.specs(), input_shape)?;
            let simd: Vec<SimdLayer> = net
                .layers
                .iter()
                .enumerate()
                .map(|(l, layer)| SimdLayer::new(layer, shapes[l], shapes[l + 1]))
                .collect();
            for s in &shapes[1..] {
                max_bytes = max_bytes.max(s.h * s.w * s.c);
                max_planes = max_planes.max(PlaneGeom::new(*s).total);
            }
            for layer in simd.iter().filter(|_| isa.has_quads()) {
                if let Some(q) = &layer.quads {
                    max_quads = max_quads.max(q.count * layer.src.plane_len);
                }
            }
            let out_len = shapes[shapes.len() - 1].h
                * shapes[shapes.len() - 1].w
                * shapes[shapes.len() - 1].c;
            offsets.push(offsets[offsets.len() - 1] + out_len);
            agents.push(AgentPlan {
                net: net.clone(),
                shapes,
                simd,
            });
        }
        let n = agents.len();
        let threads = rayon::current_num_threads().clamp(1, n.max(1));
        let parallel = threads > 1 && macs >= PARALLEL_MIN_MACS;
        let n_workers = if parallel { threads } else { 1 };
        let pool = rayon::current_num_threads();
        let team = (n == 1 && pool > 1 && macs >= PARALLEL_MIN_MACS && kernel.uses_planes())
            .then(|| team::Team::new(&agents[0], isa, pool));
        let (bytes, planes) = if kernel.uses_planes() {
            (0, max_planes)
        } else {
            (max_bytes, 0)
        };
        let worker = Worker {
            bytes: [vec![0; bytes], vec![0; bytes]],
            planes: [vec![0; planes], vec![0; planes]],
            // The second quad buffer only serves a team.
            quads: if kernel.uses_planes() {
                let second = if team.is_some() { max_quads } else { 0 };
                [vec![0; max_quads], vec![0; second]]
            } else {
                [Vec::new(), Vec::new()]
            },
        };
        let input_geom = PlaneGeom::new(input_shape);
        Ok(Self {
            kernel,
            isa,
            input_shape,
            input_geom,
            input_zp: swarm.input_q().zero_point,
            offsets: offsets.clone(),
            input_planes: if kernel.uses_planes() {
                vec![0; input_geom.total]
            } else {
                Vec::new()
            },
            q_out: vec![0; offsets[n]],
            workers: vec![worker; n_workers],
            bounds: (0..=n_workers).map(|i| i * n / n_workers).collect(),
            serial_bounds: [0, n],
            parallel,
            split: team.is_some(),
            team,
            macs,
            failed: (0..n).map(|_| AtomicBool::new(false)).collect(),
            sabotaged: vec![false; n],
            agents,
        })
    }

    /// Whether agent `a` panicked during the last run (its output is then 0.0 everywhere).
    pub fn agent_failed(&self, a: usize) -> bool {
        self.failed
            .get(a)
            .is_some_and(|f| f.load(Ordering::Relaxed))
    }

    /// Makes the listed agents panic on every run from now on (fault injection); an empty
    /// list heals them. Indices past the swarm are ignored.
    pub fn set_sabotaged(&mut self, agents: &[usize]) {
        self.sabotaged.fill(false);
        for &a in agents {
            if let Some(s) = self.sabotaged.get_mut(a) {
                *s = true;
            }
        }
    }

    /// Enables or disables rayon across agents (defaults to on for large frames).
    pub fn set_parallel(&mut self, on: bool) {
        self.parallel = on && self.workers.len() > 1;
        self.split = on && self.team.is_some();
    }

    pub fn is_parallel(&self) -> bool {
        self.parallel || self.split
    }

    pub fn kernel(&self) -> CpuKernel {
        self.kernel
    }

    /// What the layers run on: `wide`, `avx2`, `avx-vnni`, `avx512-vnni` or `avx512-vnni-zmm`
    /// (the scalar kernel reports `wide` too, unused).
    pub fn isa_name(&self) -> &'static str {
        self.isa.name()
    }

    /// Total output length (f32 or i8 values), agents concatenated.
    pub fn output_len(&self) -> usize {
        self.offsets[self.offsets.len() - 1]
    }

    /// Output range of each agent: `offsets()[a]..offsets()[a + 1]`.
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// Output map shape of agent `a`.
    pub fn output_shape(&self, a: usize) -> Option<MapShape> {
        self.agents.get(a).and_then(|p| p.shapes.last().copied())
    }

    /// Multiply-accumulates per frame over all agents.
    pub fn macs(&self) -> u64 {
        self.macs
    }

    /// Runs every agent; returns the int8 outputs (agents concatenated, HWC each).
    pub fn run_quantized(&mut self, input: &[i8]) -> Result<&[i8], EngineError> {
        self.run_inner(input, None)?;
        Ok(&self.q_out)
    }

    /// Where one pass of a one-net swarm goes, on one thread: the fastest of `reps` runs for
    /// each layer (its repacking into quad planes included), then the final unpacking, so
    /// `layers + 1` durations. A measuring tool (`cargo bench --bench stem_layers`), not for
    /// the frame path; needs a SIMD kernel.
    pub fn layer_times(
        &mut self,
        input: &[i8],
        reps: usize,
    ) -> Result<Vec<std::time::Duration>, EngineError> {
        use std::time::{Duration, Instant};
        self.check_input(input)?;
        let [plan] = &self.agents[..] else {
            return Err(EngineError::Unsupported(
                "layer_times: needs a one-net swarm".into(),
            ));
        };
        if !self.kernel.uses_planes() {
            return Err(EngineError::Unsupported(
                "layer_times: needs a SIMD kernel".into(),
            ));
        }
        if reps == 0 {
            return Err(EngineError::Unsupported(
                "layer_times: needs at least one pass".into(),
            ));
        }
        hwc_to_planes(
            input,
            self.input_zp,
            &self.input_geom,
            &mut self.input_planes,
        );
        let n = plan.simd.len();
        let mut best = vec![Duration::MAX; n + 1];
        let out = &mut self.q_out[..self.offsets[1]];
        for _ in 0..reps {
            let mut t = Instant::now();
            let mut lap = |l: usize| {
                let now = Instant::now();
                best[l] = best[l].min(now - t);
                t = now;
            };
            forward_simd_with(
                plan,
                &self.input_planes,
                &mut self.workers[0],
                out,
                self.isa,
                &mut lap,
            );
            lap(n);
        }
        Ok(best)
    }

    /// Runs every agent and dequantises into `out` (length [`Self::output_len`]).
    pub fn run(&mut self, input: &[i8], out: &mut [f32]) -> Result<(), EngineError> {
        if out.len() != self.output_len() {
            return Err(EngineError::OutputLength {
                expected: self.output_len(),
                got: out.len(),
            });
        }
        self.run_inner(input, Some(out))
    }

    /// The input must be one HWC map of the swarm's input shape.
    fn check_input(&self, input: &[i8]) -> Result<(), EngineError> {
        let expected = self.input_shape.h * self.input_shape.w * self.input_shape.c;
        if input.len() != expected {
            return Err(EngineError::InputLength {
                expected,
                got: input.len(),
            });
        }
        Ok(())
    }

    fn run_inner(&mut self, input: &[i8], out: Option<&mut [f32]>) -> Result<(), EngineError> {
        self.check_input(input)?;
        if self.kernel.uses_planes() {
            hwc_to_planes(
                input,
                self.input_zp,
                &self.input_geom,
                &mut self.input_planes,
            );
        }
        for f in &self.failed {
            f.store(false, Ordering::Relaxed);
        }
        let shared = Shared {
            kernel: self.kernel,
            isa: self.isa,
            agents: &self.agents,
            offsets: &self.offsets,
            input,
            input_planes: &self.input_planes,
            sabotaged: &self.sabotaged,
            failed: &self.failed,
        };
        let (workers, bounds): (&mut [Worker], &[usize]) = if self.parallel {
            (&mut self.workers, &self.bounds)
        } else {
            (&mut self.workers[..1], &self.serial_bounds)
        };
        let q_out = &mut self.q_out;
        let team = self.team.as_mut().filter(|_| self.split);
        let split = team.is_some();
        let job = move || run_workers(&shared, workers, bounds, q_out, out, 0, team);
        if (self.parallel || split) && rayon::current_thread_index().is_none() {
            // Enter the pool once per run: a join made on a pool thread is a cheap deque push,
            // while each join made from outside (a streaming thread) blocks on a cross-thread
            // wake-up.
            rayon::scope(|_| job());
        } else {
            job();
        }
        Ok(())
    }
}

/// Splits agents over workers with `rayon::join` (no allocation, unlike scoped spawns); a
/// one-agent swarm with a `team` splits the agent's layers instead.
fn run_workers(
    sh: &Shared,
    workers: &mut [Worker],
    bounds: &[usize],
    q_out: &mut [i8],
    out: Option<&mut [f32]>,
    base: usize,
    mut team: Option<&mut team::Team>,
) {
    if let [worker] = workers {
        for a in bounds[0]..bounds[1] {
            let range = sh.offsets[a] - base..sh.offsets[a + 1] - base;
            let q = &mut q_out[range.clone()];
            let plan = &sh.agents[a];
            let ran = catch_unwind(AssertUnwindSafe(|| {
                if sh.sabotaged[a] {
                    panic!("swarmpose: injected fault: agent {a} panics (fault-kind=panic)");
                }
                if let Some(team) = team.as_deref_mut() {
                    team.forward(plan, sh.input_planes, worker, q, sh.isa);
                } else if sh.kernel.uses_planes() {
                    forward_simd(plan, sh.input_planes, worker, q, sh.isa);
                } else {
                    forward_scalar(plan, sh.input, worker, q);
                }
            }));
            if ran.is_err() {
                // Isolated: no evidence from this agent, fresh scratch for the next one.
                sh.failed[a].store(true, Ordering::Relaxed);
                q.fill(plan.net.output_q().zero_point as i8);
                worker.reset();
            }
        }
        if let Some(out) = out {
            for a in bounds[0]..bounds[1] {
                let range = sh.offsets[a] - base..sh.offsets[a + 1] - base;
                let oq = sh.agents[a].net.output_q();
                for (o, &q) in out[range.clone()].iter_mut().zip(&q_out[range]) {
                    *o = (i32::from(q) - oq.zero_point) as f32 * oq.scale;
                }
            }
        }
        return;
    }
    let mid = workers.len() / 2;
    let split = sh.offsets[bounds[mid]] - base;
    let (wl, wr) = workers.split_at_mut(mid);
    let (ql, qr) = q_out.split_at_mut(split);
    let (ol, or) = match out {
        Some(o) => {
            let (l, r) = o.split_at_mut(split);
            (Some(l), Some(r))
        }
        None => (None, None),
    };
    rayon::join(
        || run_workers(sh, wl, &bounds[..=mid], ql, ol, base, None),
        || run_workers(sh, wr, &bounds[mid..], qr, or, base + split, None),
    );
}

// ---------------------------------------------------------------------------------------------
// Scalar kernel

fn forward_scalar(plan: &AgentPlan, input: &[i8], worker: &mut Worker, out: &mut [i8]) {
    let n = plan.net.layers.len();
    let [a, b] = &mut worker.bytes;
    for (l, layer) in plan.net.layers.iter().enumerate() {
        let (s, o) = (plan.shapes[l], plan.shapes[l + 1]);
        let len = o.h * o.w * o.c;
        // Ping-pong: layer l reads what layer l-1 wrote.
        let (src, dst): (&[i8], &mut [i8]) = match (l == 0, l + 1 == n, l % 2) {
            (true, true, _) => (input, &mut *out),
            (true, false, _) => (input, &mut a[..len]),
            (false, true, 1) => (&a[..], &mut *out),
            (false, true, _) => (&b[..], &mut *out),
            (false, false, 1) => (&a[..], &mut b[..len]),
            (false, false, _) => (&b[..], &mut a[..len]),
        };
        conv_scalar(layer, src, s, o, dst);
    }
}

/// Direct int8 convolution on HWC maps, exactly the contract of `quant`.
fn conv_scalar(layer: &QuantLayer, src: &[i8], s: MapShape, o: MapShape, dst: &mut [i8]) {
    let spec = &layer.spec;
    let (k, stride) = (spec.kernel, spec.stride);
    let (pad_y, pad_x) = (spec.pad_before(s.h), spec.pad_before(s.w));
    let ipg = spec.in_per_group();
    let opg = spec.out_c / spec.groups;
    let zp = layer.input_q.zero_point;
    for oy in 0..o.h {
        for ox in 0..o.w {
            for co in 0..o.c {
                let g = co / opg;
                let mut acc = layer.bias[co];
                for ky in 0..k {
                    let iy = (oy * stride + ky).wrapping_sub(pad_y);
                    if iy >= s.h {
                        continue;
                    }
                    for kx in 0..k {
                        let ix = (ox * stride + kx).wrapping_sub(pad_x);
                        if ix >= s.w {
                            continue;
                        }
                        let base = (iy * s.w + ix) * s.c + g * ipg;
                        for ci in 0..ipg {
                            let w = layer.weights[((co * ipg + ci) * k + ky) * k + kx];
                            acc += (i32::from(src[base + ci]) - zp) * i32::from(w);
                        }
                    }
                }
                dst[(oy * o.w + ox) * o.c + co] = layer.finish(co, acc);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SIMD kernel

/// Packs an HWC int8 map into centred pair planes (borders stay zero from construction).
fn hwc_to_planes(input: &[i8], zp: i32, g: &PlaneGeom, planes: &mut [i32]) {
    let MapShape { h, w, c } = g.shape;
    for p in 0..g.pairs {
        for y in 0..h {
            let row = g.at(p, y, 0);
            for x in 0..w {
                let px = &input[(y * w + x) * c..(y * w + x + 1) * c];
                let lo = i32::from(px[2 * p]) - zp;
                let hi = px.get(2 * p + 1).map_or(0, |&v| i32::from(v) - zp);
                planes[row + x] = (lo & 0xffff) | (hi << 16);
            }
        }
    }
}

/// Unpacks the final layer's pair planes into HWC int8.
fn planes_to_hwc(planes: &[i32], zp: i32, g: &PlaneGeom, out: &mut [i8]) {
    let MapShape { h, w, c } = g.shape;
    for y in 0..h {
        for x in 0..w {
            for (ch, o) in out[(y * w + x) * c..(y * w + x + 1) * c]
                .iter_mut()
                .enumerate()
            {
                let lane = planes[g.at(ch / 2, y, x)];
                let centred = if ch % 2 == 0 {
                    (lane << 16) >> 16
                } else {
                    lane >> 16
                };
                *o = (centred + zp) as i8;
            }
        }
    }
}

fn forward_simd(
    plan: &AgentPlan,
    input_planes: &[i32],
    worker: &mut Worker,
    out: &mut [i8],
    isa: Isa,
) {
    forward_simd_with(plan, input_planes, worker, out, isa, |_| {});
}

/// [`forward_simd`], calling `after_layer(l)` once layer `l` is done (a no-op in the frame
/// path, where it inlines away; [`CpuSwarm::layer_times`] reads the clock there).
fn forward_simd_with(
    plan: &AgentPlan,
    input_planes: &[i32],
    worker: &mut Worker,
    out: &mut [i8],
    isa: Isa,
    mut after_layer: impl FnMut(usize),
) {
    let [a, b] = &mut worker.planes;
    for (l, layer) in plan.simd.iter().enumerate() {
        let (src, dst): (&[i32], &mut [i32]) = match (l == 0, l % 2) {
            (true, _) => (input_planes, &mut a[..]),
            (false, 1) => (&a[..], &mut b[..]),
            (false, _) => (&b[..], &mut a[..]),
        };
        let input = match &layer.quads {
            Some(q) if plan.reads_quads(l, isa) => {
                let quads = &mut worker.quads[0][..q.count * layer.src.plane_len];
                fill_quads(layer, q, (src, 0), quads, 0, isa);
                LayerInput::Quads(quads)
            }
            _ => LayerInput::Pairs(src),
        };
        let borders = plan.restores_borders(l, isa);
        conv_layer(layer, input, dst, 0..layer.dst.pairs, isa, borders);
        after_layer(l);
    }
    plan.unpack(worker, out);
}

/// 8 lanes starting at `i`, every `STRIDE`-th lane.
#[inline(always)]
fn load8<const STRIDE: usize>(src: &[i32], i: usize) -> i16x16 {
    let v = if STRIDE == 1 {
        let s: &[i32; 8] = src[i..i + 8].try_into().expect("8 lanes");
        i32x8::new(*s)
    } else {
        let s = &src[i..i + 8 * STRIDE];
        i32x8::new(std::array::from_fn(|j| s[j * STRIDE]))
    };
    bytemuck::cast(v)
}

#[inline(always)]
fn splat_pair(pair: i32) -> i16x16 {
    bytemuck::cast(i32x8::splat(pair))
}

/// Vector form of `Requant::apply` + clamp, producing centred outputs.
#[inline(always)]
fn requant8(layer: &SimdLayer, c: usize, acc: i32x8) -> i32x8 {
    let m = splat_pair(layer.mult[c]);
    let s = layer.shift[c];
    let hi: i16x16 = bytemuck::cast(acc.unbounded_shr_scalar(15));
    let lo: i16x16 = bytemuck::cast(acc & i32x8::splat(0x7fff));
    let r = hi.dot(m) + lo.dot(m).unbounded_shr_scalar(15) + i32x8::splat(1 << (s - 16));
    let r = r.unbounded_shr_scalar(s - 15);
    match &layer.lut {
        None => r
            .max(i32x8::splat(layer.lo[c]))
            .min(i32x8::splat(layer.hi[c])),
        Some(lut) => {
            let r = r.to_array();
            i32x8::new(std::array::from_fn(|j| {
                let q = (r[j] + lut.target_zp).clamp(lut.clamp.0, lut.clamp.1);
                i32::from(lut.table[(q + 128) as usize]) - lut.out_zp
            }))
        }
    }
}

/// What a layer reads: pair planes, or (dense 1x1 layers on VNNI) the same map as quad planes.
#[derive(Clone, Copy)]
enum LayerInput<'a> {
    Pairs(&'a [i32]),
    Quads(&'a [i32]),
}

/// Repacks the pair planes `src` (which start at pair `src.1`) into the quad planes `quads`
/// (which start at quad `first`).
fn fill_quads(
    layer: &SimdLayer,
    q: &QuadWeights,
    src: (&[i32], usize),
    quads: &mut [i32],
    first: usize,
    isa: Isa,
) {
    #[cfg(target_arch = "x86_64")]
    if let Isa::X86(isa) = isa {
        return x86::pairs_to_quads(isa, &layer.src, q.offset, src, quads, first);
    }
    unreachable!("quad planes are only built for the VNNI kernels ({isa:?})");
}

/// Output pair planes `pairs` of one layer into `dst` (which starts at plane `pairs.start`).
/// `borders`: whether the x86 kernels restore the zero borders (`x86::conv`).
fn conv_layer(
    layer: &SimdLayer,
    input: LayerInput,
    dst: &mut [i32],
    pairs: std::ops::Range<usize>,
    isa: Isa,
    borders: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if let Isa::X86(isa) = isa {
        return x86::conv(isa, layer, input, dst, pairs, borders);
    }
    let LayerInput::Pairs(src) = input else {
        unreachable!("quad planes are only built for the VNNI kernels ({isa:?})");
    };
    match (layer.conv_stride, layer.depthwise) {
        (1, false) => conv_simd::<1, false>(layer, src, dst, pairs),
        (1, true) => conv_simd::<1, true>(layer, src, dst, pairs),
        (_, false) => conv_simd::<2, false>(layer, src, dst, pairs),
        (_, true) => conv_simd::<2, true>(layer, src, dst, pairs),
    }
}

/// One layer over pair planes, 8 output positions and 2 output channels per step, for the
/// output pairs `pairs`; `dst` starts at plane `pairs.start`.
fn conv_simd<const STRIDE: usize, const DEPTHWISE: bool>(
    layer: &SimdLayer,
    src: &[i32],
    dst: &mut [i32],
    pairs: std::ops::Range<usize>,
) {
    let (sg, dg) = (&layer.src, &layer.dst);
    let (k, pad_y, pad_x) = (layer.kernel, layer.pad_y, layer.pad_x);
    let taps = k * k;
    let MapShape { h, w, .. } = dg.shape;
    let first = pairs.start;
    for q in pairs {
        let (ca, cb) = (2 * q, 2 * q + 1);
        let plane = &mut dst[(q - first) * dg.plane_len..(q - first + 1) * dg.plane_len];
        plane[..dg.stride].fill(0);
        plane[(h + 1) * dg.stride..].fill(0);
        for oy in 0..h {
            let row = (oy + 1) * dg.stride;
            for x0 in (0..w).step_by(8) {
                let mut acc_a = i32x8::splat(layer.bias[ca]);
                let mut acc_b = i32x8::splat(layer.bias[cb]);
                for ky in 0..k {
                    // Padded coordinates: data (y, x) lives at (y + 1, x + 1).
                    let iy = oy * STRIDE + ky + 1 - pad_y;
                    for kx in 0..k {
                        let ix = x0 * STRIDE + kx + 1 - pad_x;
                        let t = ky * k + kx;
                        if DEPTHWISE {
                            let v = load8::<STRIDE>(src, q * sg.plane_len + iy * sg.stride + ix);
                            acc_a += v.dot(splat_pair(layer.packed[ca * taps + t]));
                            acc_b += v.dot(splat_pair(layer.packed[cb * taps + t]));
                        } else {
                            let wa = &layer.packed[(ca * taps + t) * sg.pairs..][..sg.pairs];
                            let wb = &layer.packed[(cb * taps + t) * sg.pairs..][..sg.pairs];
                            for p in 0..sg.pairs {
                                let v =
                                    load8::<STRIDE>(src, p * sg.plane_len + iy * sg.stride + ix);
                                acc_a += v.dot(splat_pair(wa[p]));
                                acc_b += v.dot(splat_pair(wb[p]));
                            }
                        }
                    }
                }
                let qa = requant8(layer, ca, acc_a);
                let qb = requant8(layer, cb, acc_b);
                let packed = (qa & i32x8::splat(0xffff)) | qb.unbounded_shl_scalar(16);
                plane[row + x0 + 1..row + x0 + 9].copy_from_slice(&packed.to_array());
            }
            // Restore the zero border the block loop overwrote (and any stale lanes).
            plane[row] = 0;
            plane[row + w + 1..row + dg.stride].fill(0);
        }
    }
}
