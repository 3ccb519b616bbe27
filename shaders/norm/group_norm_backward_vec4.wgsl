// group_norm_backward_vec4.wgsl: group_norm_backward.wgsl for H·W a multiple of 4, reading and writing vec4s,
// 64 threads per workgroup (why: see group_norm_forward_vec4.wgsl). The math is that file's:
//             dx = rstd · (ĝ − mean(ĝ) − x̂ · mean(ĝ·x̂)),   x̂ = (x − mean)·rstd,   ĝ = dy·gamma[c]
// layout: x, dy, dx: (N, C, HW) contiguous, read as vec4 (HW % 4 == 0); gamma: (C); stats: (N, G, 2)
// grid:   @workgroup_size(64), N·G workgroups, linear id w = n·G + g; one tree reduction of (Σĝ, Σĝ·x̂)
// binds:  @group(0) 0 params (uniform), 1 x (as vec4), 2 gamma, 3 stats, 4 dy (as vec4), 5 dx (rw, as vec4)

struct Params {
    n_sets: u32,   // N·G
    groups: u32,   // G
    channels: u32, // C
    cpg: u32,      // C/G
    hw: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dx: array<vec4<f32>>;

var<workgroup> partial: array<vec2<f32>, WG>;

@compute @workgroup_size(64)
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
    let hw4 = p.hw / 4u;
    let base = (w / p.groups * p.channels + g * p.cpg) * hw4;
    let mean = stats[2u * w];
    let rstd = stats[2u * w + 1u];
    // (Σ ĝ, Σ ĝ·x̂) over the group, channel by channel
    var s1 = vec4<f32>();
    var s2 = vec4<f32>();
    for (var cl = 0u; cl < p.cpg; cl++) {
        let gm = gamma[g * p.cpg + cl];
        let cb = base + cl * hw4;
        for (var i = li; i < hw4; i += WG) {
            let gh = dy[cb + i] * gm;
            let xh = (x[cb + i] - mean) * rstd;
            s1 += gh;
            s2 += gh * xh;
        }
    }
    partial[li] = vec2<f32>((s1.x + s1.y) + (s1.z + s1.w), (s2.x + s2.y) + (s2.z + s2.w));
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
        let cb = base + cl * hw4;
        for (var i = li; i < hw4; i += WG) {
            let gh = dy[cb + i] * gm;
            let xh = (x[cb + i] - mean) * rstd;
            dx[cb + i] = rstd * (gh - means.x - xh * means.y); // term 1 − term 2 − term 3
        }
    }
}
