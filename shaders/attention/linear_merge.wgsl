// linear_merge.wgsl: the split-K partials of linear attention combined into per-head blocks, read by the
// per-pixel kernels as 64 KiB uniform windows. `forward`: the context and the log-sum-exp of k's rows from
// linear_context.wgsl's chunks. `backward`: the context gradient from linear_dcontext.wgsl's chunks; then
// `rows`: r[c] = Σ_e dC[c, e]·C[c, e] (softmax_j's backward term, Σ_j k̂[c, j]·dk̂[c, j]) and the forward's lse.
// One invocation per block entry, so that an invocation loops over the partials only (llvmpipe stops every
// invocation after 65,535 loop iterations in all, docs/llvmpipe-stores.md).
//
// math:   forward, head bh, row c, column e: m = max_J m_J[c]; S = Σ_J s_J[c]·e^(m_J[c] − m);
//         C[c, e] = Σ_J e^(m_J[c] − m)·acc_J[c, e] / S; lse[c] = m + ln S (written by the e = 0 invocation).
//         backward: dC[c, e] = Σ_J acc_J[c, e]; rows: r[c] = Σ_e dC[c, e]·C[c, e].
// layout: part as in linear_context.wgsl (the backward's m_J, s_J unused); head blocks of hs floats (a multiple
//         of 64, so every head starts a window on a 256-byte boundary): forward: C (d rows of dp, zero-padded
//         past d), lse (d); backward: dC (d rows of dp), r (d), lse (d); cblock is the forward's (hsf a head)
// grid:   @workgroup_size(64), linear id; forward and backward one invocation per (bh, c, e < dp), rows one per
//         (bh, c)
// binds:  @group(0) 0 params (uniform), 1 part (unused by `rows`), 2 cblock (`forward`: part
//         again, unused), 3 dst (rw)

// (struct Params and its binding 0: linear_common.wgsl)

@group(0) @binding(1) var<storage, read> part: array<f32>;
@group(0) @binding(2) var<storage, read> cblock: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

fn lin(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 64u + li;
}

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let t = lin(wg, nwg, li);
    // guard: invocations past the last entry
    if t >= p.nbh * p.d * p.dp { return; }
    let e = t % p.dp;
    let c = (t / p.dp) % p.d;
    let bh = t / (p.dp * p.d);
    let o = bh * p.hs + c * p.dp + e;
    if e >= p.d {
        dst[o] = 0.0;
        return;
    }
    var m = -3.4e38;
    for (var J = 0u; J < p.npart; J++) { m = max(m, part[(bh * p.npart + J) * p.ps + c]); }
    var s = 0.0;
    var a = 0.0;
    for (var J = 0u; J < p.npart; J++) {
        let base = (bh * p.npart + J) * p.ps;
        let w = exp(part[base + c] - m);
        s += part[base + p.d + c] * w;
        a += part[base + 2u * p.d + c * p.d + e] * w;
    }
    dst[o] = a / s;
    if e == 0u { dst[bh * p.hs + p.d * p.dp + c] = m + log(s); }
}

@compute @workgroup_size(64)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let t = lin(wg, nwg, li);
    // guard: invocations past the last entry
    if t >= p.nbh * p.d * p.dp { return; }
    let e = t % p.dp;
    let c = (t / p.dp) % p.d;
    let bh = t / (p.dp * p.d);
    var g = 0.0;
    if e < p.d {
        for (var J = 0u; J < p.npart; J++) { g += part[(bh * p.npart + J) * p.ps + 2u * p.d + c * p.d + e]; }
    }
    dst[bh * p.hs + c * p.dp + e] = g;
}

@compute @workgroup_size(64)
fn rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let t = lin(wg, nwg, li);
    // guard: invocations past the last row
    if t >= p.nbh * p.d { return; }
    let c = t % p.d;
    let bh = t / p.d;
    var r = 0.0;
    for (var e = 0u; e < p.d; e++) { r += dst[bh * p.hs + c * p.dp + e] * cblock[bh * p.hsf + c * p.dp + e]; }
    dst[bh * p.hs + p.d * p.dp + c] = r;
    dst[bh * p.hs + p.d * p.dp + p.d + c] = cblock[bh * p.hsf + p.d * p.dp + c];
}
