// layer_norm_forward_vec4.wgsl: layer_norm_forward.wgsl for H·W a multiple of 4: one thread per 4 neighbouring
// pixels of one sample, each channel's 4 values one vec4. Why: on llvmpipe every storage access is a loop over
// the SIMD lanes, paid per access, not per component (docs/llvmpipe-stores.md: a vec4 costs about what a
// scalar does), and the gain g[c] and bias b[c] loads now serve 4 pixels; on a GPU the vec4 loads are 16-byte
// transactions. Same sums in the same order per pixel as the scalar kernel, so the same results.
//
// math:   per pixel, over its C channels: mean = Σ_c x/C; var = Σ_c (x − mean)²/C (biased);
//         rstd = 1/sqrt(var + eps); y[c] = (x[c] − mean)·rstd·g[c] + b[c]   (4 pixels at once, lane-wise)
// layout: x, y: (N, C, HW) contiguous, as vec4 (HW % 4 == 0); g, b: C values; stats: (N·HW, 2) = (mean, rstd),
//         as vec4: quad q's pixels 4q .. 4q + 3 fill stats vec4s 2q and 2q + 1
// grid:   @workgroup_size(256), one thread per pixel quad, ceil(N·HW / 4 / 256) workgroups (linear id, folded
//         past 65,535)
// binds:  @group(0) 0 params (uniform), 1 x, 2 g, 3 b, 4 y (rw), 5 stats (rw)

struct Params {
    pixels: u32,   // N·HW
    channels: u32, // C
    hw: u32,
    eps: f32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> stats: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let q = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    // guard: past the last pixel quad
    if q >= p.pixels / 4u { return; }
    // quad q = (n, s4): its channel c sits at base + c·HW/4 (in vec4s)
    let hw4 = p.hw / 4u;
    let base = (q / hw4) * p.channels * hw4 + q % hw4;

    var sum = vec4<f32>();
    for (var c = 0u; c < p.channels; c++) {
        sum += x[base + c * hw4];
    }
    let mean = sum / f32(p.channels);
    var sq = vec4<f32>();
    for (var c = 0u; c < p.channels; c++) {
        let d = x[base + c * hw4] - mean;
        sq += d * d;
    }
    let rstd = inverseSqrt(sq / f32(p.channels) + p.eps);

    for (var c = 0u; c < p.channels; c++) {
        let i = base + c * hw4;
        y[i] = (x[i] - mean) * rstd * g[c] + b[c];
    }
    stats[2u * q] = vec4<f32>(mean.x, rstd.x, mean.y, rstd.y);
    stats[2u * q + 1u] = vec4<f32>(mean.z, rstd.z, mean.w, rstd.w);
}
