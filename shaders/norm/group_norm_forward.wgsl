// group_norm_forward.wgsl: GroupNorm forward (torch.nn.GroupNorm), one workgroup per (sample, group).
//
// math:   m = (C/G)·HW elements per group;  mean = Σx/m;  var = Σ(x − mean)²/m (biased, two passes, so no
//         E[x²] − E[x]² cancellation);  rstd = 1/sqrt(var + eps)
//         y[c] = (x − mean) · rstd · gamma[c] + beta[c]
// layout: x, y: (N, C, HW) contiguous f32 (HW = H·W for rank 4, L for rank 3);  gamma, beta: (C);
//         stats: (N, G, 2) = (mean, rstd), saved for the backward.
//         Group (n, g) is one contiguous run: x[(n·C + g·C/G)·HW ..] of m elements.
// grid:   @workgroup_size(256), N·G workgroups, linear id w = n·G + g (the launcher folds counts past 65,535
//         into y/z); each thread strides over the group, then a tree reduction in workgroup memory
//         (the same reduction as reduce/sum.wgsl `per_workgroup`)
// binds:  @group(0) 0 params (uniform), 1 x, 2 gamma, 3 beta, 4 y (rw), 5 stats (rw)
// backward: norm/group_norm_backward.wgsl (dx), norm/norm_backward_params.wgsl (dgamma, dbeta)

struct Params {
    n_sets: u32,   // N·G: workgroups that have a group to normalise
    groups: u32,   // G
    channels: u32, // C
    cpg: u32,      // C/G, channels per group
    hw: u32,       // pixels per channel
    eps: f32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
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

@compute @workgroup_size(256)
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
    let m = p.cpg * p.hw;
    let base = (n * p.channels + g * p.cpg) * p.hw;

    // pass 1: mean
    var acc = 0.0;
    for (var i = li; i < m; i += WG) {
        acc += x[base + i];
    }
    let mean = workgroup_sum(li, acc) / f32(m);

    // pass 2: biased variance around that mean
    var acc2 = 0.0;
    for (var i = li; i < m; i += WG) {
        let d = x[base + i] - mean;
        acc2 += d * d;
    }
    let rstd = inverseSqrt(workgroup_sum(li, acc2) / f32(m) + p.eps);

    // normalise, then the per-channel affine: channel by channel, so no element needs an integer division to
    // find its channel (x86 has no SIMD division: llvmpipe would run it lane by lane)
    for (var cl = 0u; cl < p.cpg; cl++) {
        let c = g * p.cpg + cl;
        let s = rstd * gamma[c];
        let t = beta[c];
        let cb = base + cl * p.hw;
        for (var i = li; i < p.hw; i += WG) {
            y[cb + i] = (x[cb + i] - mean) * s + t;
        }
    }
    if li == 0u {
        stats[2u * w] = mean;
        stats[2u * w + 1u] = rstd;
    }
}
