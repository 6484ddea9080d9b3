//! x86-64 convolution kernels over pair planes with 256-bit AVX2 `vpmaddwd`, or AVX-VNNI /
//! AVX512-VNNI `vpdpwssd` (multiply-add-accumulate in one instruction) where the CPU has it.
//!
//! `wide` picks its instruction set when the crate is compiled, so a portable build gets SSE2
//! (half the vector width, and stride-2 loads gathered lane by lane). These kernels are chosen
//! at run time instead (`std::arch` feature detection): the same binary runs everywhere and
//! uses what the CPU offers.
//!
//! Same layout, integer contract and requantisation ([`super::requant8`]) as
//! [`super::conv_simd`], so the results are bit-identical (`tests/engine_cpu.rs` checks every
//! kernel against the scalar one). What differs is the blocking: 16 output positions x 4
//! output channels per step, so each input load feeds up to 8 multiply-adds, and stride-2
//! rows are loaded as two vectors and compacted with two shuffles.
//!
//! With VNNI, dense 1x1 layers (three quarters of the stem's MACs) run on quad planes instead
//! ([`conv_quads`]): `vpdpbusd` multiplies four u8 activations by four i8 weights per lane, 32
//! multiply-adds per instruction against `vpdpwssd`'s 16, with 6 (AVX-VNNI, 16 registers) or 8
//! (AVX512-VNNI, 32 registers) output channels per block.
//!
//! With AVX-512 (F, BW, VL and VNNI), 16-position blocks use one 512-bit vector instead of two
//! 256-bit ones (the [`Lanes`] trait writes each kernel once for both widths): half the
//! instructions for the same work, where a CPU executes 512-bit integer ops at full rate.
//!
//! Every output value pays a requantisation, and the stem has as many outputs in its cheap
//! layers (depthwise, narrow 1x1 expansions: 4 to 14 input quads) as in its costly ones, so
//! the requantisation took about a third of the instructions. Two exact shortcuts: at 512 bits
//! the rounding constant rides on multiply-adds that are there anyway ([`super::FastRound`]:
//! 6 instructions instead of 8), and the clamp runs after packing two channels to i16, 32
//! values per `max` / `min`, in the order the pair planes want (`packs` + `pshufb`).

use super::{LayerInput, MapShape, PlaneGeom, SimdLayer, requant8};
use std::arch::x86_64::*;
use std::ops::Range;
use wide::i32x8;

/// The x86 instruction sets these kernels can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum X86Isa {
    /// 256-bit `vpmaddwd` + `vpaddd` (Haswell and later, Zen).
    Avx2,
    /// 256-bit `vpdpwssd`, VEX form (AVX-VNNI: Alder Lake, Sapphire Rapids, Zen 5).
    AvxVnni,
    /// 256-bit `vpdpwssd`, EVEX form (AVX512-VNNI + AVX512-VL: Ice Lake, Zen 4).
    Avx512Vnni,
    /// The same with 512-bit vectors for 16-position blocks (AVX512-F/BW/VL/VNNI).
    Avx512Zmm,
}

impl X86Isa {
    /// Whether this CPU can run `isa`.
    pub(super) fn supports(isa: Self) -> bool {
        is_x86_feature_detected!("avx2")
            && match isa {
                Self::Avx2 => true,
                Self::AvxVnni => is_x86_feature_detected!("avxvnni"),
                Self::Avx512Vnni => {
                    is_x86_feature_detected!("avx512vnni") && is_x86_feature_detected!("avx512vl")
                }
                Self::Avx512Zmm => {
                    is_x86_feature_detected!("avx512f")
                        && is_x86_feature_detected!("avx512bw")
                        && is_x86_feature_detected!("avx512vl")
                        && is_x86_feature_detected!("avx512vnni")
                }
            }
    }

    /// The best instruction set of this CPU, if any.
    pub(super) fn detect() -> Option<Self> {
        [Self::Avx512Zmm, Self::Avx512Vnni, Self::AvxVnni, Self::Avx2]
            .into_iter()
            .find(|&isa| Self::supports(isa))
    }

    /// Whether it has `vpdpbusd` (u8 x i8, four products per lane): dense 1x1 layers then run
    /// on quad planes ([`conv_quads`]). AVX2's `vpmaddubsw` saturates, so AVX2 keeps pairs.
    pub(super) fn has_dpbusd(self) -> bool {
        self != Self::Avx2
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Avx2 => "avx2",
            Self::AvxVnni => "avx-vnni",
            Self::Avx512Vnni => "avx512-vnni",
            Self::Avx512Zmm => "avx512-vnni-zmm",
        }
    }
}

/// One layer for the output pairs `pairs` into `dst` (which starts at plane `pairs.start`),
/// exactly as [`super::conv_simd`] computes it, from pair planes or (dense 1x1 layers with
/// VNNI) quad planes; with `borders`, the zero borders a 3x3 layer reads as padding (see
/// [`restore_borders`]).
pub(super) fn conv(
    isa: X86Isa,
    layer: &SimdLayer,
    input: LayerInput,
    dst: &mut [i32],
    pairs: Range<usize>,
    borders: bool,
) {
    let dg = &layer.dst;
    if pairs.is_empty() || dg.shape.h == 0 || dg.shape.w == 0 {
        return;
    }
    assert!(dst.len() >= pairs.len() * dg.plane_len);
    match input {
        LayerInput::Pairs(src) => conv_pairs(isa, layer, src, dst, pairs.clone()),
        LayerInput::Quads(quads) => conv_quads(isa, layer, quads, dst, pairs.clone()),
    }
    if borders {
        restore_borders(layer, dst, pairs.len());
    }
}

