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
            }
    }

    /// The best instruction set of this CPU, if any.
    pub(super) fn detect() -> Option<Self> {
        [Self::Avx512Vnni, Self::AvxVnni, Self::Avx2]
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
    unsafe { conv_rows::<MADD>(layer, src, dst, pairs) }
}

#[target_feature(enable = "avx2,avxvnni")]
unsafe fn conv_avx_vnni(layer: &SimdLayer, src: &[i32], dst: &mut [i32], pairs: Range<usize>) {
    // SAFETY: forwarded from the caller.
    unsafe { conv_rows::<DPWSSD_VEX>(layer, src, dst, pairs) }
}

#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
unsafe fn conv_avx512_vnni(layer: &SimdLayer, src: &[i32], dst: &mut [i32], pairs: Range<usize>) {
    // SAFETY: forwarded from the caller.
    unsafe { conv_rows::<DPWSSD_EVEX>(layer, src, dst, pairs) }
}

#[inline(always)]
unsafe fn conv_rows<const MAC: u8>(
    layer: &SimdLayer,
    src: &[i32],
    dst: &mut [i32],
    pairs: Range<usize>,
) {
    // SAFETY (all arms): forwarded from the caller.
    unsafe {
        match (layer.conv_stride, layer.depthwise) {
            (1, false) => conv_blocks::<MAC, 1, false>(layer, src, dst, pairs),
            (1, true) => conv_blocks::<MAC, 1, true>(layer, src, dst, pairs),
            (_, false) => conv_blocks::<MAC, 2, false>(layer, src, dst, pairs),
            (_, true) => conv_blocks::<MAC, 2, true>(layer, src, dst, pairs),
        }
    }
}

/// Row by row (so one input row of every plane stays in L1 while all output pairs read it),
/// two output pairs at a time (one at the end of an odd count), 16 positions at a time (8 at
/// the end of a row when no more are left).
#[inline(always)]
unsafe fn conv_blocks<const MAC: u8, const S: usize, const DW: bool>(
    layer: &SimdLayer,
    src: &[i32],
    dst: &mut [i32],
    pairs: Range<usize>,
) {
    let dg = &layer.dst;
    let MapShape { h, w, .. } = dg.shape;
    let first = pairs.start;
    for oy in 0..h {
        let mut q = first;
        while q < pairs.end {
            let two = q + 1 < pairs.end;
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
                    match (two, w - x0 > 8) {
                        (true, true) => block::<MAC, 2, 2, S, DW>(layer, src, dst, at),
                        (true, false) => block::<MAC, 2, 1, S, DW>(layer, src, dst, at),
                        (false, true) => block::<MAC, 1, 2, S, DW>(layer, src, dst, at),
                        (false, false) => block::<MAC, 1, 1, S, DW>(layer, src, dst, at),
                    }
                }
                x0 += 16;
            }
            q += if two { 2 } else { 1 };
        }
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

/// `NP` output pairs (`2 * NP` channels) x `8 * NV` positions: for every tap (and, when
/// dense, every input pair), `NV` loads feed `2 * NP * NV` multiply-adds.
#[inline(always)]
unsafe fn block<const MAC: u8, const NP: usize, const NV: usize, const S: usize, const DW: bool>(
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
        let mut acc = [[_mm256_setzero_si256(); NV]; 8];
        for (c, row) in acc.iter_mut().enumerate().take(2 * NP) {
            *row = [_mm256_set1_epi32(layer.bias[2 * b.q + c]); NV];
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
                        let v: [__m256i; NV] =
                            std::array::from_fn(|j| load::<S>(at.add(8 * S * j)));
                        let c = 2 * (b.q + p);
                        let wa = _mm256_set1_epi32(layer.packed[c * taps + t]);
                        let wb = _mm256_set1_epi32(layer.packed[(c + 1) * taps + t]);
                        for j in 0..NV {
                            acc[2 * p][j] = mac::<MAC>(acc[2 * p][j], v[j], wa);
                            acc[2 * p + 1][j] = mac::<MAC>(acc[2 * p + 1][j], v[j], wb);
                        }
                    }
                } else {
                    let weights = std::array::from_fn(|c| {
                        let c = 2 * b.q + c.min(2 * NP - 1);
                        layer.packed[(c * taps + t) * sg.pairs..].as_ptr()
                    });
                    let (n, len) = (sg.pairs, sg.plane_len);
                    dense_step::<NP, NV, S>(&mut acc, row, len, n, weights, |a, v, w| {
                        mac::<MAC>(a, v, w)
                    });
                }
            }
        }
        store::<NP, NV>(layer, dst, b, &acc);
    }
}

