// group_norm_silu.wgsl: the ResnetBlock's `Block` tail in one pass over the activation:
// GroupNorm (with its affine) → ·(1 + scale) + shift (the time embedding's modulation, optional) → SiLU.
// The unfused chain reads and writes the activation four times; on llvmpipe every storage component is a
// per-lane loop (docs/llvmpipe-stores.md), and on a GPU the chain is memory-bound: fusing cuts the traffic ~3×.
//
// math:   per (n, group): μ, rstd = 1/sqrt(var + eps) over the group's C/G·HW values (biased variance)
//         x̂ = (x − μ)·rstd; u = x̂·γ_c + β_c; z = u·(1 + s_nc) + t_nc (s = t = 0 without MOD); y = z·σ(z)
//         backward (dy): dz = dy·σ(z)·(1 + z·(1 − σ(z))); dt_nc = Σ_hw dz; ds_nc = Σ_hw dz·u;
//         du = dz·(1 + s); dγ partial_nc = Σ_hw du·x̂; dβ partial_nc = Σ_hw du; with dx̂ = du·γ,
//         dx = rstd·(dx̂ − mean_group(dx̂) − x̂·mean_group(dx̂·x̂)) (the GroupNorm backward)
// layout: x, y, dy, dx: (N, C, HW) contiguous, as vec4 (HW % 4 == 0); gamma, beta: (C); scale, shift and the
//         per-(n, c) outputs ds, dt, dgp, dbp: (N, C); stats: (N, G, 2) = (mean, rstd)
// grid:   @workgroup_size(64), N·G workgroups, linear id w = n·G + g; each thread strides over a channel's vec4s
// binds:  forward:  0 params, 1 x, 2 gamma, 3 beta, 4 scale, 5 shift, 6 y (rw), 7 stats (rw)
//         backward: 0 params, 1 x, 2 gamma, 3 beta, 4 scale, 5 shift, 6 stats, 7 dy, 8 dx (rw), 9 ds (rw),
//                   10 dt (rw), 11 dgp (rw), 12 dbp (rw)   (the two entries live in one file: they share the math)

struct Params {
    n_sets: u32,   // N·G
    groups: u32,   // G
    channels: u32, // C
    cpg: u32,      // C/G
    hw: u32,       // pixels per channel (a multiple of 4)
    eps: f32,
    _p0: u32,
    _p1: u32,
}

const WG: u32 = 64u;
override MOD: u32 = 1u; // 1: apply ·(1 + scale) + shift

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>;
@group(0) @binding(5) var<storage, read> shift: array<f32>;

var<workgroup> partial: array<vec4<f32>, WG>;

// Sum `v` (up to four sums at once) over the workgroup; every thread gets the totals. Uniform control flow only.
fn workgroup_sum4(li: u32, v: vec4<f32>) -> vec4<f32> {
    partial[li] = v;
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier(); // the previous round's writes (or the first store) are visible
        if li < s {
            partial[li] += partial[li + s];
        }
    }
    workgroupBarrier(); // partial[0] is complete for every thread
    let total = partial[0];
    workgroupBarrier(); // everyone has read it before a later call overwrites it
    return total;
}

fn hsum(v: vec4<f32>) -> f32 {
    return (v.x + v.y) + (v.z + v.w);
}

// (1 + s, t) for channel c of image n
fn modulation(n: u32, c: u32) -> vec2<f32> {
    if MOD == 0u { return vec2<f32>(1.0, 0.0); }
    let i = n * p.channels + c;
    return vec2<f32>(1.0 + scale[i], shift[i]);
}

@group(0) @binding(6) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> stats_out: array<f32>;

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let w = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding past the last group (uniform across the workgroup, so barriers stay uniform)
    if w >= p.n_sets { return; }
    let n = w / p.groups;
    let g = w % p.groups;
    let m = p.cpg * p.hw;
    let hw4 = p.hw / 4u;
    let m4 = p.cpg * hw4;
    let base = (n * p.channels + g * p.cpg) * hw4;
    var acc = vec4<f32>();
    for (var i = li; i < m4; i += WG) { acc += x[base + i]; }
    let mean = hsum(workgroup_sum4(li, acc)) / f32(m);
    var acc2 = vec4<f32>();
    for (var i = li; i < m4; i += WG) { let d = x[base + i] - mean; acc2 += d * d; }
    let rstd = inverseSqrt(hsum(workgroup_sum4(li, acc2)) / f32(m) + p.eps);
    for (var cl = 0u; cl < p.cpg; cl++) {
        let c = g * p.cpg + cl;
        let md = modulation(n, c);
        // z = ((x − μ)·rstd·γ + β)·(1 + s) + t = x·a + b
        let a = rstd * gamma[c] * md.x;
        let b = (beta[c] - mean * rstd * gamma[c]) * md.x + md.y;
        let cb = base + cl * hw4;
        for (var i = li; i < hw4; i += WG) {
            let z = x[cb + i] * a + b;
            y[cb + i] = z / (1.0 + exp(-z));
        }
    }
    if li == 0u {
        stats_out[2u * w] = mean;
        stats_out[2u * w + 1u] = rstd;
    }
}
