// group_norm_silu_backward.wgsl: the backward of group_norm_silu.wgsl (see there for the math): one workgroup per
// (n, group) recomputes z from x and the saved stats, sums dt, ds and the γ/β partials per channel (one
// four-wide workgroup reduction per channel), then writes dx in a second pass over the group.
//
// math:   see group_norm_silu.wgsl (backward)
// layout: as group_norm_silu.wgsl; ds, dt, dgp, dbp: (N, C)
// grid:   @workgroup_size(64), N·G workgroups, linear id w = n·G + g
// binds:  0 params, 1 x, 2 gamma, 3 beta, 4 scale, 5 shift, 6 stats, 7 dy, 8 dx (rw), 9 ds (rw), 10 dt (rw),
//         11 dgp (rw), 12 dbp (rw)

struct Params {
    n_sets: u32,
    groups: u32,
    channels: u32,
    cpg: u32,
    hw: u32,
    eps: f32,
    _p0: u32,
    _p1: u32,
}

const WG: u32 = 64u;
override MOD: u32 = 1u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read> beta: array<f32>;
@group(0) @binding(4) var<storage, read> scale: array<f32>;
@group(0) @binding(5) var<storage, read> shift: array<f32>;
@group(0) @binding(6) var<storage, read> stats: array<f32>;
@group(0) @binding(7) var<storage, read> dy: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> dx: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> ds: array<f32>;
@group(0) @binding(10) var<storage, read_write> dt: array<f32>;
@group(0) @binding(11) var<storage, read_write> dgp: array<f32>;
@group(0) @binding(12) var<storage, read_write> dbp: array<f32>;

var<workgroup> partial: array<vec4<f32>, WG>;

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

fn modulation(n: u32, c: u32) -> vec2<f32> {
    if MOD == 0u { return vec2<f32>(1.0, 0.0); }
    let i = n * p.channels + c;
    return vec2<f32>(1.0 + scale[i], shift[i]);
}

@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let w = wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y;
    // guard: split padding past the last group (uniform across the workgroup, so barriers stay uniform)
    if w >= p.n_sets { return; }
    let n = w / p.groups;
    let g = w % p.groups;
    let m = f32(p.cpg * p.hw);
    let hw4 = p.hw / 4u;
    let base = (n * p.channels + g * p.cpg) * hw4;
    let mean = stats[2u * w];
    let rstd = stats[2u * w + 1u];
    // pass 1, channel by channel: Σ dz, Σ dz·u, Σ du·x̂, Σ du; the group sums of dx̂ = du·γ and dx̂·x̂
    var a1 = 0.0;
    var a2 = 0.0;
    for (var cl = 0u; cl < p.cpg; cl++) {
        let c = g * p.cpg + cl;
        let md = modulation(n, c);
        let gm = gamma[c];
        let bt = beta[c];
        let cb = base + cl * hw4;
        var s_dz = vec4<f32>();
        var s_dzu = vec4<f32>();
        var s_dux = vec4<f32>();
        for (var i = li; i < hw4; i += WG) {
            let xh = (x[cb + i] - mean) * rstd;
            let u = xh * gm + bt;
            let z = u * md.x + md.y;
            let sg = 1.0 / (1.0 + exp(-z));
            let dz = dy[cb + i] * sg * (1.0 + z * (1.0 - sg));
            s_dz += dz;
            s_dzu += dz * u;
            s_dux += dz * xh;
        }
        let t = workgroup_sum4(li, vec4<f32>(hsum(s_dz), hsum(s_dzu), hsum(s_dux), 0.0));
        // du = dz·(1 + s): its sums are the dz sums times (1 + s)
        let sum_du = t.x * md.x;
        let sum_dux = t.z * md.x;
        if li == 0u {
            let o = n * p.channels + c;
            dt[o] = t.x;
            ds[o] = t.y;
            dgp[o] = sum_dux;
            dbp[o] = sum_du;
        }
        a1 += gm * sum_du;
        a2 += gm * sum_dux;
    }
    let mean1 = a1 / m;
    let mean2 = a2 / m;
    // pass 2: dx = rstd·(du·γ − mean(dx̂) − x̂·mean(dx̂·x̂))
    for (var cl = 0u; cl < p.cpg; cl++) {
        let c = g * p.cpg + cl;
        let md = modulation(n, c);
        let gm = gamma[c];
        let bt = beta[c];
        let cb = base + cl * hw4;
        for (var i = li; i < hw4; i += WG) {
            let xh = (x[cb + i] - mean) * rstd;
            let z = (xh * gm + bt) * md.x + md.y;
            let sg = 1.0 / (1.0 + exp(-z));
            let du = dy[cb + i] * sg * (1.0 + z * (1.0 - sg)) * md.x;
            dx[cb + i] = rstd * (du * gm - mean1 - xh * mean2);
        }
    }
}
