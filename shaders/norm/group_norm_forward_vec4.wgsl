// group_norm_forward_vec4.wgsl: group_norm_forward.wgsl for H·W a multiple of 4, reading and writing vec4s, 64
// threads per workgroup. The math, the two-pass variance and the saved stats are the same; see that file.
//
// Why: on llvmpipe each invocation is a SIMD lane and a storage access with per-lane addresses is issued lane
// by lane, so a vec4 moves four floats for one such access; 64 threads make the tree reductions 6 barrier
// rounds instead of 8 (a barrier switches between all of the workgroup's SIMD coroutines). Measured: see
// ops/norm/mod.rs.
//
// math:   as group_norm_forward.wgsl (mean, biased variance around it, y = (x − mean)·rstd·gamma[c] + beta[c])
// layout: x, y: (N, C, HW) contiguous, read as vec4 (HW % 4 == 0, so every group and channel starts on a vec4);
//         gamma, beta: (C); stats: (N, G, 2) = (mean, rstd)
// grid:   @workgroup_size(64), N·G workgroups, linear id w = n·G + g; each thread strides over the group's vec4s
// binds:  @group(0) 0 params (uniform), 1 x (as vec4), 2 gamma, 3 beta, 4 y (rw, as vec4), 5 stats (rw)

struct Params {
    n_sets: u32,   // N·G
    groups: u32,   // G
    channels: u32, // C
    cpg: u32,      // C/G
    hw: u32,       // pixels per channel (a multiple of 4 here)
    eps: f32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;

var<workgroup> partial: array<f32, WG>;

// Sum `v` over the workgroup; every thread gets the total. Call from uniform control flow only.
fn workgroup_sum(li: u32, v: f32) -> f32 {
    partial[li] = v;
    // tree reduction: halve the active threads each round
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier(); // partial[] writes of the previous round (or the first store) are visible
        if li < s {
            partial[li] += partial[li + s];
        }
    }
    workgroupBarrier(); // the last round's write to partial[0] is visible to every thread
    let total = partial[0];
    workgroupBarrier(); // every thread has read partial[0] before a later call overwrites it
    return total;
}

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let w = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding past the last group (uniform across the workgroup, so barriers stay uniform)
    if w >= p.n_sets { return; }
    let n = w / p.groups;
    let g = w % p.groups;
    let m = p.cpg * p.hw;          // floats in the group
    let hw4 = p.hw / 4u;           // vec4s per channel
    let m4 = p.cpg * hw4;          // vec4s in the group
    let base = (n * p.channels + g * p.cpg) * hw4;

    // pass 1: mean
    var acc = vec4<f32>();
    for (var i = li; i < m4; i += WG) {
        acc += x[base + i];
    }
    let mean = workgroup_sum(li, (acc.x + acc.y) + (acc.z + acc.w)) / f32(m);

    // pass 2: biased variance around that mean
    var acc2 = vec4<f32>();
    for (var i = li; i < m4; i += WG) {
        let d = x[base + i] - mean;
        acc2 += d * d;
    }
    let rstd = inverseSqrt(workgroup_sum(li, (acc2.x + acc2.y) + (acc2.z + acc2.w)) / f32(m) + p.eps);

    // normalise, then the per-channel affine, channel by channel
    for (var cl = 0u; cl < p.cpg; cl++) {
        let c = g * p.cpg + cl;
        let s = rstd * gamma[c];
        let t = beta[c];
        let cb = base + cl * hw4;
        for (var i = li; i < hw4; i += WG) {
            y[cb + i] = (x[cb + i] - mean) * s + t;
        }
    }
    if li == 0u {
        stats[2u * w] = mean;
        stats[2u * w + 1u] = rstd;
    }
}
