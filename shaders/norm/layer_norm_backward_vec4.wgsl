// layer_norm_backward_vec4.wgsl: layer_norm_backward.wgsl for H·W a multiple of 4: one thread per 4 neighbouring
// pixels of one sample, each channel's 4 values one vec4 (why: layer_norm_forward_vec4.wgsl). Same sums in the
// same order per pixel as the scalar kernel.
//
// math:   with the pixel's saved (mean, rstd), x̂ = (x − mean)·rstd and ĝ = dy·g[c], over its C channels:
//             dx = rstd · (ĝ − mean_c(ĝ) − x̂ · mean_c(ĝ·x̂))      (4 pixels at once, lane-wise)
// layout: x, dy, dx: (N, C, HW) contiguous, as vec4 (HW % 4 == 0); g: (C); stats: (N·HW, 2) = (mean, rstd), as
//         vec4: quad q's at vec4s 2q and 2q + 1
// grid:   @workgroup_size(256), one thread per pixel quad, linear id
// binds:  @group(0) 0 params (uniform), 1 x, 2 g, 3 stats, 4 dy, 5 dx (rw)

struct Params {
    pixels: u32,   // N·HW
    channels: u32, // C
    hw: u32,
    _pad: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> dy: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dx: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let q = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    // guard: past the last pixel quad
    if q >= p.pixels / 4u { return; }
    let hw4 = p.hw / 4u;
    let base = (q / hw4) * p.channels * hw4 + q % hw4;
    let s01 = stats[2u * q];
    let s23 = stats[2u * q + 1u];
    let mean = vec4<f32>(s01.x, s01.z, s23.x, s23.z);
    let rstd = vec4<f32>(s01.y, s01.w, s23.y, s23.w);

    // Σ ĝ and Σ ĝ·x̂ over the pixels' channels
    var sg = vec4<f32>();
    var sgx = vec4<f32>();
    for (var c = 0u; c < p.channels; c++) {
        let i = base + c * hw4;
        let gh = dy[i] * g[c];
        sg += gh;
        sgx += gh * (x[i] - mean) * rstd;
    }
    let mg = sg / f32(p.channels);
    let mgx = sgx / f32(p.channels);

    for (var c = 0u; c < p.channels; c++) {
        let i = base + c * hw4;
        let gh = dy[i] * g[c];
        let xh = (x[i] - mean) * rstd;
        dx[i] = rstd * (gh - mg - xh * mgx); // term 1 − term 2 − term 3
    }
}
