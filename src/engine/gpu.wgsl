// One invocation computes one int8 output value (agent, y, x, channel) of one layer index for
// every agent of the swarm at once. Integer math only up to the final dequantisation, so the
// result is bit-exact with the CPU kernels (see quant.rs for the contract).

struct Params {
    layer: u32,
    n_agents: u32,
    per_agent: u32,
    row_threads: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// 24 i32 per (layer, agent); field order documented in gpu.rs (`Desc`).
@group(0) @binding(1) var<storage, read> descs: array<i32>;
@group(0) @binding(2) var<storage, read> weights: array<i32>;
// Per output channel: bias, multiplier, shift.
@group(0) @binding(3) var<storage, read> chans: array<i32>;
@group(0) @binding(4) var<storage, read> luts: array<i32>;
@group(0) @binding(5) var<storage, read> src: array<i32>;
@group(0) @binding(6) var<storage, read_write> dst: array<i32>;
@group(0) @binding(7) var<storage, read_write> outf: array<f32>;

// Requant::apply: floor((acc * m + 2^(s-1)) / 2^s) without 64-bit math; |acc| < 2^29.
fn requant(acc: i32, m: i32, s: u32) -> i32 {
    let hi = acc >> 15u;
    let lo = acc & 0x7fff;
    return (hi * m + ((lo * m) >> 15u) + (1i << (s - 16u))) >> (s - 15u);
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x + gid.y * params.row_threads;
    let a = t / params.per_agent;
    if (a >= params.n_agents) {
        return;
    }
    let local = i32(t % params.per_agent);
    let d = (params.layer * params.n_agents + a) * 26u;
    if (descs[d] == 0) {
        return;
    }
    let in_h = descs[d + 1u];
    let in_w = descs[d + 2u];
    let in_c = descs[d + 3u];
    let out_h = descs[d + 4u];
    let out_w = descs[d + 5u];
    let out_c = descs[d + 6u];
    let k = descs[d + 7u];
    let stride = descs[d + 8u];
    let ipg = descs[d + 9u];
    let opg = descs[d + 10u];
    let in_zp = descs[d + 11u];
    let w_off = descs[d + 15u];
    let ch = descs[d + 16u] + 3 * (local % out_c);
    if (local >= out_h * out_w * out_c) {
        return;
    }
    let co = local % out_c;
    let pos = local / out_c;
    let ox = pos % out_w;
    let oy = pos / out_w;
    let first_ci = (co / opg) * ipg;
    let pad_y = descs[d + 23u];
    let pad_x = descs[d + 24u];
    var acc = chans[ch];
    for (var ky = 0; ky < k; ky++) {
        let iy = oy * stride + ky - pad_y;
        if (iy < 0 || iy >= in_h) {
            continue;
        }
        for (var kx = 0; kx < k; kx++) {
            let ix = ox * stride + kx - pad_x;
            if (ix < 0 || ix >= in_w) {
                continue;
            }
            let base = descs[d + 18u] + (iy * in_w + ix) * in_c + first_ci;
            for (var ci = 0; ci < ipg; ci++) {
                let w = weights[w_off + ((co * ipg + ci) * k + ky) * k + kx];
                acc += (src[base + ci] - in_zp) * w;
            }
        }
    }
    var q = requant(acc, chans[ch + 1], u32(chans[ch + 2])) + descs[d + 12u];
    q = clamp(q, descs[d + 13u], descs[d + 14u]);
    let lut_off = descs[d + 17u];
    if (lut_off >= 0) {
        q = luts[lut_off + q + 128];
    }
    let dst_off = descs[d + 19u];
    if (descs[d + 20u] != 0) {
        outf[dst_off + local] = f32(q - descs[d + 21u]) * bitcast<f32>(descs[d + 22u]);
    } else {
        dst[dst_off + local] = q;
    }
}
