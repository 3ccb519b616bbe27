// layer_norm_forward.wgsl: the channel LayerNorm of med-seg-diff, one thread per (sample, pixel).
//
// math:   over the C channels of one pixel:  mean = Σ_c x/C;  var = Σ_c (x − mean)²/C (biased);
//         rstd = 1/sqrt(var + eps)   (eps inside the sqrt, as the package's (var + eps).rsqrt())
//         y[c] = (x[c] − mean) · rstd · g[c] + b[c]
// layout: x, y: (N, C, HW) contiguous f32;  g, b: C values (the package stores them as (1, C, 1, 1));
//         stats: (N, HW, 2) = (mean, rstd), saved for the backward
// grid:   @workgroup_size(256), one thread per pixel, ceil(N·HW / 256) workgroups (linear id, folded past
//         65,535). Why a thread and not a workgroup per pixel: C is small here (16 to 512), so a workgroup
//         of 256 threads would idle most of its lanes and pay barriers for a few dozen adds. With one thread
//         per pixel, neighbouring threads read neighbouring pixels of the same channel (stride 1 in HW), so
//         each of the C loads is coalesced across the workgroup, and there is no shared memory or barrier.
// binds:  @group(0) 0 params (uniform), 1 x, 2 g, 3 b, 4 y (rw), 5 stats (rw)
// backward: norm/layer_norm_backward.wgsl (dx), norm/norm_backward_params.wgsl with STATS = 1 (dg, db)

struct Params {
    pixels: u32,   // N·HW
    channels: u32, // C
    hw: u32,
    eps: f32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let t = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    // guard: past the last pixel
    if t >= p.pixels { return; }
    // pixel t = (n, s): its channel c sits at base + c·HW
    let base = (t / p.hw) * p.channels * p.hw + t % p.hw;

    var sum = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        sum += x[base + c * p.hw];
    }
    let mean = sum / f32(p.channels);
    var sq = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        let d = x[base + c * p.hw] - mean;
        sq += d * d;
    }
    let rstd = inverseSqrt(sq / f32(p.channels) + p.eps);

    for (var c = 0u; c < p.channels; c++) {
        let i = base + c * p.hw;
        y[i] = (x[i] - mean) * rstd * g[c] + b[c];
    }
    stats[2u * t] = mean;
    stats[2u * t + 1u] = rstd;
}
