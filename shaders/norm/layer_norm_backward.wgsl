// layer_norm_backward.wgsl: channel LayerNorm backward for x, one thread per (sample, pixel).
//
// math:   with the pixel's saved (mean, rstd), x̂ = (x − mean)·rstd and ĝ = dy·g[c], over its C channels:
//             dx = rstd · (ĝ − mean_c(ĝ) − x̂ · mean_c(ĝ·x̂))
//         term 1: ĝ               the direct path x → x̂
//         term 2: −mean_c(ĝ)      the path through the mean
//         term 3: −x̂·mean_c(ĝ·x̂)  the path through rstd (the variance)
//         (llm.c's layernorm_backward, with the row running over channels)
// layout: x, dy, dx: (N, C, HW) contiguous f32;  g: (C);  stats: (N, HW, 2) = (mean, rstd) from the forward
// grid:   @workgroup_size(256), one thread per pixel (see layer_norm_forward.wgsl for why), linear id
// binds:  @group(0) 0 params (uniform), 1 x, 2 g, 3 stats, 4 dy, 5 dx (rw)
// forward: norm/layer_norm_forward.wgsl;  dg, db: norm/norm_backward_params.wgsl with STATS = 1

struct Params {
    pixels: u32,   // N·HW
    channels: u32, // C
    hw: u32,
    _pad: u32,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let t = (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * WG + li;
    // guard: past the last pixel
    if t >= p.pixels { return; }
    let base = (t / p.hw) * p.channels * p.hw + t % p.hw;
    let mean = stats[2u * t];
    let rstd = stats[2u * t + 1u];

    // (Σ ĝ, Σ ĝ·x̂) over the pixel's channels
    var acc = vec2<f32>(0.0);
    for (var c = 0u; c < p.channels; c++) {
        let i = base + c * p.hw;
        let gh = dy[i] * g[c];
        acc += vec2<f32>(gh, gh * (x[i] - mean) * rstd);
    }
    let means = acc / f32(p.channels); // (mean(ĝ), mean(ĝ·x̂))

    for (var c = 0u; c < p.channels; c++) {
        let i = base + c * p.hw;
        let gh = dy[i] * g[c];
        let xh = (x[i] - mean) * rstd;
        dx[i] = rstd * (gh - means.x - xh * means.y); // term 1 − term 2 − term 3
    }
}