/// One tap of a dense layer: for each of the `n` input planes (`len` lanes apart) from `row`,
/// `NV` loads, each multiplied by the broadcast weight `weights[c][plane]` of each of the
/// `2 * NP` output channels into `acc[c]` with `mac`.
#[inline(always)]
unsafe fn dense_step<const NP: usize, const NV: usize, const S: usize>(
    acc: &mut [[__m256i; NV]; 8],
    row: *const i32,
    len: usize,
    n: usize,
    weights: [*const i32; 8],
    mac: impl Fn(__m256i, __m256i, __m256i) -> __m256i,
) {
    // SAFETY: the caller enables the instruction set and checked the bounds of the loads;
    // each `weights[c]` holds `n` lanes.
    unsafe {
        for p in 0..n {
            let at = row.add(p * len);
            let v: [__m256i; NV] = std::array::from_fn(|j| load::<S>(at.add(8 * S * j)));
            for c in 0..2 * NP {
                let wv = _mm256_set1_epi32(*weights[c].add(p));
                for j in 0..NV {
                    acc[c][j] = mac(acc[c][j], v[j], wv);
                }
            }
        }
    }
}

/// Requantises the accumulators of `NP` output pairs x `8 * NV` positions and stores them
/// into their pair planes.
#[inline(always)]
unsafe fn store<const NP: usize, const NV: usize>(
    layer: &SimdLayer,
    dst: &mut [i32],
    b: Block,
    acc: &[[__m256i; NV]],
) {
    // SAFETY: the caller enables AVX2; the slices are bounds-checked.
    unsafe {
        let dg = &layer.dst;
        let out = (b.oy + 1) * dg.stride + b.x0 + 1;
        for p in 0..NP {
            let plane = &mut dst[(b.local + p) * dg.plane_len..][..dg.plane_len];
            let (ca, cb) = (2 * (b.q + p), 2 * (b.q + p) + 1);
            for j in 0..NV {
                let qa = requant(layer, ca, acc[2 * p][j]);
                let qb = requant(layer, cb, acc[2 * p + 1][j]);
                // Even channel in the low half of each lane.
                let packed = _mm256_blend_epi16::<0b1010_1010>(qa, _mm256_slli_epi32::<16>(qb));
                let lanes = &mut plane[out + 8 * j..out + 8 * j + 8];
                _mm256_storeu_si256(lanes.as_mut_ptr().cast(), packed);
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
            X86Isa::Avx2 => unreachable!("checked above"),
        }
    }
}

#[target_feature(enable = "avx2,avxvnni")]
unsafe fn quads_avx_vnni(layer: &SimdLayer, quads: &[i32], dst: &mut [i32], pairs: Range<usize>) {
    // SAFETY: forwarded from the caller.
    unsafe { quad_rows::<DPWSSD_VEX, 3>(layer, quads, dst, pairs) }
}

#[target_feature(enable = "avx2,avx512vnni,avx512vl")]
unsafe fn quads_avx512_vnni(
    layer: &SimdLayer,
    quads: &[i32],
    dst: &mut [i32],
    pairs: Range<usize>,
) {
    // SAFETY: forwarded from the caller.
    unsafe { quad_rows::<DPWSSD_EVEX, 4>(layer, quads, dst, pairs) }
}

/// Row by row, `NP` output pairs at a time (fewer at the end), 16 positions at a time (8 at
/// the end of a row).
#[inline(always)]
unsafe fn quad_rows<const MAC: u8, const NP: usize>(
    layer: &SimdLayer,
    quads: &[i32],
    dst: &mut [i32],
    pairs: Range<usize>,
) {
    let MapShape { h, w, .. } = layer.dst.shape;
    let first = pairs.start;
    for oy in 0..h {
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
                // SAFETY: forwarded from the caller.
                unsafe {
                    match (n, wide) {
                        (4, true) => quad_block::<MAC, 4, 2>(layer, quads, dst, at),
                        (4, false) => quad_block::<MAC, 4, 1>(layer, quads, dst, at),
                        (3, true) => quad_block::<MAC, 3, 2>(layer, quads, dst, at),
                        (3, false) => quad_block::<MAC, 3, 1>(layer, quads, dst, at),
                        (2, true) => quad_block::<MAC, 2, 2>(layer, quads, dst, at),
                        (2, false) => quad_block::<MAC, 2, 1>(layer, quads, dst, at),
                        (_, true) => quad_block::<MAC, 1, 2>(layer, quads, dst, at),
                        (_, false) => quad_block::<MAC, 1, 1>(layer, quads, dst, at),
                    }
                }
                x0 += 16;
            }
            q += n;
        }
    }
}