/// [`conv`] from pair planes.
fn conv_pairs(isa: X86Isa, layer: &SimdLayer, src: &[i32], dst: &mut [i32], pairs: Range<usize>) {
    // The loads below are unchecked: check once that the padded geometry keeps them in `src`.
    assert!(layer.kernel <= 3 && layer.pad_y <= 1 && layer.pad_x <= 1);
    assert!(matches!(layer.conv_stride, 1 | 2));
    let planes_read = if layer.depthwise {
        pairs.end
    } else {
        layer.src.pairs
    };
    assert!(planes_read <= layer.src.pairs && src.len() > last_read(layer, planes_read));
    // SAFETY: `X86Isa::supports` found the instruction set on this CPU (the only way to get
    // an `X86Isa` into a `CpuSwarm`); the bounds of every load are checked above.
    unsafe {
        match isa {
            X86Isa::Avx2 => conv_avx2(layer, src, dst, pairs),
            X86Isa::AvxVnni => conv_avx_vnni(layer, src, dst, pairs),
            X86Isa::Avx512Vnni => conv_avx512_vnni(layer, src, dst, pairs),
            X86Isa::Avx512Zmm => conv_avx512_zmm(layer, src, dst, pairs),
        }
    }
}

/// Index of the last lane of `src` that [`block`] reads, from the first `planes` planes: in
/// the last plane, the last padded row, the last block of 8 or 16 positions.
fn last_read(layer: &SimdLayer, planes: usize) -> usize {
    let (sg, dg) = (&layer.src, &layer.dst);
    let (s, k) = (layer.conv_stride, layer.kernel);
    let iy = (dg.shape.h - 1) * s + k - layer.pad_y;
    let x0 = (dg.shape.w - 1) / 16 * 16;
    let vectors = if dg.shape.w - x0 > 8 { 2 } else { 1 };
    let ix = x0 * s + k - layer.pad_x;
    (planes - 1) * sg.plane_len + iy * sg.stride + ix + 8 * vectors * s - 1
}

// Accumulation instruction selectors for the const parameter `MAC`.
const MADD: u8 = 0;
const DPWSSD_VEX: u8 = 1;
const DPWSSD_EVEX: u8 = 2;

// One entry point per instruction set: `#[target_feature]` makes the inlined body use it.
#[target_feature(enable = "avx2")]
unsafe fn conv_avx2(layer: &SimdLayer, src: &[i32], dst: &mut [i32], pairs: Range<usize>) {
    // SAFETY: forwarded from the caller.
    unsafe { conv_rows::<MADD, false>(layer, src, dst, pairs) }
}

#[target_feature(enable = "avx2,avxvnni")]
unsafe fn conv_avx_vnni(layer: &SimdLayer, src: &[i32], dst: &mut [i32], pairs: Range<usize>) {
    // SAFETY: forwarded from the caller.
    unsafe { conv_rows::<DPWSSD_VEX, false>(layer, src, dst, pairs) }
}

