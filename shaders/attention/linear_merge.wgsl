// linear_merge.wgsl: the split-K partials of linear attention combined into per-head blocks, read by the
// per-pixel kernels as 64 KiB uniform windows. `forward`: the context and the log-sum-exp of k's rows from
// linear_context.wgsl's chunks. `backward`: the context gradient from linear_dcontext.wgsl's chunks; then
// `rows`: r[c] = Σ_e dC[c, e]·C[c, e] (softmax_j's backward term, Σ_j k̂[c, j]·dk̂[c, j]) and the forward's lse.
// `forward` and `backward` take four columns an invocation, read as one vec4 a partial, and `forward` merges
// the partials in one pass with the split-K kernels' online step (a running maximum that rescales the sums):
// one exponential and three loads a partial for four columns (one pass per column, an exponential and four
// loads each, ran small's forward merge 11 ms of the 50, docs/bench-history.md). The loops run over the
// partials only (llvmpipe stops every invocation after 65,535 loop iterations in all, docs/llvmpipe-stores.md).
//
// math:   forward, head bh, row c, column e: m = max_J m_J[c]; S = Σ_J s_J[c]·e^(m_J[c] − m);
//         C[c, e] = Σ_J e^(m_J[c] − m)·acc_J[c, e] / S; lse[c] = m + ln S (written by the e = 0 invocation).
//         backward: dC[c, e] = Σ_J acc_J[c, e]; rows: r[c] = Σ_e dC[c, e]·C[c, e].
// layout: part as in linear_context.wgsl, vec4 (the backward's m_J, s_J unused); head blocks of hs floats (a
//         multiple of 64, so every head starts a window on a 256-byte boundary): forward: C (d rows of dp,
//         zero-padded past d), lse (d); backward: dC (d rows of dp), r (d), lse (d); cblock is the forward's
//         (hsf a head)
// grid:   @workgroup_size(64), linear id; forward and backward one invocation per (bh, c, column quad of dp),
//         rows one per (bh, c)
// binds:  @group(0) 0 params (uniform), 1 part (vec4; unused by `rows`), 2 cblock (`forward`: part again,
//         unused), 3 dst (rw)

// (struct Params and its binding 0: linear_common.wgsl)

@group(0) @binding(1) var<storage, read> part: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> cblock: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

fn lin(wg: vec3<u32>, nwg: vec3<u32>, li: u32) -> u32 {
    return (wg.x + wg.y * nwg.x + wg.z * nwg.x * nwg.y) * 64u + li;
}

// dst[o + k] = v[k] for the columns 4·e4 + k of a row that are below d, 0 past it
fn put_quad(o: u32, e4: u32, v: vec4<f32>) {
    // unroll
    for (var k = 0u; k < 4u; k++) { dst[o + k] = select(v[k], 0.0, 4u * e4 + k >= p.d); }
}

@compute @workgroup_size(64)
fn forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let t = lin(wg, nwg, li);
    let dp4 = p.dp / 4u;
    // guard: invocations past the last column quad
    if t >= p.nbh * p.d * dp4 { return; }
    let e4 = t % dp4;
    let c = (t / dp4) % p.d;
    let bh = t / (dp4 * p.d);
    let ps4 = p.ps / 4u;
    var m = -3.4e38;
    var s = 0.0;
    var a = vec4<f32>(0.0);
    for (var J = 0u; J < p.npart; J++) {
        let base = (bh * p.npart + J) * ps4;
        let mj = part[base + c / 4u][c % 4u];
        let rw = online(m, mj); // linear_common.wgsl
        m = max(m, mj);
        s = s * rw.x + rw.y * part[base + dp4 + c / 4u][c % 4u];
        a = a * rw.x + rw.y * part[base + 2u * dp4 + c * dp4 + e4];
    }
    put_quad(bh * p.hs + c * p.dp + 4u * e4, e4, a / s);
    if e4 == 0u { dst[bh * p.hs + p.d * p.dp + c] = m + log(s); }
}

@compute @workgroup_size(64)
fn backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let t = lin(wg, nwg, li);
    let dp4 = p.dp / 4u;
    // guard: invocations past the last column quad
    if t >= p.nbh * p.d * dp4 { return; }
    let e4 = t % dp4;
    let c = (t / dp4) % p.d;
    let bh = t / (dp4 * p.d);
    let ps4 = p.ps / 4u;
    var g = vec4<f32>(0.0);
    for (var J = 0u; J < p.npart; J++) { g += part[(bh * p.npart + J) * ps4 + 2u * dp4 + c * dp4 + e4]; }
    put_quad(bh * p.hs + c * p.dp + 4u * e4, e4, g);
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