/// `NP` output pairs x `8 * NV` positions: for every input quad, `NV` loads feed
/// `2 * NP * NV` `vpdpbusd` (32 multiply-adds each).
#[inline(always)]
unsafe fn quad_block<const MAC: u8, const NP: usize, const NV: usize>(
    layer: &SimdLayer,
    quads: &[i32],
    dst: &mut [i32],
    b: Block,
) {
    // SAFETY: the caller enables the instruction set and checked the bounds of the loads.
    unsafe {
        let (sg, qw) = (&layer.src, layer.quads.as_ref().unwrap_unchecked());
        let mut acc = [[_mm256_setzero_si256(); NV]; 8];
        for (c, row) in acc.iter_mut().enumerate().take(2 * NP) {
            *row = [_mm256_set1_epi32(qw.bias[2 * b.q + c]); NV];
        }
        let weights = std::array::from_fn(|c| {
            let c = 2 * b.q + c.min(2 * NP - 1);
            qw.packed[c * qw.count..].as_ptr()
        });
        let row = quads.as_ptr().add((b.oy + 1) * sg.stride + b.x0 + 1);
        dense_step::<NP, NV, 1>(&mut acc, row, sg.plane_len, qw.count, weights, |a, v, w| {
            dpbusd::<MAC>(a, v, w)
        });
        store::<NP, NV>(layer, dst, b, &acc);
    }
}

/// `acc + sum of the four u8 x i8 byte products of each lane` (`v` unsigned, `w` signed);
/// exact, no saturation.
#[inline(always)]
unsafe fn dpbusd<const MAC: u8>(acc: __m256i, v: __m256i, w: __m256i) -> __m256i {
    // SAFETY: the caller enables the instruction set `MAC` names.
    unsafe {
        match MAC {
            DPWSSD_VEX => _mm256_dpbusd_avx_epi32(acc, v, w),
            _ => _mm256_dpbusd_epi32(acc, v, w),
        }
    }
}

/// [`super::requant8`] in AVX2: the same split multiply (`Requant::apply`), rounding shift and
/// clamp, giving the centred output of channel `c`; sigmoid layers take the lane-wise LUT path.
#[inline(always)]
unsafe fn requant(layer: &SimdLayer, c: usize, acc: __m256i) -> __m256i {
    // SAFETY: the caller enables AVX2.
    unsafe {
        if layer.lut.is_some() {
            let lanes = i32x8::new(std::mem::transmute::<__m256i, [i32; 8]>(acc));
            return std::mem::transmute::<[i32; 8], __m256i>(requant8(layer, c, lanes).to_array());
        }
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
        let r = _mm256_sra_epi32(r, _mm_cvtsi32_si128(s - 15));
        _mm256_min_epi32(
            _mm256_max_epi32(r, _mm256_set1_epi32(layer.lo[c])),
            _mm256_set1_epi32(layer.hi[c]),
        )
    }
}

/// `acc + pmaddwd(v, w)` with the chosen instruction.
#[inline(always)]
unsafe fn mac<const MAC: u8>(acc: __m256i, v: __m256i, w: __m256i) -> __m256i {
    // SAFETY: the caller enables the instruction set `MAC` names.
    unsafe {
        match MAC {
            DPWSSD_VEX => _mm256_dpwssd_avx_epi32(acc, v, w),
            DPWSSD_EVEX => _mm256_dpwssd_epi32(acc, v, w),
            _ => _mm256_add_epi32(acc, _mm256_madd_epi16(v, w)),
        }
    }
}

/// 8 lanes from `at`, every `S`-th one (S = 2: two loads, compacted by two shuffles).
#[inline(always)]
unsafe fn load<const S: usize>(at: *const i32) -> __m256i {
    // SAFETY: the caller checked that `8 * S` lanes from `at` are in bounds.
    unsafe {
        let lo = _mm256_loadu_si256(at.cast());
        if S == 1 {
            return lo;
        }
        let hi = _mm256_loadu_si256(at.add(8).cast());
        // [lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6], then the 64-bit quarters in order 0, 2, 1, 3.
        let even =
            _mm256_shuffle_ps::<0b10_00_10_00>(_mm256_castsi256_ps(lo), _mm256_castsi256_ps(hi));
        _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_castps_si256(even))
    }
}