#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
unsafe fn conv_avx512_vnni(layer: &SimdLayer, src: &[i32], dst: &mut [i32], pairs: Range<usize>) {
    // SAFETY: forwarded from the caller.
    unsafe { conv_rows::<DPWSSD_EVEX, false>(layer, src, dst, pairs) }
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn conv_avx512_zmm(layer: &SimdLayer, src: &[i32], dst: &mut [i32], pairs: Range<usize>) {
    // SAFETY: forwarded from the caller.
    unsafe { conv_rows::<DPWSSD_EVEX, true>(layer, src, dst, pairs) }
}

#[inline(always)]
unsafe fn conv_rows<const MAC: u8, const ZMM: bool>(
    layer: &SimdLayer,
    src: &[i32],
    dst: &mut [i32],
    pairs: Range<usize>,
) {
    // SAFETY (all arms): forwarded from the caller.
    unsafe {
        match (layer.conv_stride, layer.depthwise) {
            (1, false) => conv_blocks::<MAC, ZMM, 1, false>(layer, src, dst, pairs),
            (1, true) => conv_blocks::<MAC, ZMM, 1, true>(layer, src, dst, pairs),
            (_, false) => conv_blocks::<MAC, ZMM, 2, false>(layer, src, dst, pairs),
            (_, true) => conv_blocks::<MAC, ZMM, 2, true>(layer, src, dst, pairs),
        }
    }
}

/// Dense: row by row (so one input row of every plane stays in L1 while all output pairs read
/// it); depthwise: plane by plane (see below). Two output pairs at a time (one at the end of an
/// odd count), 16 positions at a time (8 at the end of a row when no more are left); with
/// `ZMM`, 16 positions are one 512-bit vector.
#[inline(always)]
unsafe fn conv_blocks<const MAC: u8, const ZMM: bool, const S: usize, const DW: bool>(
    layer: &SimdLayer,
    src: &[i32],
    dst: &mut [i32],
    pairs: Range<usize>,
) {
    let h = layer.dst.shape.h;
    let first = pairs.start;
    if DW {
        // A depthwise output pair reads its own input plane only: plane by plane, the two rows
        // an output row shares with the next are still in L1 (row by row, every other plane
        // came between). `benches/stem_layers`: the depthwise layers 11-13 % faster on Zen 3.
        let mut q = first;
        while q < pairs.end {
            let two = q + 1 < pairs.end;
            for oy in 0..h {
                // SAFETY: forwarded from the caller.
                unsafe { block_row::<MAC, ZMM, S, DW>(layer, src, dst, (first, q, two, oy)) };
            }
            q += if two { 2 } else { 1 };
        }
    } else {
        for oy in 0..h {
            let mut q = first;
            while q < pairs.end {
                let two = q + 1 < pairs.end;
                // SAFETY: forwarded from the caller.
                unsafe { block_row::<MAC, ZMM, S, DW>(layer, src, dst, (first, q, two, oy)) };
                q += if two { 2 } else { 1 };
            }
        }
    }
}

/// Output pair `q` (and `q + 1` with `two`) of row `oy`, 16 positions at a time; `dst` starts
/// at pair `first`. (A function, not a closure: a closure would not inherit the caller's
/// `target_feature`, and the intrinsics would not inline.)
#[inline(always)]
unsafe fn block_row<const MAC: u8, const ZMM: bool, const S: usize, const DW: bool>(
    layer: &SimdLayer,
    src: &[i32],
    dst: &mut [i32],
    (first, q, two, oy): (usize, usize, bool, usize),
) {
    let w = layer.dst.shape.w;
    let mut x0 = 0;
    while x0 < w {
        let at = Block {
            q,
            local: q - first,
            oy,
            x0,
        };
        // SAFETY: forwarded from the caller.
        unsafe {
            type Y = __m256i;
            type Z = __m512i;
            match (two, w - x0 > 8, ZMM) {
                (true, true, true) => block::<Z, MAC, 2, 1, S, DW>(layer, src, dst, at),
                (true, true, false) => block::<Y, MAC, 2, 2, S, DW>(layer, src, dst, at),
                (true, false, _) => block::<Y, MAC, 2, 1, S, DW>(layer, src, dst, at),
                (false, true, true) => block::<Z, MAC, 1, 1, S, DW>(layer, src, dst, at),
                (false, true, false) => block::<Y, MAC, 1, 2, S, DW>(layer, src, dst, at),
                (false, false, _) => block::<Y, MAC, 1, 1, S, DW>(layer, src, dst, at),
            }
        }
        x0 += 16;
    }
}

/// Zeroes the one-pixel border of the first `n` planes of `dst`, so that a next 3x3 layer reads
/// "SAME" padding as zeros (a 1x1 layer on quad planes, and the final unpacking, read no
/// border): the rows above and below (the buffer held other layers' planes before), and in
/// each row the columns left and right of the data, which the blocks overwrote.
/// The lanes further right hold garbage: only garbage output columns (`x >= w`) read them, and
/// those columns are garbage in turn, down to the last layer, whose unpacking skips them.
fn restore_borders(layer: &SimdLayer, dst: &mut [i32], n: usize) {
    let dg = &layer.dst;
    let MapShape { h, w, .. } = dg.shape;
    for plane in dst.chunks_exact_mut(dg.plane_len).take(n) {
        plane[..dg.stride].fill(0);
        plane[(h + 1) * dg.stride..].fill(0);
        for oy in 0..h {
            let row = (oy + 1) * dg.stride;
            plane[row] = 0;
            plane[row + w + 1] = 0;
        }
    }
}

/// Where a block writes: output pair `q` (plane `local` of `dst`), row `oy`, column `x0`.
#[derive(Clone, Copy)]
struct Block {
    q: usize,
    local: usize,
    oy: usize,
    x0: usize,
}

/// `NP` output pairs (`2 * NP` channels) x `V::N * NV` positions: for every tap (and, when
/// dense, every input pair), `NV` loads feed `2 * NP * NV` multiply-adds.
#[inline(always)]
unsafe fn block<
    V: Lanes,
    const MAC: u8,
    const NP: usize,
    const NV: usize,
    const S: usize,
    const DW: bool,
>(
    layer: &SimdLayer,
    src: &[i32],
    dst: &mut [i32],
    b: Block,
) {
    // SAFETY: the caller enables the instruction set and checked the bounds of the loads.
    unsafe {
        let sg = &layer.src;
        let k = layer.kernel;
        let taps = k * k;
        let mut acc = [[V::splat(0); NV]; 8];
        for (c, row) in acc.iter_mut().enumerate().take(2 * NP) {
            *row = [V::splat(layer.bias[2 * b.q + c]); NV];
        }
        for ky in 0..k {
            let iy = b.oy * S + ky + 1 - layer.pad_y;
            for kx in 0..k {
                let ix = b.x0 * S + kx + 1 - layer.pad_x;
                let t = ky * k + kx;
                let row = src.as_ptr().add(iy * sg.stride + ix);
                if DW {
                    // Plane q holds the input of output pair q; the weights (w, 0) and (0, w)
                    // select one channel of the pair each.
                    for p in 0..NP {
                        let at = row.add((b.q + p) * sg.plane_len);
                        let v: [V; NV] =
                            std::array::from_fn(|j| V::load::<S>(at.add(V::N * S * j)));
                        let c = 2 * (b.q + p);
                        let wa = V::splat(layer.packed[c * taps + t]);
                        let wb = V::splat(layer.packed[(c + 1) * taps + t]);
                        for j in 0..NV {
                            acc[2 * p][j] = acc[2 * p][j].mac::<MAC>(v[j], wa);
                            acc[2 * p + 1][j] = acc[2 * p + 1][j].mac::<MAC>(v[j], wb);
                        }
                    }
                } else {
                    let weights = std::array::from_fn(|c| {
                        let c = 2 * b.q + c.min(2 * NP - 1);
                        layer.packed[(c * taps + t) * sg.pairs..].as_ptr()
                    });
                    let (n, len) = (sg.pairs, sg.plane_len);
                    let row = (row, V::N * S);
                    dense_step::<V, NP, NV, S>(&mut acc, row, len, n, weights, |a, v, w| {
                        a.mac::<MAC>(v, w)
                    });
                }
            }
        }
        store::<V, NP, NV>(layer, dst, (b, V::N), &acc);
    }
}

/// One tap of a dense layer: for each of the `n` input planes (`len` lanes apart) from `row`,
/// `NV` loads (`step` lanes apart), each multiplied by the broadcast weight
/// `weights[c][plane]` of each of the `2 * NP` output channels into `acc[c]` with `mac`.
#[inline(always)]
unsafe fn dense_step<V: Lanes, const NP: usize, const NV: usize, const S: usize>(
    acc: &mut [[V; NV]; 8],
    (row, step): (*const i32, usize),
    len: usize,
    n: usize,
    weights: [*const i32; 8],
    mac: impl Fn(V, V, V) -> V,
) {
    // SAFETY: the caller enables the instruction set and checked the bounds of the loads;
    // each `weights[c]` holds `n` lanes.
    unsafe {
        for p in 0..n {
            let at = row.add(p * len);
            let v: [V; NV] = std::array::from_fn(|j| V::load::<S>(at.add(step * j)));
            for c in 0..2 * NP {
                let wv = V::splat(*weights[c].add(p));
                for j in 0..NV {
                    acc[c][j] = mac(acc[c][j], v[j], wv);
                }
            }
        }
    }
}

/// Requantises the accumulators of `NP` output pairs x `NV` vectors of positions (`step` lanes
/// apart: along the row, or on consecutive rows) and stores them into their pair planes.
#[inline(always)]
unsafe fn store<V: Lanes, const NP: usize, const NV: usize>(
    layer: &SimdLayer,
    dst: &mut [i32],
    (b, step): (Block, usize),
    acc: &[[V; NV]],
) {
    // SAFETY: the caller enables the instruction set; the slices are bounds-checked.
    unsafe {
        let dg = &layer.dst;
        let out = (b.oy + 1) * dg.stride + b.x0 + 1;
        for p in 0..NP {
            let plane = &mut dst[(b.local + p) * dg.plane_len..][..dg.plane_len];
            let (ca, cb) = (2 * (b.q + p), 2 * (b.q + p) + 1);
            for j in 0..NV {
                let lanes = &mut plane[out + step * j..][..V::N];
                if layer.lut.is_some() {
                    let qa = V::requant_lut(layer, ca, acc[2 * p][j]);
                    let qb = V::requant_lut(layer, cb, acc[2 * p + 1][j]);
                    V::store_pair(qa, qb, lanes.as_mut_ptr());
                } else {
                    let ra = V::scale(layer, ca, acc[2 * p][j]);
                    let rb = V::scale(layer, cb, acc[2 * p + 1][j]);
                    V::clamp_store_pair(layer, b.q + p, ra, rb, lanes.as_mut_ptr());
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dense 1x1 layers on quad planes (`vpdpbusd`)

/// Repacks the pair planes `src` (geometry `g`; `src` starts at pair `base`, so it may hold
/// only the pairs read) into quad planes `first..` (as many as `quads` holds): quad `g` packs
/// pairs `2g` and `2g + 1` (pair `2g` again past the last pair: its weights are zero) as the
/// bytes `x + offset` of channels `4g, 4g + 2, 4g + 1, 4g + 3`, where `x` is the centred i16
/// and `offset = 128 + zp`, so each byte is the unsigned `q + 128`.
/// Only the lanes [`conv_quads`] reads are written: columns `0..w` rounded up to 8 of each row,
/// no border (a 1x1 layer reads none).
pub(super) fn pairs_to_quads(
    isa: X86Isa,
    g: &PlaneGeom,
    offset: i32,
    (src, base): (&[i32], usize),
    quads: &mut [i32],
    first: usize,
) {
    let plane = g.plane_len;
    assert!(isa.has_dpbusd() && quads.len().is_multiple_of(plane));
    let count = quads.len() / plane;
    assert!(first + count <= g.pairs.div_ceil(2));
    if count == 0 {
        return;
    }
    // The pairs read: 2 * first ..= the odd pair of the last quad (clamped to the last pair).
    let last_pair = (2 * (first + count) - 1).min(g.pairs - 1);
    assert!(base <= 2 * first && src.len() >= (last_pair + 1 - base) * plane);
    // Rows 1..=h, lanes 1..=w8 of each: inside the plane, since the stride is w8 + 8.
    assert!(g.stride > g.shape.w.next_multiple_of(8));
    // SAFETY: `X86Isa::supports` found AVX2 on this CPU; the loads stay in the checked planes.
    unsafe { pairs_to_quads_avx2(g, offset, src, base, quads, first) }
}

#[target_feature(enable = "avx2")]
unsafe fn pairs_to_quads_avx2(
    g: &PlaneGeom,
    offset: i32,
    src: &[i32],
    base: usize,
    quads: &mut [i32],
    first: usize,
) {
    // SAFETY: see `pairs_to_quads`.
    unsafe {
        let k = _mm256_set1_epi16(offset as i16);
        let low_bytes = _mm256_set1_epi32(0x00ff_00ff);
        let (plane, w8) = (g.plane_len, g.shape.w.next_multiple_of(8));
        for (i, out) in quads.chunks_exact_mut(plane).enumerate() {
            let q = first + i;
            let even = src.as_ptr().add((2 * q - base) * plane);
            let odd = src
                .as_ptr()
                .add(((2 * q + 1).min(g.pairs - 1).max(2 * q) - base) * plane);
            for y in 1..=g.shape.h {
                for x in (y * g.stride + 1..y * g.stride + 1 + w8).step_by(8) {
                    let a = _mm256_add_epi16(_mm256_loadu_si256(even.add(x).cast()), k);
                    let b = _mm256_add_epi16(_mm256_loadu_si256(odd.add(x).cast()), k);
                    let v = _mm256_or_si256(
                        _mm256_and_si256(a, low_bytes),
                        _mm256_slli_epi32::<8>(_mm256_and_si256(b, low_bytes)),
                    );
                    _mm256_storeu_si256(out.as_mut_ptr().add(x).cast(), v);
                }
            }
        }
    }
}

/// [`conv`] of a dense 1x1 layer (stride 1) from quad planes: bit-identical to the same layer
/// on pair planes.
fn conv_quads(isa: X86Isa, layer: &SimdLayer, quads: &[i32], dst: &mut [i32], pairs: Range<usize>) {
    let dg = &layer.dst;
    let q = layer.quads.as_ref().expect("a dense 1x1 layer");
    assert!(isa.has_dpbusd() && layer.kernel == 1 && layer.conv_stride == 1);
    // The last block reads 16 lanes from column `x0 + 1` of the last row: inside the plane.
    assert!(quads.len() >= q.count * layer.src.plane_len && layer.src.stride >= dg.shape.w + 8);
    // SAFETY: as in `conv`.
    unsafe {
        match isa {
            X86Isa::AvxVnni => quads_avx_vnni(layer, quads, dst, pairs),
            X86Isa::Avx512Vnni => quads_avx512_vnni(layer, quads, dst, pairs),
            X86Isa::Avx512Zmm => quads_avx512_zmm(layer, quads, dst, pairs),
            X86Isa::Avx2 => unreachable!("checked above"),
        }
    }
}

#[target_feature(enable = "avx2,avxvnni")]
unsafe fn quads_avx_vnni(layer: &SimdLayer, quads: &[i32], dst: &mut [i32], pairs: Range<usize>) {
    // SAFETY: forwarded from the caller.
    unsafe { quad_rows::<DPWSSD_VEX, 3, false>(layer, quads, dst, pairs) }
}

#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
unsafe fn quads_avx512_vnni(
    layer: &SimdLayer,
    quads: &[i32],
    dst: &mut [i32],
    pairs: Range<usize>,
) {
    // SAFETY: forwarded from the caller.
    unsafe { quad_rows::<DPWSSD_EVEX, 4, false>(layer, quads, dst, pairs) }
}

#[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn quads_avx512_zmm(layer: &SimdLayer, quads: &[i32], dst: &mut [i32], pairs: Range<usize>) {
    // SAFETY: forwarded from the caller.
    unsafe { quad_rows::<DPWSSD_EVEX, 4, true>(layer, quads, dst, pairs) }
}

/// Row by row, `NP` output pairs at a time (fewer at the end), 16 positions at a time (8 at
/// the end of a row); with `ZMM`, 16 positions are one 512-bit vector.
#[inline(always)]
unsafe fn quad_rows<const MAC: u8, const NP: usize, const ZMM: bool>(
    layer: &SimdLayer,
    quads: &[i32],
    dst: &mut [i32],
    pairs: Range<usize>,
) {
    let MapShape { h, w, .. } = layer.dst.shape;
    let first = pairs.start;
    let mut oy = 0;
    while oy < h {
        // With 32 registers, two rows at a time: each weight broadcast feeds two vectors.
        let two_rows = ZMM && oy + 1 < h;
        let mut q = first;
        while q < pairs.end {
            let n = (pairs.end - q).min(NP);
            let mut x0 = 0;
            while x0 < w {
                let at = Block {
                    q,
                    local: q - first,
                    oy,
                    x0,
                };
                let wide = w - x0 > 8;
                type Y = __m256i;
                type Z = __m512i;
                // SAFETY: forwarded from the caller.
                unsafe {
                    match (two_rows, wide, ZMM) {
                        (true, true, _) => quad_width::<Z, MAC, 2, true>(n, layer, quads, dst, at),
                        (true, false, _) => quad_width::<Y, MAC, 2, true>(n, layer, quads, dst, at),
                        (false, true, true) => {
                            quad_width::<Z, MAC, 1, false>(n, layer, quads, dst, at)
                        }
                        (false, true, false) => {
                            quad_width::<Y, MAC, 2, false>(n, layer, quads, dst, at)
                        }
                        (false, false, _) => {
                            quad_width::<Y, MAC, 1, false>(n, layer, quads, dst, at)
                        }
                    }
                }
                x0 += 16;
            }
            q += n;
        }
        oy += if two_rows { 2 } else { 1 };
    }
}

/// [`quad_block`] for `n` (1 to 4) output pairs.
#[inline(always)]
unsafe fn quad_width<V: Lanes, const MAC: u8, const NV: usize, const ROWS: bool>(
    n: usize,
    layer: &SimdLayer,
    quads: &[i32],
    dst: &mut [i32],
    at: Block,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match n {
            4 => quad_block::<V, MAC, 4, NV, ROWS>(layer, quads, dst, at),
            3 => quad_block::<V, MAC, 3, NV, ROWS>(layer, quads, dst, at),
            2 => quad_block::<V, MAC, 2, NV, ROWS>(layer, quads, dst, at),
            _ => quad_block::<V, MAC, 1, NV, ROWS>(layer, quads, dst, at),
        }
    }
}

/// `NP` output pairs x `NV` vectors of positions (consecutive along the row, or with `ROWS`
/// the same columns of consecutive rows): for every input quad, `NV` loads feed
/// `2 * NP * NV` `vpdpbusd` (`V::N * 4` multiply-adds each).
#[inline(always)]
unsafe fn quad_block<
    V: Lanes,
    const MAC: u8,
    const NP: usize,
    const NV: usize,
    const ROWS: bool,
>(
    layer: &SimdLayer,
    quads: &[i32],
    dst: &mut [i32],
    b: Block,
) {
    // SAFETY: the caller enables the instruction set and checked the bounds of the loads.
    unsafe {
        let (sg, qw) = (&layer.src, layer.quads.as_ref().unwrap_unchecked());
        let mut acc = [[V::splat(0); NV]; 8];
        for (c, row) in acc.iter_mut().enumerate().take(2 * NP) {
            *row = [V::splat(qw.bias[2 * b.q + c]); NV];
        }
        let weights = std::array::from_fn(|c| {
            let c = 2 * b.q + c.min(2 * NP - 1);
            qw.packed[c * qw.count..].as_ptr()
        });
        let row = quads.as_ptr().add((b.oy + 1) * sg.stride + b.x0 + 1);
        let (ins, outs) = if ROWS {
            (sg.stride, layer.dst.stride)
        } else {
            (V::N, V::N)
        };
        let len = sg.plane_len;
        dense_step::<V, NP, NV, 1>(&mut acc, (row, ins), len, qw.count, weights, |a, v, w| {
            a.dpbusd::<MAC>(v, w)
        });
        store::<V, NP, NV>(layer, dst, (b, outs), &acc);
    }
}

/// A vector of i32 lanes the kernels are written over: 8 (`__m256i`) or 16 (`__m512i`).
/// Every method needs the instruction set of its width enabled by the caller (AVX2 and, for
/// the `MAC` it names, VNNI; AVX512-F/BW/VNNI for 512 bits).
trait Lanes: Copy {
    /// Lanes per vector.
    const N: usize;
    unsafe fn splat(x: i32) -> Self;
    /// `N` lanes from `at`, every `S`-th one.
    unsafe fn load<const S: usize>(at: *const i32) -> Self;
    /// `self + pmaddwd(v, w)` with the chosen instruction.
    unsafe fn mac<const MAC: u8>(self, v: Self, w: Self) -> Self;
    /// `self + the sum of the four u8 x i8 byte products of each lane` (`v` unsigned, `w`
    /// signed); exact, no saturation.
    unsafe fn dpbusd<const MAC: u8>(self, v: Self, w: Self) -> Self;
    /// A sigmoid layer's requantisation: [`super::requant8`]'s lane-wise LUT path, giving the
    /// centred output of channel `c`.
    unsafe fn requant_lut(layer: &SimdLayer, c: usize, acc: Self) -> Self;
    /// Stores two channels as one pair plane's lanes at `to`, the even channel `a` in the low
    /// half of each lane.
    unsafe fn store_pair(a: Self, b: Self, to: *mut i32);
    /// [`super::requant8`] without the clamp, for a layer without LUT. At 512 bits with the
    /// channel's [`super::FastRound`] where it has one (the rounding constant rides on the low
    /// half's multiply-add, the high half's on `vpdpwssd`: 6 instructions instead of 8), else
    /// the same split multiply as [`super::requant8`].
    unsafe fn scale(layer: &SimdLayer, c: usize, acc: Self) -> Self;
    /// Clamps the scaled channels `a` and `b` of output pair `q` (its `lo_pair` / `hi_pair`)
    /// and stores them as in [`Self::store_pair`]: packed to i16 with signed saturation (the
    /// clamp bounds lie inside i16, so saturating first changes nothing), put back in pair
    /// order, then clamped 32 values per `max` and `min`.
    unsafe fn clamp_store_pair(layer: &SimdLayer, q: usize, a: Self, b: Self, to: *mut i32);
}

/// `vpshufb` control that turns `packs_epi32(a, b)`'s 128-bit lanes `a0 a1 a2 a3 b0 b1 b2 b3`
/// (i16) into pair order `a0 b0 a1 b1 a2 b2 a3 b3`.
const PAIR_ORDER: [i8; 16] = [0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15];

impl Lanes for __m256i {
    const N: usize = 8;

    #[inline(always)]
    unsafe fn splat(x: i32) -> Self {
        // SAFETY: the caller enables AVX2.
        unsafe { _mm256_set1_epi32(x) }
    }

    #[inline(always)]
    unsafe fn load<const S: usize>(at: *const i32) -> Self {
        // SAFETY: the caller checked that `8 * S` lanes from `at` are in bounds.
        unsafe {
            let lo = _mm256_loadu_si256(at.cast());
            if S == 1 {
                return lo;
            }
            let hi = _mm256_loadu_si256(at.add(8).cast());
            // [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6], then the 64-bit quarters in order 0, 2, 1, 3.
            let even = _mm256_shuffle_ps::<0b10_00_10_00>(
                _mm256_castsi256_ps(lo),
                _mm256_castsi256_ps(hi),
            );
            _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_castps_si256(even))
        }
    }

    #[inline(always)]
    unsafe fn mac<const MAC: u8>(self, v: Self, w: Self) -> Self {
        // SAFETY: the caller enables the instruction set `MAC` names.
        unsafe {
            match MAC {
                DPWSSD_VEX => _mm256_dpwssd_avx_epi32(self, v, w),
                DPWSSD_EVEX => _mm256_dpwssd_epi32(self, v, w),
                _ => _mm256_add_epi32(self, _mm256_madd_epi16(v, w)),
            }
        }
    }

    #[inline(always)]
    unsafe fn dpbusd<const MAC: u8>(self, v: Self, w: Self) -> Self {
        // SAFETY: the caller enables the instruction set `MAC` names.
        unsafe {
            match MAC {
                DPWSSD_VEX => _mm256_dpbusd_avx_epi32(self, v, w),
                _ => _mm256_dpbusd_epi32(self, v, w),
            }
        }
    }

    #[inline(always)]
    unsafe fn requant_lut(layer: &SimdLayer, c: usize, acc: Self) -> Self {
        // SAFETY: plain lane reinterpretation.
        unsafe {
            let lanes = i32x8::new(std::mem::transmute::<__m256i, [i32; 8]>(acc));
            std::mem::transmute::<[i32; 8], __m256i>(requant8(layer, c, lanes).to_array())
        }
    }

    #[inline(always)]
    unsafe fn store_pair(a: Self, b: Self, to: *mut i32) {
        // SAFETY: the caller enables AVX2 and passes 8 writable lanes.
        unsafe {
            let packed = _mm256_blend_epi16::<0b1010_1010>(a, _mm256_slli_epi32::<16>(b));
            _mm256_storeu_si256(to.cast(), packed);
        }
    }

    #[inline(always)]
    unsafe fn scale(layer: &SimdLayer, c: usize, acc: Self) -> Self {
        // SAFETY: the caller enables AVX2. Without ternary logic the fast rounding saves
        // nothing at this width: the split multiply of `requant8` as it stands.
        unsafe {
            let m = _mm256_set1_epi32(layer.mult[c]);
            let s = layer.shift[c] as i32;
            let hi = _mm256_srai_epi32::<15>(acc);
            let lo = _mm256_and_si256(acc, _mm256_set1_epi32(0x7fff));
            let r = _mm256_add_epi32(
                _mm256_add_epi32(
                    _mm256_madd_epi16(hi, m),
                    _mm256_srai_epi32::<15>(_mm256_madd_epi16(lo, m)),
                ),
                _mm256_set1_epi32(1 << (s - 16)),
            );
            _mm256_sra_epi32(r, _mm_cvtsi32_si128(s - 15))
        }
    }

    #[inline(always)]
    unsafe fn clamp_store_pair(layer: &SimdLayer, q: usize, a: Self, b: Self, to: *mut i32) {
        // SAFETY: the caller enables AVX2 and passes 8 writable lanes.
        unsafe {
            let order = _mm256_broadcastsi128_si256(_mm_loadu_si128(PAIR_ORDER.as_ptr().cast()));
            let packed = _mm256_shuffle_epi8(_mm256_packs_epi32(a, b), order);
            let packed = _mm256_min_epi16(
                _mm256_max_epi16(packed, _mm256_set1_epi32(layer.lo_pair[q])),
                _mm256_set1_epi32(layer.hi_pair[q]),
            );
            _mm256_storeu_si256(to.cast(), packed);
        }
    }
}

impl Lanes for __m512i {
    const N: usize = 16;

    #[inline(always)]
    unsafe fn splat(x: i32) -> Self {
        // SAFETY: the caller enables AVX512-F.
        unsafe { _mm512_set1_epi32(x) }
    }

    #[inline(always)]
    unsafe fn load<const S: usize>(at: *const i32) -> Self {
        // SAFETY: the caller checked that `16 * S` lanes from `at` are in bounds.
        unsafe {
            let lo = _mm512_loadu_si512(at.cast());
            if S == 1 {
                return lo;
            }
            let hi = _mm512_loadu_si512(at.add(16).cast());
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            _mm512_permutex2var_epi32(lo, even, hi)
        }
    }

    #[inline(always)]
    unsafe fn mac<const MAC: u8>(self, v: Self, w: Self) -> Self {
        debug_assert_eq!(MAC, DPWSSD_EVEX, "512-bit vectors are EVEX only");
        // SAFETY: the caller enables AVX512-VNNI (the only `MAC` used at this width).
        unsafe { _mm512_dpwssd_epi32(self, v, w) }
    }

    #[inline(always)]
    unsafe fn dpbusd<const MAC: u8>(self, v: Self, w: Self) -> Self {
        // SAFETY: the caller enables AVX512-VNNI.
        unsafe { _mm512_dpbusd_epi32(self, v, w) }
    }

    #[inline(always)]
    unsafe fn requant_lut(layer: &SimdLayer, c: usize, acc: Self) -> Self {
        // SAFETY: the caller enables AVX512-F (and so AVX2).
        unsafe {
            let lo = __m256i::requant_lut(layer, c, _mm512_castsi512_si256(acc));
            let hi = __m256i::requant_lut(layer, c, _mm512_extracti64x4_epi64::<1>(acc));
            _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
        }
    }

    #[inline(always)]
    unsafe fn store_pair(a: Self, b: Self, to: *mut i32) {
        // SAFETY: the caller enables AVX512-BW and passes 16 writable lanes.
        unsafe {
            let packed = _mm512_mask_blend_epi16(0xaaaa_aaaa, a, _mm512_slli_epi32::<16>(b));
            _mm512_storeu_si512(to.cast(), packed);
        }
    }

    #[inline(always)]
    unsafe fn scale(layer: &SimdLayer, c: usize, acc: Self) -> Self {
        // SAFETY: the caller enables AVX512-F/BW/VNNI.
        unsafe {
            let s = layer.shift[c] as i32;
            let hi = _mm512_srai_epi32::<15>(acc);
            let r = match layer.fast_round[c] {
                Some(f) => {
                    // (acc & 0x7fff) | lo_or in one ternary-logic op (0xea: A & B | C).
                    let lo = _mm512_ternarylogic_epi32::<0xea>(
                        acc,
                        _mm512_set1_epi32(0x7fff),
                        _mm512_set1_epi32(f.lo_or),
                    );
                    let t =
                        _mm512_srai_epi32::<15>(_mm512_madd_epi16(lo, _mm512_set1_epi32(f.mult)));
                    _mm512_dpwssd_epi32(t, hi, _mm512_set1_epi32(layer.mult[c]))
                }
                None => {
                    let m = _mm512_set1_epi32(layer.mult[c]);
                    let lo = _mm512_and_si512(acc, _mm512_set1_epi32(0x7fff));
                    _mm512_add_epi32(
                        _mm512_add_epi32(
                            _mm512_madd_epi16(hi, m),
                            _mm512_srai_epi32::<15>(_mm512_madd_epi16(lo, m)),
                        ),
                        _mm512_set1_epi32(1 << (s - 16)),
                    )
                }
            };
            _mm512_sra_epi32(r, _mm_cvtsi32_si128(s - 15))
        }
    }

    #[inline(always)]
    unsafe fn clamp_store_pair(layer: &SimdLayer, q: usize, a: Self, b: Self, to: *mut i32) {
        // SAFETY: the caller enables AVX512-F/BW and passes 16 writable lanes.
        unsafe {
            let order = _mm512_broadcast_i32x4(_mm_loadu_si128(PAIR_ORDER.as_ptr().cast()));
            let packed = _mm512_shuffle_epi8(_mm512_packs_epi32(a, b), order);
            let packed = _mm512_min_epi16(
                _mm512_max_epi16(packed, _mm512_set1_epi32(layer.lo_pair[q])),
                _mm512_set1_epi32(layer.hi_pair[q]),
            );
            _mm512_storeu_si512(to.cast(), packed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{FastRound, MapShape, PlaneGeom, SimdLayer, pair_lane};
    use super::*;
    use crate::engine::quant::{ACC_LIMIT, Requant};
    use crate::engine::synth::Rng;

    /// A 1x1 layer of two output channels with the given requantisations and clamps: all that
    /// [`Lanes::scale`] and [`Lanes::clamp_store_pair`] read.
    fn two_channels(r: [Requant; 2], lo: [i32; 2], hi: [i32; 2]) -> SimdLayer {
        let shape = MapShape { h: 1, w: 16, c: 2 };
        SimdLayer {
            depthwise: false,
            kernel: 1,
            conv_stride: 1,
            fan_in: 2,
            pad_y: 0,
            pad_x: 0,
            src: PlaneGeom::new(shape),
            dst: PlaneGeom::new(shape),
            packed: vec![0; 2],
            bias: vec![0; 2],
            mult: r.iter().map(|r| r.multiplier).collect(),
            shift: r.iter().map(|r| r.shift).collect(),
            lo: lo.to_vec(),
            hi: hi.to_vec(),
            lo_pair: vec![pair_lane(lo[0], lo[1])],
            hi_pair: vec![pair_lane(hi[0], hi[1])],
            fast_round: r.iter().map(|&r| FastRound::new(r)).collect(),
            lut: None,
            quads: None,
        }
    }

    /// What the scalar kernel stores for one lane: both channels requantised and clamped.
    fn expected(layer: &SimdLayer, a: i32, b: i32) -> i32 {
        let q = |c: usize, acc: i32| {
            let r = Requant {
                multiplier: layer.mult[c],
                shift: layer.shift[c],
            };
            r.apply(acc).clamp(layer.lo[c], layer.hi[c])
        };
        pair_lane(q(0, a), q(1, b))
    }

    /// Every shift the bundle format allows (the fast rounding for 16..=29, the split multiply
    /// for 30..=46), multipliers over their range, accumulators up to the limit and at the rounding
    /// boundaries, clamp bounds of every sign: the scaled, packed and clamped lanes equal the
    /// scalar requantisation, at 256 and (where the CPU has it) 512 bits.
    #[test]
    fn requantise_and_pack_match_the_scalar_formula() {
        let mut rng = Rng::new(7);
        let zmm = X86Isa::supports(X86Isa::Avx512Zmm);
        if !zmm {
            eprintln!("512-bit requantisation not tested: the CPU lacks AVX512-F/BW/VL/VNNI");
        }
        if !X86Isa::supports(X86Isa::Avx2) {
            eprintln!("x86 requantisation not tested: the CPU lacks AVX2");
            return;
        }
        let mut fast = 0;
        for shift in Requant::MIN_SHIFT..=Requant::MAX_SHIFT {
            for round in 0..40 {
                let mult = |rng: &mut Rng| match round {
                    0 => 0,
                    1 => 32767,
                    _ => 16384 + rng.below(16384) as i32,
                };
                let bound = |rng: &mut Rng| rng.below(511) as i32 - 255;
                let (l0, l1) = (bound(&mut rng), bound(&mut rng));
                let layer = two_channels(
                    [
                        Requant {
                            multiplier: mult(&mut rng),
                            shift,
                        },
                        Requant {
                            multiplier: mult(&mut rng),
                            shift,
                        },
                    ],
                    [l0, l1],
                    [l0 + rng.below(256) as i32, l1 + rng.below(256) as i32],
                );
                fast += layer.fast_round.iter().flatten().count();
                let limit = (ACC_LIMIT - 1) as i32;
                let acc: [i32; 32] = std::array::from_fn(|i| match i {
                    0 => limit,
                    1 => -limit,
                    2 => 0,
                    // Around an odd multiple of half an output step: where rounding decides.
                    3..=5 => {
                        let m = i64::from(layer.mult[i % 2].max(1));
                        let half = (1i64 << (shift - 1)) / m;
                        (half.min(i64::from(limit)) as i32) + i as i32 - 4
                    }
                    _ => (rng.next_u64() % (2 * limit as u64 + 1)) as i32 - limit,
                });
                let want: Vec<i32> = (0..16)
                    .map(|i| expected(&layer, acc[i], acc[16 + i]))
                    .collect();
                // SAFETY: AVX2 (and below, AVX-512) checked above; 16 lanes written.
                unsafe {
                    let mut got = [0i32; 16];
                    ymm_lanes(&layer, &acc, &mut got);
                    assert_eq!(
                        got.to_vec(),
                        want,
                        "256 bits, shift {shift}, {:?}",
                        layer.mult
                    );
                    if zmm {
                        zmm_lanes(&layer, &acc, &mut got);
                        assert_eq!(
                            got.to_vec(),
                            want,
                            "512 bits, shift {shift}, {:?}",
                            layer.mult
                        );
                    }
                }
            }
        }
        // 14 of the 31 shifts take the fast rounding, 2 channels x 40 layers each.
        assert_eq!(fast, 14 * 2 * 40);
    }

    #[target_feature(enable = "avx2")]
    unsafe fn ymm_lanes(layer: &SimdLayer, acc: &[i32; 32], got: &mut [i32; 16]) {
        // SAFETY: the caller checked the instruction set; 16 lanes read and written.
        unsafe {
            for h in 0..2 {
                let a = _mm256_loadu_si256(acc[8 * h..].as_ptr().cast());
                let b = _mm256_loadu_si256(acc[16 + 8 * h..].as_ptr().cast());
                let (ra, rb) = (__m256i::scale(layer, 0, a), __m256i::scale(layer, 1, b));
                __m256i::clamp_store_pair(layer, 0, ra, rb, got[8 * h..].as_mut_ptr());
            }
        }
    }

    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn zmm_lanes(layer: &SimdLayer, acc: &[i32; 32], got: &mut [i32; 16]) {
        // SAFETY: the caller checked the instruction set; 16 lanes read and written.
        unsafe {
            let a = _mm512_loadu_si512(acc.as_ptr().cast());
            let b = _mm512_loadu_si512(acc[16..].as_ptr().cast());
            let (ra, rb) = (__m512i::scale(layer, 0, a), __m512i::scale(layer, 1, b));
            __m512i::clamp_store_pair(layer, 0, ra, rb, got.as_mut_ptr());
        }
    }
}
