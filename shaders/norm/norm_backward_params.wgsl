// norm_backward_params.wgsl: gradients of the per-channel affine of GroupNorm and the channel LayerNorm,
// one workgroup per channel.
//
// math:   x̂ = (x − mean)·rstd with the forward's saved stats of the set the element belongs to;
//             dgamma[c] = Σ_{n, hw} dy · x̂        dbeta[c] = Σ_{n, hw} dy
//         STATS picks where an element's (mean, rstd) live (the only difference between the two norms):
//           0  GroupNorm:  stats[(n·G + c/(C/G))]   one pair per (sample, group)
//           1  LayerNorm:  stats[(n·HW + hw)]        one pair per (sample, pixel)
// layout: x, dy: (N, C, HW) contiguous f32;  stats: pairs (mean, rstd);  dgamma, dbeta: (C)
// grid:   @workgroup_size(256), C workgroups (linear id = c); for each sample, thread j walks channel c's
//         pixels j, j + 256, …, so neighbouring threads read neighbouring pixels; then one tree reduction of
//         the pair (Σ dy·x̂, Σ dy) in workgroup memory
// binds:  @group(0) 0 params (uniform), 1 x, 2 stats, 3 dy, 4 dgamma (rw), 5 dbeta (rw)
// forward: norm/group_norm_forward.wgsl, norm/layer_norm_forward.wgsl

struct Params {
    batch: u32,    // N
    channels: u32, // C
    hw: u32,
    groups: u32,   // G (STATS = 0 only)
    cpg: u32,      // C/G (STATS = 0 only)
}

override STATS: u32 = 0u;

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(5) var<storage, read_write> dbeta: array<f32>;

var<workgroup> partial: array<vec2<f32>, WG>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let c = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding past the last channel (uniform across the workgroup, so barriers stay uniform)
    if c >= p.channels { return; }

    // sample by sample, so no element needs an integer division to find its sample and pixel (x86 has no SIMD
    // division: llvmpipe would run it lane by lane)
    var acc = vec2<f32>(0.0); // (Σ dy·x̂, Σ dy)
    for (var n = 0u; n < p.batch; n++) {
        let cb = (n * p.channels + c) * p.hw;
        let gi = n * p.groups + c / p.cpg; // GroupNorm: the (sample, group) this channel was normalised in
        for (var s = li; s < p.hw; s += WG) {
            var si = gi; // index of the set (group or pixel) this element was normalised in
            if STATS == 1u {
                si = n * p.hw + s;
            }
            let xh = (x[cb + s] - stats[2u * si]) * stats[2u * si + 1u];
            let d = dy[cb + s];
            acc += vec2<f32>(d * xh, d);
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
    if li == 0u {
        dgamma[c] = partial[0].x;
        dbeta[c] = partial[0].y;
    }
}
