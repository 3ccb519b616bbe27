// group_norm_backward.wgsl: GroupNorm backward for x, one workgroup per (sample, group).
//
// math:   with the saved (mean, rstd) of the group, x̂ = (x − mean)·rstd and ĝ = dy·gamma[c]
//         (the gradient reaching x̂), over the m = (C/G)·HW elements of the group:
//             dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ·x̂))
//         term 1: ĝ               the direct path x → x̂
//         term 2: −mean(ĝ)        the path through the mean
//         term 3: −x̂·mean(ĝ·x̂)    the path through rstd (the variance)
//         (the same three terms as llm.c's layernorm_backward, over a group instead of a row)
// layout: x, dy, dx: (N, C, HW) contiguous f32;  gamma: (C);  stats: (N, G, 2) = (mean, rstd) from the forward
// grid:   @workgroup_size(256), N·G workgroups, linear id w = n·G + g; each thread strides over the group,
//         one tree reduction of the pair (Σĝ, Σĝ·x̂), then each thread writes its strided elements
// binds:  @group(0) 0 params (uniform), 1 x, 2 gamma, 3 stats, 4 dy, 5 dx (rw)
// forward: norm/group_norm_forward.wgsl;  dgamma, dbeta: norm/norm_backward_params.wgsl

struct Params {
    n_sets: u32,   // N·G
    groups: u32,   // G
    channels: u32, // C
    cpg: u32,      // C/G
    hw: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

var<workgroup> partial: array<vec2<f32>, WG>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let w = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding past the last group (uniform across the workgroup, so barriers stay uniform)
    if w >= p.n_sets { return; }
    let g = w % p.groups;
    let m = p.cpg * p.hw;
    let base = (w / p.groups * p.channels + g * p.cpg) * p.hw;
    let mean = stats[2u * w];
    let rstd = stats[2u * w + 1u];

    // (Σ ĝ, Σ ĝ·x̂) over the group
    // (channel by channel: no per-element integer division to find the channel's gamma)
    var acc = vec2<f32>(0.0);
    for (var cl = 0u; cl < p.cpg; cl++) {
        let gm = gamma[g * p.cpg + cl];
        let cb = base + cl * p.hw;
        for (var i = li; i < p.hw; i += WG) {
            let gh = dy[cb + i] * gm;
            let xh = (x[cb + i] - mean) * rstd;
            acc += vec2<f32>(gh, gh * xh);
        }
    }
    partial[li] = acc;
    // tree reduction: halve the active threads each round
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        workgroupBarrier(); // partial[] writes of the previous round (or the first store) are visible
        if li < s {
            partial[li] += partial[li + s];
        }
    }
    workgroupBarrier(); // the final partial[0] is visible to every thread
    let means = partial[0] / f32(m); // (mean(ĝ), mean(ĝ·x̂))

    for (var cl = 0u; cl < p.cpg; cl++) {
        let gm = gamma[g * p.cpg + cl];
        let cb = base + cl * p.hw;
        for (var i = li; i < p.hw; i += WG) {
            let gh = dy[cb + i] * gm;
            let xh = (x[cb + i] - mean) * rstd;
            dx[cb + i] = rstd * (gh - means.x - xh * means.y); // term 1 − term 2 − term 3
        }
    }
}
